"""The command line: thin commands over the library, clear failures."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from lafin_aug.cli.main import main


@pytest.fixture(scope="module")
def checkpoints(tiny_runs):
    return tiny_runs


def test_stats_json_on_the_synthetic_default():
    result = CliRunner().invoke(main, ["stats", "--dataset", "synthetic", "--count", "5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["faces"] == 5 and summary["points"] == 68 and summary["skipped"] == 0


def test_generate_verify_preview_and_a_failing_verify(checkpoints, tmp_path):
    inpainter, _ = checkpoints
    runner = CliRunner()
    out = tmp_path / "shards"
    result = runner.invoke(main, ["generate", "--dataset", "synthetic", "--count", "6", "--inpainter", str(inpainter),
                                  "--epochs", "2", "--out", str(out), "--shard-size", "7", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "18 records" in result.output
    assert runner.invoke(main, ["verify", str(out)]).exit_code == 0
    preview = runner.invoke(main, ["preview", str(out), "--out", str(tmp_path / "grid.png"), "--n", "4"])
    assert preview.exit_code == 0 and (tmp_path / "grid.png").stat().st_size > 1000
    victim = out / "shard-00001.h5"
    victim.write_bytes(victim.read_bytes()[:-10])
    failed = runner.invoke(main, ["verify", str(out), "--json"])
    assert failed.exit_code == 1
    assert "shard-00001.h5" in failed.stdout and json.loads(failed.stdout)["ok"] is False


def test_eval_inpaint_writes_tables_and_examples(checkpoints, tmp_path):
    inpainter, predictor = checkpoints
    result = CliRunner().invoke(main, ["eval-inpaint", "--inpainter", str(inpainter), "--landmarks", str(predictor),
                                       "--dataset", "synthetic", "--split", "test", "--count", "4", "--size", "32",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for bucket in ("10-20", "50+", "centre"):
        assert f"| {bucket} |" in result.output
    assert "unmasked" in result.output
    for name in ("table.md", "table.csv", "results.json", "examples.png"):
        assert (tmp_path / name).is_file()
    table, faces = pd.read_csv(tmp_path / "table.csv"), pd.read_csv(tmp_path / "per_face.csv")
    assert len(faces) == 4 * len(table.dropna(subset=["psnr"]))  # every face of every (method, bucket)
    means = faces.groupby(["method", "bucket"], sort=False)[["psnr", "ssim", "l1"]].mean().reset_index()
    merged = means.merge(table, on=["method", "bucket"], suffixes=("", "_table"))
    assert len(merged) == len(means)
    for column in ("psnr", "ssim", "l1"):
        assert merged[column].to_numpy() == pytest.approx(merged[f"{column}_table"].to_numpy())


def test_training_a_second_time_into_a_run_needs_resume(checkpoints):
    inpainter, _ = checkpoints
    run = inpainter.parent.parent
    result = CliRunner().invoke(main, ["train", "inpainter", "--count", "4", "--size", "32", "--steps", "1",
                                       "--model", "width=8", "--model", "blocks=1", "--model", "vgg_weights=off",
                                       "--out", str(run)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {run} already holds a run (pass --resume to continue it")


def test_checkpoint_every_zero_keeps_last_pt_only_and_negative_is_a_usage_error(tmp_path):
    run = tmp_path / "run"
    options = ["train", "landmarks", "--count", "4", "--size", "32", "--steps", "2", "--batch", "2",
               "--detector", "lafin-gl", "--model", "width_mult=0.25", "--out", str(run)]
    result = CliRunner().invoke(main, [*options, "--checkpoint-every", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    result = CliRunner().invoke(main, [*options, "--checkpoint-every", "-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_the_demo_runs_every_stage_at_a_tiny_size(tmp_path, capsys):
    from lafin_aug.demo import DemoConfig, run_demo
    paths = run_demo(tmp_path, DemoConfig(faces=8, test_faces=4, size=32, inpainter_steps=2, predictor_steps=2,
                                          bench_steps=2), progress=False)
    printed = capsys.readouterr().out
    assert "native bf16: " in printed and "; precision " in printed
    for name in ("preview", "inpainting table", "bench summary", "bench CED", "inpainter checkpoint"):
        assert paths[name].exists(), name
    assert "| test | pairs:lafin |" in (tmp_path / "bench" / "summary.md").read_text()
