"""A third-party inpainter family, defined in this file only, runs train -> generate -> verify -> eval-inpaint.

Nothing under lafin_aug/ knows the "toy" family: it registers itself here, reads the face-parsing
condition, and goes through the same command line as LaFIn.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lafin_aug.cli.main import main
from torch import nn

from lafin_aug.checkpoint import INPAINTER_FORMAT, load_checkpoint
from lafin_aug.config import Config
from lafin_aug.data.crops import load_crops, masked_batch
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.parsing import PARSING_CLASSES
from lafin_aug.data.schedule import step_indices
from lafin_aug.inpainters import (
    FAMILIES,
    Conditions,
    InpainterFamily,
    InpainterTrainConfig,
    composite,
    load_inpainter,
    register_family,
)
from lafin_aug.shards import read_manifest
from lafin_aug.trainer import Trainer


@dataclass(frozen=True)
class ToyConfig(Config):
    points: int = 68
    width: int = 4


class ToyInpainter(nn.Module):
    """Two convolutions over [masked RGB, mask, parsing map]."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Conv2d(4 + len(PARSING_CLASSES), config.width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(config.width, 3, 3, padding=1))

    def forward(self, image: torch.Tensor, mask: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        assert conditions.parsing is not None and conditions.parsing.shape[-2:] == image.shape[-2:]
        return torch.sigmoid(self.net(torch.cat([image * (1 - mask), mask, conditions.parsing.to(image)], 1)))


@dataclass(frozen=True)
class ToyTrainConfig(InpainterTrainConfig):
    width: int = 4
    lr: float = 1e-2


class ToyTrainer(Trainer):
    name = "toy inpainter"
    format = INPAINTER_FORMAT

    def __init__(self, config: ToyTrainConfig, out: str | Path, resume: bool, progress: bool):
        self._setup(config, out, progress, resume)
        self.bank = load_crops(config.data, config.size, progress=False)
        self.model = ToyInpainter(ToyConfig(points=self.bank.points, width=config.width))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self._start(resume)

    def stateful(self) -> dict[str, Any]:
        return {"generator": self.model, "optimizer": self.optimizer}

    def header_fields(self) -> dict[str, Any]:
        return {"family": "toy", "config": self.model.config.to_dict(), "size": self.config.size,
                "points": self.bank.points, "losses": {"l1": "hole"}}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epochs, indices = step_indices(len(self.bank), self.config.batch, step, self.config.seed)
        return masked_batch(self.bank, indices, epochs, self.config.seed, MaskConfig())

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        conditions = FAMILIES.get("toy").conditions(batch["landmarks"], self.config.size)
        result = composite(self.model(batch["image"], batch["mask"], conditions), batch["image"], batch["mask"])
        loss = (result - batch["image"]).abs().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"total": float(loss.detach())}


def train_toy(config: ToyTrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    return ToyTrainer(config, out, resume, progress).fit()


@pytest.fixture(scope="module", autouse=True)
def toy_family():
    family = register_family(InpainterFamily("toy", ToyConfig, ToyInpainter, ToyTrainConfig, train_toy,
                                             uses_parsing=True))
    yield family
    FAMILIES.remove("toy")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, f"{args[0]}: {result.output}{result.exception!r}"
    return result.output


def _records(directory: Path) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for row in read_manifest(directory):
        with h5py.File(directory / row.name) as handle:
            for key in handle:
                parts.setdefault(key, []).append(handle[key][:])
    return {key: np.concatenate(value) for key, value in parts.items()}


def test_a_family_from_outside_the_package_runs_the_whole_pipeline(tmp_path):
    data = ["--dataset", "synthetic", "--count", "6"]
    run, shards = tmp_path / "run", tmp_path / "shards"
    _invoke("train", "inpainter", "--family", "toy", *data, "--size", "32", "--steps", "3", "--batch", "2",
            "--model", "width=6", "--sample-every", "0", "--device", "cpu", "--out", str(run))
    header = load_checkpoint(run / "checkpoints" / "last.pt")["header"]
    assert (header["family"], header["config"], header["step"]) == ("toy", {"points": 68, "width": 6}, 3)
    assert json.loads((run / "config.json").read_text())["header"]["train_config"]["width"] == 6

    _invoke("generate", *data, "--inpainter", str(run), "--epochs", "2", "--out", str(shards), "--device", "cpu")
    assert "ok" in _invoke("verify", str(shards))
    records = _records(shards)
    augmented = records["epoch"] >= 0
    real = records["image"][~augmented][np.argsort(records["source_index"][~augmented])]
    for image, mask, source in zip(records["image"][augmented], records["mask"][augmented],
                                   records["source_index"][augmented]):
        known = mask == 0
        assert np.array_equal(image[known], real[source][known])  # composited: known pixels untouched
        assert not np.array_equal(image[~known], real[source][~known])  # the toy model painted the hole
    run_json = json.loads((shards / "run.json").read_text())
    assert run_json["inpainter"]["family"] == "toy" and run_json["precision"] in ("fp32", "bf16")

    output = _invoke("eval-inpaint", "--inpainter", str(run), *data[:2], "--split", "test", "--count", "4",
                     "--size", "32", "--device", "cpu", "--out", str(tmp_path / "eval"))
    assert "| 50+ |" in output and (tmp_path / "eval" / "examples.png").is_file()
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["headers"]["toy"]["family"] == "toy"


def test_the_exported_generator_alone_gives_the_same_shards(tmp_path):
    data = ["--dataset", "synthetic", "--count", "4"]
    run = tmp_path / "run"
    _invoke("train", "inpainter", "--family", "toy", *data, "--size", "32", "--steps", "2", "--batch", "2",
            "--sample-every", "0", "--device", "cpu", "--out", str(run))
    _invoke("export-inpainter", str(run), "--out", str(tmp_path / "toy.pt"))
    exported = load_checkpoint(tmp_path / "toy.pt")
    assert sorted(exported) == ["generator", "header"]
    assert (tmp_path / "toy.pt").stat().st_size < (run / "checkpoints" / "last.pt").stat().st_size
    model, header = load_inpainter(tmp_path / "toy.pt")
    assert isinstance(model, ToyInpainter) and header.family == "toy" and not model.training
    for source, out in ((run, "a"), (tmp_path / "toy.pt", "b")):
        _invoke("generate", *data, "--inpainter", str(source), "--out", str(tmp_path / out), "--device", "cpu")
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert all(np.array_equal(a[key], b[key]) for key in a)


def test_an_unregistered_family_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    _invoke("train", "inpainter", "--family", "toy", "--count", "4", "--size", "32", "--steps", "1", "--batch", "2",
            "--sample-every", "0", "--device", "cpu", "--out", str(run))
    FAMILIES.remove("toy")
    try:
        with pytest.raises(ValueError, match=r"last.pt: inpainter family 'toy' is not registered here \(registered: "
                                             r"lafin.*import the module that registers it"):
            load_inpainter(run)
        result = CliRunner().invoke(main, ["train", "inpainter", "--family", "toy", "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and "Invalid value for '--family': 'toy'" in result.output
    finally:
        register_family(InpainterFamily("toy", ToyConfig, ToyInpainter, ToyTrainConfig, train_toy,
                                        uses_parsing=True))


def test_family_options_are_checked_against_its_config(tmp_path):
    result = CliRunner().invoke(main, ["train", "inpainter", "--family", "toy", "--model", "widht=3",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "unknown ToyTrainConfig keys ['widht']" in result.output
    assert not (tmp_path / "run").exists()
