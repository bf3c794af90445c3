"""Train the landmark-guided inpainter G_P against the PatchGAN discriminator (LaFIn Eq. 2-7)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.config import to_dict
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.samples import CropBank, masked_batch
from lafin_aug.data.schedule import step_indices
from lafin_aug.data.training import DataSpec, load_crops
from lafin_aug.losses import InpaintLoss, InpaintLossWeights, lsgan_discriminator_loss
from lafin_aug.models import build_inpainter, composite
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.models.discriminator import PatchDiscriminator
from lafin_aug.models.inpainter import GeneratorConfig
from lafin_aug.models.vgg import load_vgg19
from lafin_aug.train.common import Trainer, autocast, load_checkpoint_of, load_weights
from lafin_aug.viz import draw_landmarks, image_grid, save_png

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "lafin-aug-inpainter"


@dataclass(frozen=True)
class InpainterTrainConfig:
    """Everything a run of `lafin-aug train inpainter` depends on (written to config.json and checkpoints)."""

    data: DataSpec = field(default_factory=DataSpec)
    size: int = 256
    steps: int = 1000
    batch: int = 4
    seed: int = 0
    width: int = 64
    blocks: int = 7
    disc_width: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.9)
    weights: InpaintLossWeights = field(default_factory=InpaintLossWeights)
    masks: MaskConfig = field(default_factory=MaskConfig)
    flip: bool = True
    device: str = "auto"
    precision: str = "fp32"
    vgg_weights: str | None = None
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 500


def generator_config(config: InpainterTrainConfig, points: int) -> GeneratorConfig:
    """The G_P architecture a training config asks for."""
    return GeneratorConfig(width=config.width, blocks=config.blocks, points=points)


def load_inpainter(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(generator in eval mode, checkpoint dict) from an inpainter checkpoint file alone."""
    checkpoint = load_checkpoint_of(path, CHECKPOINT_KIND)
    model = build_inpainter(checkpoint["generator_config"])
    load_weights(model, checkpoint["generator"], path)
    return model.to(device).eval(), checkpoint


class InpainterTrainer(Trainer):
    """One training run: models, optimisers, data and the loop; resumable bit-for-bit."""

    name = "inpainter"
    kind = CHECKPOINT_KIND

    def __init__(self, config: InpainterTrainConfig, out: str | Path, resume: bool = False,
                 bank: CropBank | None = None, progress: bool = True):
        self._setup(config, out, progress)
        self.bank = bank if bank is not None else load_crops(config.data, config.size, progress and self.rank == 0)
        if self.bank.size != config.size:
            raise ValueError(f"crops are {self.bank.size}px but the config asks for {config.size}px")
        self.generator = build_inpainter(generator_config(config, self.bank.points).to_dict()).to(self.device)
        self.discriminator = PatchDiscriminator(width=config.disc_width).to(self.device)
        vgg, self.vgg_source = load_vgg19(config.vgg_weights)
        self.loss = InpaintLoss(vgg.to(self.device) if vgg is not None else None, config.weights)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self._start({"train": to_dict(config), **self.extra(), "world_size": self.world}, resume)
        self.g_train, self.d_train = self.generator, self.discriminator
        if self.world > 1:
            self.g_train = DistributedDataParallel(self.generator)
            self.d_train = DistributedDataParallel(self.discriminator)

    def stateful(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d}

    def extra(self) -> dict[str, Any]:
        return {"generator_config": self.generator.config.to_dict(), "vgg": self.vgg_source}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """This rank's batch at `step`: a pure function of (seed, step)."""
        cfg = self.config
        epochs, indices = step_indices(len(self.bank), cfg.batch, step, cfg.seed, self.rank, self.world)
        flips = None
        if cfg.flip:
            flips = np.random.default_rng((cfg.seed, step, self.rank, 0xF11B)).random(cfg.batch) < 0.5
        batch = masked_batch(self.bank, indices, epochs, cfg.seed, cfg.masks, flips)
        return {k: v.to(self.device) for k, v in batch.items()}

    def train(self, mode: bool = True) -> None:
        self.generator.train(mode)
        self.discriminator.train(mode)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator update and one generator update; returns every loss term."""
        image, mask, landmarks = batch["image"], batch["mask"], batch["landmarks"]
        lmap = landmark_map(landmarks, image.shape[-1], self.generator.config.landmark_radius).to(image)
        with autocast(self.device, self.config.precision):
            generated = self.g_train(image, mask, landmarks)
        generated = generated.float()
        result = composite(generated, image, mask)

        self.opt_d.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            d_real = self.d_train(image, lmap)
            d_fake = self.d_train(result.detach(), lmap)
        loss_d = lsgan_discriminator_loss(d_real.float(), d_fake.float())
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            d_fake_g = self.d_train(result, lmap)
        terms = self.loss(generated, result, image, mask, d_fake_g.float())
        terms["total"].backward()
        self.opt_g.step()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["d_loss"] = float(loss_d.detach())
        return values

    def sample(self, batch: dict[str, torch.Tensor], path: Path) -> None:
        """PNG rows of input / landmarks / output / ground truth for the batch."""
        self.generator.eval()
        with torch.no_grad(), autocast(self.device, self.config.precision):
            generated = self.generator(batch["image"], batch["mask"], batch["landmarks"]).float()
        self.generator.train()
        result = composite(generated, batch["image"], batch["mask"])
        to_uint8 = lambda t: (t.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
        truth, output = to_uint8(batch["image"]), to_uint8(result)
        masked = to_uint8(batch["image"] * (1 - batch["mask"]))
        landmarks = batch["landmarks"].cpu().numpy()
        rows = [[masked[k], draw_landmarks(np.zeros_like(masked[k]), landmarks[k]), output[k], truth[k]]
                for k in range(len(truth))]
        save_png(path, image_grid(rows, labels=["input", "landmarks", "output", "ground truth"]))


def train_inpainter(config: InpainterTrainConfig, out: str | Path, resume: bool = False,
                    progress: bool = True) -> Path:
    """Train (or resume) an inpainter run in `out`; returns the path of its last checkpoint."""
    return InpainterTrainer(config, out, resume=resume, progress=progress).fit()
