"""What every inpainter family's trainer shares: the crops, seeded masked batches, conditions, sample grids.

A family trainer subclasses `InpainterTrainer`, sets `family`, builds `self.generator` (and its
other networks) after `_prepare`, and provides `stateful`, `train_step`, `train` and `losses`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.checkpoint import INPAINTER_FORMAT
from lafin_aug.data.crops import FaceCrops, load_crops, masked_batch
from lafin_aug.data.schedule import step_indices
from lafin_aug.detectors import load_detector
from lafin_aug.images import to_uint8
from lafin_aug.inpainters.family import FAMILIES, Conditions, InpainterTrainConfig, composite
from lafin_aug.landmarks import schema_for
from lafin_aug.losses import InpaintLoss
from lafin_aug.models.discriminator import PatchDiscriminator
from lafin_aug.models.vgg import load_vgg19
from lafin_aug.runtime import autocast
from lafin_aug.trainer import Trainer
from lafin_aug.viz import draw_landmarks, image_grid, save_png


class InpainterTrainer(Trainer):
    """The shared part of an inpainter training run; `config` is an InpainterTrainConfig with `masks` and `flip`."""

    format = INPAINTER_FORMAT
    family = ""
    generator: torch.nn.Module

    def _prepare(self, config: InpainterTrainConfig, out: str | Path, resume: bool, bank: FaceCrops | None,
                 progress: bool) -> None:
        """Setup (run directory checked first), then the crops of config.data at config.size."""
        self._setup(config, out, progress, resume)
        self.name = f"{self.family} inpainter"
        self.bank = bank if bank is not None else load_crops(config.data, config.size, progress and self.rank == 0)
        if self.bank.size != config.size:
            raise ValueError(f"crops are {self.bank.size}px but the config asks for {config.size}px")
        self.data_info = {"faces": len(self.bank), "skipped": self.bank.skipped}
        self.judge = None
        if config.consistency:
            if not config.consistency_detector:
                raise ValueError("consistency > 0 needs consistency_detector: a detector checkpoint trained on "
                                 "real faces only")
            self.judge = load_detector(config.consistency_detector, self.device)[0].requires_grad_(False)
            if self.judge.config.points != self.bank.points:
                raise ValueError(f"{config.consistency_detector}: a {self.judge.config.points}-point detector for "
                                 f"{self.bank.points}-point faces")

    def consistency_loss(self, result: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Mean over faces of the mean point distance between the frozen detector's landmarks on
        `result` and `landmarks` (pixel-index), over the inter-ocular distance of `landmarks`."""
        size = self.judge.config.size
        scale = size / result.shape[-1]
        image = result if scale == 1 else F.interpolate(result, size=(size, size), mode="bilinear",
                                                        align_corners=False, antialias=scale < 1)
        predicted = self.judge(image.float())["landmarks"].float() * size - 0.5
        target = (landmarks.float() + 0.5) * scale - 0.5
        left, right = schema_for(landmarks.shape[1]).eye_corners
        inter_ocular = (target[:, left] - target[:, right]).norm(dim=-1).clamp_min(1.0)
        return ((predicted - target).norm(dim=-1).mean(-1) / inter_ocular).mean()

    def add_consistency(self, terms: dict[str, torch.Tensor], result: torch.Tensor,
                        landmarks: torch.Tensor) -> None:
        """Add the weighted landmark-consistency term to terms["total"] when the run uses it."""
        if self.judge is not None:
            terms["consistency"] = self.consistency_loss(result, landmarks)
            terms["total"] = terms["total"] + self.config.consistency * terms["consistency"]

    @contextmanager
    def frozen(self, *modules: torch.nn.Module) -> Iterator[None]:
        """With fast_step, the graph built inside gives `modules` no weight gradients (the generator's
        update would discard them); their inputs still get theirs. Without it, nothing changes."""
        if not self.config.fast_step:
            yield
            return
        parameters = [p for module in modules for p in module.parameters()]
        trained = [p.requires_grad for p in parameters]
        for p in parameters:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(parameters, trained):
                p.requires_grad_(flag)

    @contextmanager
    def adversary_for_generator(self) -> Iterator[torch.nn.Module]:
        """The discriminator that scores the generator's output: with fast_step the plain module, frozen
        (see `frozen`), else the training wrapper."""
        if not self.config.fast_step:
            yield self.d_train
            return
        with self.frozen(self.discriminator):
            yield self.discriminator

    def objective(self, generated: torch.Tensor, result: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
                  d_fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms of InpaintLoss (Eq. 2-7); with fast_step its VGG-19 runs under the run's precision."""
        with autocast(self.device, self.precision if self.config.fast_step else "fp32"):
            return self.loss(generated, result, image, mask, d_fake_logits)

    def _build_adversary(self) -> None:
        """self.discriminator (the PatchGAN on [image, landmark map]; self.d_train wraps it for DDP) and
        self.loss (LaFIn's Eq. 2-7 with the run's VGG-19 choice, recorded in self.vgg_source)."""
        self.discriminator = PatchDiscriminator(width=self.config.disc_width).to(self.device)
        self.d_train = DistributedDataParallel(self.discriminator) if self.world > 1 else self.discriminator
        vgg, self.vgg_source = load_vgg19(self.config.vgg_weights)
        self.loss = InpaintLoss(vgg.to(self.device) if vgg is not None else None, self.config.weights)

    def losses(self) -> dict[str, Any]:
        """Which loss networks and weights the family uses (stored in the checkpoint header)."""
        return {}

    def header_fields(self) -> dict[str, Any]:
        losses = self.losses()
        if self.judge is not None:
            losses["consistency"] = {"detector": self.config.consistency_detector, "weight": self.config.consistency}
        return {"family": self.family, "config": self.generator.config.to_dict(), "size": self.config.size,
                "points": self.bank.points, "losses": losses}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's batch at `step`, a pure function of (seed, step): image, mask, landmarks, and
        parsing where the family reads it."""
        cfg = self.config
        epochs, indices = step_indices(len(self.bank), cfg.batch, step, cfg.seed, self.rank, self.world)
        flips = None
        if cfg.flip:
            flips = np.random.default_rng((cfg.seed, step, self.rank, 0xF11B)).random(cfg.batch) < 0.5
        batch = masked_batch(self.bank, indices, epochs, cfg.seed, cfg.masks, flips)
        conditions = FAMILIES.get(self.family).conditions(batch["landmarks"], cfg.size)
        if conditions.parsing is not None:
            batch["parsing"] = conditions.parsing
        return {k: v.to(self.device) for k, v in batch.items()}

    @staticmethod
    def conditions(batch: dict[str, torch.Tensor]) -> Conditions:
        """The conditions of a batch from `batch`."""
        return Conditions(batch["landmarks"], batch.get("parsing"))

    def sample(self, batch: dict[str, torch.Tensor], path: Path) -> None:
        """PNG rows of input / landmarks / output / ground truth for the batch."""
        self.generator.eval()
        with torch.no_grad(), autocast(self.device, self.precision):
            generated = self.generator(batch["image"], batch["mask"], self.conditions(batch)).float()
        self.train(True)
        result = composite(generated, batch["image"], batch["mask"])
        truth, output = to_uint8(batch["image"]), to_uint8(result)
        masked = to_uint8(batch["image"] * (1 - batch["mask"]))
        landmarks = batch["landmarks"].cpu().numpy()
        rows = [[masked[k], draw_landmarks(np.zeros_like(masked[k]), landmarks[k]), output[k], truth[k]]
                for k in range(len(truth))]
        save_png(path, image_grid(rows, labels=["input", "landmarks", "output", "ground truth"]))
