"""benchmarks/gpu_check.sh in its CPU smoke mode: every stage runs and prints its figures."""
from __future__ import annotations

import os
import re
import subprocess
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


def test_smoke_mode_runs_every_stage_on_the_cpu():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(["bash", str(SCRIPT), "--smoke"], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for stage in STAGES:
        assert f"=== {stage}" in result.stdout, f"no header {stage!r} in:\n{result.stdout[-4000:]}"
    for figure in FIGURES:
        assert re.search(figure, result.stdout, re.MULTILINE), f"no line {figure!r} in:\n{result.stdout[-4000:]}"
    summary = result.stdout.split("=== summary")[1]
    assert summary.count(": ok, ") == len(STAGES), summary
