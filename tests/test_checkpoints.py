"""Checkpoint files: the typed header, one clear error per kind of bad file, the version-1 converter."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main

from lafin_aug.checkpoint import CheckpointError, CheckpointHeader, convert_checkpoint, load_checkpoint
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.detectors import load_detector
from lafin_aug.inpainters import Conditions, load_inpainter
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer


@pytest.fixture(scope="module")
def runs(tiny_runs):
    return tiny_runs


def as_version_1(checkpoint: dict) -> dict:
    """The layout lafin-aug wrote before the header (kind, generator_config/detector keys at the top)."""
    header = checkpoint.pop("header")
    old = {"kind": header["format"], "step": header["step"], "train_config": header["train_config"], **checkpoint}
    old["train_config"]["precision"] = header["precision"]  # version 1 had no "auto"
    if header["format"] == "lafin-aug-inpainter":
        old.update(generator_config={"family": header["family"], **header["config"]}, vgg=header["losses"]["vgg"])
    else:
        old["train_config"]["augment"] = old["train_config"].pop("transforms")
        old["train_config"]["detector"] = "builtin"
        old.update(detector="builtin", detector_config=header["config"])
    return old


@pytest.mark.parametrize("content, message", [
    (b"", r"not a readable torch weight file \(the file is empty\)"),
    (np.random.default_rng(0).bytes(2000), "not a readable torch weight file"),
])
def test_files_that_are_not_checkpoints(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{path}: {message}") as error:
        load_inpainter(path)
    assert "weights_only" not in str(error.value)


def test_pickled_objects_and_non_dicts_are_refused(tmp_path):
    torch.save({"header": np.random.default_rng(0)}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="holds Python objects other than tensors and plain data") as error:
        load_checkpoint(tmp_path / "code.pt")
    assert "weights_only" not in str(error.value)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt: a checkpoint holds a dict, this one holds a list"):
        load_inpainter(tmp_path / "list.pt")
    torch.save({"generator": {}}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match=r"bare.pt: not a lafin-aug checkpoint \(no 'header'"):
        load_inpainter(tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_inpainter(tmp_path / "missing.pt")


def test_header_problems_name_the_file(runs, tmp_path):
    inpainter, detector = runs
    with pytest.raises(CheckpointError, match="a 'lafin-aug-detector' checkpoint where a 'lafin-aug-inpainter'"):
        load_inpainter(detector)
    checkpoint = torch.load(inpainter, weights_only=True)
    for change, message in [({"version": 3}, "checkpoint version 3, this lafin-aug reads version 2"),
                            ({"family": "nope"}, "inpainter family 'nope' is not registered"),
                            ({"config": {"widht": 8}}, r"the stored lafin config does not build a model \(unknown"),
                            ({"size": "big", "extra": 1}, "unreadable checkpoint header")]:
        torch.save({**checkpoint, "header": {**checkpoint["header"], **change}}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=f"bad.pt: {message}"):
            load_inpainter(tmp_path / "bad.pt")
    torch.save({key: value for key, value in checkpoint.items() if key != "generator"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt: the checkpoint has no 'generator' weights"):
        load_inpainter(tmp_path / "bad.pt")


def test_weights_of_another_width_say_what_differs(runs, tmp_path):
    checkpoint = torch.load(runs[0], weights_only=True)
    checkpoint["header"]["config"]["width"] = 16
    torch.save(checkpoint, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match=r"wide.pt: does not hold LafinGenerator weights: shapes "
                                              r"\(file vs model\) encoder1.0.weight \(8, 5, 7, 7\) vs \(16, 5, 7, 7\)"):
        load_inpainter(tmp_path / "wide.pt")


def test_version_1_checkpoints_fail_with_the_conversion_command_then_convert(runs, tmp_path):
    inpainter, detector = runs
    for source, name in ((inpainter, "inpainter"), (detector, "detector")):
        torch.save(as_version_1(torch.load(source, weights_only=True)), tmp_path / f"{name}-v1.pt")
    old = tmp_path / "inpainter-v1.pt"
    result = CliRunner().invoke(main, ["generate", "--inpainter", str(old), "--count", "2", "--out",
                                       str(tmp_path / "shards")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {old}: written by lafin-aug before checkpoint version 2; convert it with " \
           f"`lafin-aug convert-checkpoint {old} --out NEW.pt`" in result.output
    assert not (tmp_path / "shards").exists()

    result = CliRunner().invoke(main, ["convert-checkpoint", str(old), "--out", str(tmp_path / "inpainter-v2.pt")])
    assert result.exit_code == 0, result.output
    converted, header = load_inpainter(tmp_path / "inpainter-v2.pt")
    original, original_header = load_inpainter(inpainter)
    assert header.replace(train_config={}) == original_header.replace(train_config={})
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 4:20, 4:20] = 1
    conditions = Conditions(torch.rand(1, 68, 2) * 31)
    assert torch.equal(converted(image, mask, conditions), original(image, mask, conditions))

    header = convert_checkpoint(tmp_path / "detector-v1.pt", tmp_path / "detector-v2.pt")
    assert isinstance(header, CheckpointHeader) and header.family == "lafin-gl"
    model, loaded = load_detector(tmp_path / "detector-v2.pt")
    assert loaded.train_config["transforms"] == torch.load(detector, weights_only=True)["header"]["train_config"][
        "transforms"]
    with pytest.raises(CheckpointError, match="already a version-2 checkpoint"):
        convert_checkpoint(tmp_path / "detector-v2.pt", tmp_path / "again.pt")


def test_a_converted_training_checkpoint_resumes(runs, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(as_version_1(torch.load(runs[0], weights_only=True)), tmp_path / "v1.pt")
    convert_checkpoint(tmp_path / "v1.pt", run / "checkpoints" / "last.pt")
    config = LafinTrainConfig(size=32, steps=3, batch=2, width=8, blocks=1, disc_width=8, vgg_weights="off",
                              device="cpu", sample_every=0)
    bank = crop_dataset(open_dataset("synthetic", count=6), 32, progress=False)
    trainer = LafinTrainer(config, run, resume=True, bank=bank, progress=False)
    assert trainer.step == 2
    trainer.fit()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["header"]["step"] == 3
