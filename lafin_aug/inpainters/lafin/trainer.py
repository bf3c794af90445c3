"""Train LaFIn's G_P against the PatchGAN discriminator (paper Eq. 2-7)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.checkpoint import INPAINTER_FORMAT
from lafin_aug.data.crops import FaceCrops, load_crops, masked_batch
from lafin_aug.data.schedule import step_indices
from lafin_aug.images import to_uint8
from lafin_aug.inpainters.family import Conditions, composite
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.generator import LafinGenerator
from lafin_aug.losses import InpaintLoss, lsgan_discriminator_loss
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.models.discriminator import PatchDiscriminator
from lafin_aug.models.vgg import load_vgg19
from lafin_aug.runtime import autocast
from lafin_aug.trainer import Trainer
from lafin_aug.viz import draw_landmarks, image_grid, save_png


class LafinTrainer(Trainer):
    """One training run: models, optimisers, data and the loop; resumable bit-for-bit."""

    name = "lafin inpainter"
    format = INPAINTER_FORMAT

    def __init__(self, config: LafinTrainConfig, out: str | Path, resume: bool = False,
                 bank: FaceCrops | None = None, progress: bool = True):
        self._setup(config, out, progress, resume)
        self.bank = bank if bank is not None else load_crops(config.data, config.size, progress and self.rank == 0)
        if self.bank.size != config.size:
            raise ValueError(f"crops are {self.bank.size}px but the config asks for {config.size}px")
        self.generator = LafinGenerator(config.model_config(self.bank.points)).to(self.device)
        self.discriminator = PatchDiscriminator(width=config.disc_width).to(self.device)
        vgg, self.vgg_source = load_vgg19(config.vgg_weights)
        self.loss = InpaintLoss(vgg.to(self.device) if vgg is not None else None, config.weights)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self._start(resume)
        self.g_train, self.d_train = self.generator, self.discriminator
        if self.world > 1:
            self.g_train = DistributedDataParallel(self.generator)
            self.d_train = DistributedDataParallel(self.discriminator)

    def stateful(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d}

    def header_fields(self) -> dict[str, Any]:
        return {"family": "lafin", "config": self.generator.config.to_dict(), "size": self.config.size,
                "points": self.bank.points, "losses": {"vgg": self.vgg_source}}

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
        with autocast(self.device, self.precision):
            generated = self.g_train(image, mask, Conditions(landmarks))
        generated = generated.float()
        result = composite(generated, image, mask)

        self.opt_d.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            d_real = self.d_train(image, lmap)
            d_fake = self.d_train(result.detach(), lmap)
        loss_d = lsgan_discriminator_loss(d_real.float(), d_fake.float())
        loss_d.backward()
        self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
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
        with torch.no_grad(), autocast(self.device, self.precision):
            generated = self.generator(batch["image"], batch["mask"], Conditions(batch["landmarks"])).float()
        self.generator.train()
        result = composite(generated, batch["image"], batch["mask"])
        truth, output = to_uint8(batch["image"]), to_uint8(result)
        masked = to_uint8(batch["image"] * (1 - batch["mask"]))
        landmarks = batch["landmarks"].cpu().numpy()
        rows = [[masked[k], draw_landmarks(np.zeros_like(masked[k]), landmarks[k]), output[k], truth[k]]
                for k in range(len(truth))]
        save_png(path, image_grid(rows, labels=["input", "landmarks", "output", "ground truth"]))


def train_lafin(config: LafinTrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) a LaFIn run in `out`; returns the path of its last checkpoint."""
    return LafinTrainer(config, out, resume=resume, progress=progress).fit()
