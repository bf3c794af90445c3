"""Train any registered landmark detector (the built-in G_L, LAB, ...) from a batch source."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.config import to_dict
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.training import DataSpec, load_crops
from lafin_aug.data.transforms import AugmentConfig, augment_face
from lafin_aug.detectors import build_detector, detector_config
from lafin_aug.train.common import Trainer, autocast, load_checkpoint_of, load_weights
from lafin_aug.train.sources import BatchSource, RealSource
from lafin_aug.viz import draw_landmarks, image_grid, save_png

CHECKPOINT_KIND = "lafin-aug-detector"


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything a detector training run depends on (written to config.json and checkpoints).

    hole_fraction: share of real training faces shown with a zero-filled mask hole (LaFIn trains
    its predictor G_L on masked faces: 1.0; the benchmark's baseline uses 0.0).
    """

    detector: str = "builtin"
    model: dict[str, Any] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    size: int = 128
    steps: int = 2000
    batch: int = 16
    seed: int = 0
    lr: float = 1e-3
    final_lr_ratio: float = 0.01
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hole_fraction: float = 1.0
    masks: MaskConfig = field(default_factory=MaskConfig)
    device: str = "auto"
    precision: str = "fp32"
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


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(detector in eval mode, checkpoint dict) rebuilt from a detector checkpoint file alone."""
    checkpoint = load_checkpoint_of(path, CHECKPOINT_KIND)
    model = build_detector(checkpoint["detector"], checkpoint["detector_config"])
    load_weights(model, checkpoint["model"], path)
    return model.to(device).eval(), checkpoint


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [B,S,S,3] -> float [B,3,S,S] in [0,1] on `device`."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255)


@torch.no_grad()
def predict_images(model: torch.nn.Module, images: np.ndarray, batch: int = 64,
                   precision: str = "fp32") -> np.ndarray:
    """Pixel-index landmarks [N,P,2] that `model` predicts for uint8 crops [N,S,S,3]."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch):
        with autocast(device, precision):
            out.append(model.predict(to_tensor(images[start:start + batch], device)).float().cpu().numpy())
    return np.concatenate(out)


class DetectorTrainer(Trainer):
    """One detector training run over a batch source; resumable exactly."""

    name = "detector"
    kind = CHECKPOINT_KIND

    def __init__(self, config: DetectorTrainConfig, out: str | Path, source: BatchSource | None = None,
                 resume: bool = False, progress: bool = True, points: int | None = None):
        self._setup(config, out, progress)
        if source is None:
            bank = load_crops(config.data, config.size, progress and self.rank == 0)
            source = RealSource(bank, config.seed, config.hole_fraction, "zero", config.masks, self.rank, self.world)
            points = bank.points
        if points is None:
            raise ValueError("pass the landmark count with a custom source")
        self.source = source
        self.detector_config = model_config(config, points)
        self.model = build_detector(config.detector, self.detector_config.to_dict()).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self._start({"train": to_dict(config), **self.extra()}, resume)
        self.model_train = DistributedDataParallel(self.model) if self.world > 1 else self.model

    def stateful(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def extra(self) -> dict[str, Any]:
        return {"detector": self.config.detector, "detector_config": self.detector_config.to_dict()}

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.config.seed, step, self.rank, 0xDE7))
        images, landmarks = self.source.batch(step, self.config.batch, rng)
        pairs = [augment_face(image, points, rng, self.config.augment) for image, points in zip(images, landmarks)]
        return {"image": to_tensor(np.stack([p[0] for p in pairs]), self.device),
                "landmarks": torch.from_numpy(np.stack([p[1] for p in pairs])).to(self.device)}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            outputs = self.model_train(batch["image"])
        outputs = {k: (v.float() if torch.is_tensor(v) else [t.float() for t in v]) for k, v in outputs.items()}
        terms = self.model.loss(outputs, batch["landmarks"])
        terms["total"].backward()
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def sample(self, batch: dict[str, torch.Tensor], path: Path) -> None:
        images = (batch["image"][:8].clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()
        predicted = self.model.predict(batch["image"][:8]).float().cpu().numpy()
        truth = batch["landmarks"][:8].cpu().numpy()
        rows = [[draw_landmarks(image, t, color=(0, 255, 0)), draw_landmarks(image, p, color=(255, 64, 0))]
                for image, t, p in zip(images, truth, predicted)]
        save_png(path, image_grid(rows, labels=["ground truth", "predicted"]))


def train_detector(config: DetectorTrainConfig, out: str | Path, resume: bool = False,
                   progress: bool = True) -> Path:
    """Train (or resume) a detector run in `out` on config.data; returns its last checkpoint path."""
    return DetectorTrainer(config, out, resume=resume, progress=progress).fit()
