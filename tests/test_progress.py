"""Progress bars of CLI commands: drawn on a terminal, absent (no carriage returns) in captured output."""
from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from click.testing import CliRunner
from lafin_aug.cli.main import main
from tqdm import tqdm

EXPORT = ["export", "--dataset", "synthetic", "--count", "3", "--to", "pts"]


def run_cli(arguments: list[str], stderr: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lafin_aug.cli.main", *arguments], stdout=subprocess.PIPE,
                          stderr=stderr, timeout=120, check=True)


def test_no_progress_bar_when_stderr_is_captured(tmp_path: Path):
    result = run_cli([*EXPORT, "--out", str(tmp_path / "out")], subprocess.PIPE)
    assert result.stdout.decode().startswith("exported 3 records (3 real, 0 generated) as pts to")
    assert b"\r" not in result.stderr and b"export pts" not in result.stderr


def test_progress_bar_on_a_terminal(tmp_path: Path):
    terminal, stderr = os.openpty()
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh pty is 0 columns wide
    try:
        run_cli([*EXPORT, "--out", str(tmp_path / "out")], stderr)
        drawn = os.read(terminal, 1 << 16)
    finally:
        os.close(stderr)
        os.close(terminal)
    assert b"\rexport pts: 100%" in drawn


def test_tqdm_is_restored_after_a_command(tmp_path: Path):
    before = vars(tqdm)["__init__"]
    result = CliRunner().invoke(main, [*EXPORT, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr
    assert vars(tqdm)["__init__"] is before
    with tqdm(range(1), file=io.StringIO()) as bar:
        assert not bar.disable
