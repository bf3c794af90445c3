"""benchmarks/gpu_check.sh in its CPU smoke mode: every stage runs and prints its figures."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"

STAGES = ["[1/5] CUDA tests", "[2/5] G_P forward and training step", "[3/5] LaFIn training",
          "[4/5] generate end to end", "[5/5] G_P forward under torch.compile"]
NUMBER = r"\d+\.\d+"
FIGURES = [rf"^cpu +32 fp32 infer +2 +{NUMBER} +{NUMBER} eager +CPU ",
           rf"^cpu +32 bf16 train +2 +{NUMBER} +{NUMBER} channels_last +CPU ",
           rf"^training: {NUMBER} steps/s",
           rf"^ratio end-to-end / forward: +{NUMBER}$",
           rf"^  mask drawing +{NUMBER} s",
           rf"^cpu +32 fp32 infer +1 +{NUMBER} +{NUMBER} compile +CPU "]


def run_smoke() -> subprocess.CompletedProcess:
    """The script's smoke mode with this interpreter; on a time-out its whole process group is killed."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHON=sys.executable)
    process = subprocess.Popen(["bash", str(SCRIPT), "--smoke"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"gpu_check.sh --smoke ran over 180 s:\n{stdout[-4000:]}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_smoke_mode_runs_every_stage_on_the_cpu():
    result = run_smoke()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for stage in STAGES:
        assert f"=== {stage}" in result.stdout, f"no header {stage!r} in:\n{result.stdout[-4000:]}"
    for figure in FIGURES:
        assert re.search(figure, result.stdout, re.MULTILINE), f"no line {figure!r} in:\n{result.stdout[-4000:]}"
    summary = result.stdout.split("=== summary")[1]
    assert summary.count(": ok, ") == len(STAGES), summary
