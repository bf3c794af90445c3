"""Train any registered landmark detector (LaFIn's G_L, LAB, ...) from a batch source."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.checkpoint import DETECTOR_FORMAT
from lafin_aug.config import Config
from lafin_aug.data.crops import load_crops
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.data.transforms import TransformConfig, transform_face
from lafin_aug.detectors.base import build_detector, detector_config
from lafin_aug.detectors.sources import BatchSource, RealSource
from lafin_aug.images import to_tensor, to_uint8
from lafin_aug.runtime import autocast
from lafin_aug.trainer import Trainer
from lafin_aug.viz import draw_landmarks, image_grid, save_png


@dataclass(frozen=True)
class DetectorTrainConfig(Config):
    """Everything a detector training run depends on (written to config.json and checkpoints).

    hole_fraction: share of real training faces shown with a zero-filled mask hole (LaFIn trains
    its predictor G_L on masked faces: 1.0; the benchmark's baseline uses 0.0).
    """

    detector: str = "lafin-gl"
    model: dict[str, Any] = field(default_factory=dict)
    data: DatasetSpec = field(default_factory=DatasetSpec)
    size: int = 128
    steps: int = 2000
    batch: int = 16
    seed: int = 0
    lr: float = 1e-3
    final_lr_ratio: float = 0.01
    transforms: TransformConfig = field(default_factory=TransformConfig)
    hole_fraction: float = 1.0
    masks: MaskConfig = field(default_factory=MaskConfig)
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 20
    sample_every: int = 500
    checkpoint_every: int = 500

    def learning_rate(self, step: int) -> float:
        """Cosine decay from lr to lr * final_lr_ratio over the run (stateless, so resume is exact)."""
        progress = min(step / max(self.steps, 1), 1.0)
        floor = self.lr * self.final_lr_ratio
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))


def model_config(config: DetectorTrainConfig, points: int) -> Any:
    """The detector config a training config asks for (its options over the detector's defaults)."""
    return detector_config(config.detector, **{"points": points, "size": config.size, **config.model})


class DetectorTrainer(Trainer):
    """One detector training run over a batch source; resumable exactly."""

    name = "detector"
    format = DETECTOR_FORMAT

    def __init__(self, config: DetectorTrainConfig, out: str | Path, source: BatchSource | None = None,
                 resume: bool = False, progress: bool = True, points: int | None = None):
        self._setup(config, out, progress, resume)
        if source is None:
            bank = load_crops(config.data, config.size, progress and self.rank == 0)
            source = RealSource(bank, config.seed, config.hole_fraction, "zero", config.masks, self.rank, self.world)
            points = bank.points
            self.data_info = {"faces": len(bank), "skipped": bank.skipped}
        if points is None:
            raise ValueError("pass the landmark count with a custom source")
        self.source = source
        self.detector_config = model_config(config, points)
        self.model = build_detector(config.detector, self.detector_config.to_dict()).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self._start(resume)
        self.model_train = DistributedDataParallel(self.model) if self.world > 1 else self.model

    def stateful(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def header_fields(self) -> dict[str, Any]:
        return {"family": self.config.detector, "config": self.detector_config.to_dict(),
                "size": self.detector_config.size, "points": self.detector_config.points}

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.config.seed, step, self.rank, 0xDE7))
        images, landmarks = self.source.batch(step, self.config.batch, rng)
        pairs = [transform_face(image, points, rng, self.config.transforms) for image, points in zip(images, landmarks)]
        return {"image": to_tensor(np.stack([p[0] for p in pairs]), self.device),
                "landmarks": torch.from_numpy(np.stack([p[1] for p in pairs])).to(self.device)}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            outputs = self.model_train(batch["image"])
        outputs = {k: (v.float() if torch.is_tensor(v) else [t.float() for t in v]) for k, v in outputs.items()}
        terms = self.model.loss(outputs, batch["landmarks"])
        terms["total"].backward()
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def sample(self, batch: dict[str, torch.Tensor], path: Path) -> None:
        images = to_uint8(batch["image"][:8])
        predicted = self.model.predict(batch["image"][:8]).float().cpu().numpy()
        truth = batch["landmarks"][:8].cpu().numpy()
        rows = [[draw_landmarks(image, t, color=(0, 255, 0)), draw_landmarks(image, p, color=(255, 64, 0))]
                for image, t, p in zip(images, truth, predicted)]
        save_png(path, image_grid(rows, labels=["ground truth", "predicted"]))


def train_detector(config: DetectorTrainConfig, out: str | Path, resume: bool = False,
                   progress: bool = True) -> Path:
    """Train (or resume) a detector run in `out` on config.data; returns its last checkpoint path."""
    return DetectorTrainer(config, out, resume=resume, progress=progress).fit()
