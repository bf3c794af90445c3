"""The README's python blocks run as written.

Convention: every ```python block of README.md runs, in a fresh namespace with a working directory
holding what the blocks name (``runs/wflw-aug``: shards of a tiny inpainter), unless the last
non-blank line before its fence is ``<!-- not run: reason -->``; those are reported as skipped
with their reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer

README = REPO / "README.md"
NOT_RUN = re.compile(r"<!-- not run: (.+) -->")


@dataclass(frozen=True)
class Block:
    """One ```python block: the line of its first code line, its code, why it is not run (None: it runs)."""

    line: int
    code: str
    not_run: str | None


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a markdown text, in order."""
    lines, blocks, index = text.splitlines(), [], 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            end = next(j for j in range(index + 1, len(lines)) if lines[j].strip() == "```")
            before = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
            marker = NOT_RUN.fullmatch(before)
            blocks.append(Block(index + 2, "\n".join(lines[index + 1:end]), marker.group(1) if marker else None))
            index = end
        index += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A directory with runs/wflw-aug: 8 records at 32 px (4 synthetic faces, real and one epoch)."""
    root = tmp_path_factory.mktemp("readme")
    data = DatasetSpec("synthetic", count=4)
    bank = crop_dataset(open_dataset("synthetic", count=4), 32, progress=False)
    config = LafinTrainConfig(size=32, steps=1, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                              device="cpu", sample_every=0)
    inpainter = LafinTrainer(config, root / "inpainter", bank=bank, progress=False).fit()
    generate(GenerateConfig(data=data, inpainter=str(inpainter), epochs=1, device="cpu"), root / "runs" / "wflw-aug",
             bank=bank, progress=False)
    return root


def test_the_training_loop_block_is_found_and_runs():
    loops = [block for block in BLOCKS if "AugmentedShards(" in block.code]
    assert loops and all(block.not_run is None for block in loops)


def test_markers_mark_the_next_block_only():
    text = "x\n<!-- not run: needs mmpose -->\n\n```python\na = 1\n```\n```python\nb = 2\n```\n"
    assert python_blocks(text) == [Block(5, "a = 1", "needs mmpose"), Block(8, "b = 2", None)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{block.line}" for block in BLOCKS])
def test_readme_block_runs(block: Block, workspace: Path, monkeypatch):
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line}: not run: {block.not_run}")
    monkeypatch.chdir(workspace)
    exec(compile(block.code, f"README.md:{block.line}", "exec"), {"__name__": "readme"})
