"""Train LaFIn's G_P against the PatchGAN discriminator (paper Eq. 2-7)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from lafin_aug.data.crops import FaceCrops
from lafin_aug.inpainters.family import composite
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.generator import LafinGenerator
from lafin_aug.inpainters.training import InpainterTrainer
from lafin_aug.losses import lsgan_discriminator_loss
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.runtime import autocast


class LafinTrainer(InpainterTrainer):
    """One training run: models, optimisers, data and the loop; resumable bit-for-bit."""

    family = "lafin"

    def __init__(self, config: LafinTrainConfig, out: str | Path, resume: bool = False,
                 bank: FaceCrops | None = None, progress: bool = True):
        self._prepare(config, out, resume, bank, progress)
        self.generator = LafinGenerator(config.model_config(self.bank.points)).to(self.device)
        self._build_adversary()
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self._start(resume)
        self.g_train = DistributedDataParallel(self.generator) if self.world > 1 else self.generator

    def stateful(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d}

    def losses(self) -> dict[str, Any]:
        return {"vgg": self.vgg_source}

    def train(self, mode: bool = True) -> None:
        self.generator.train(mode)
        self.discriminator.train(mode)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator update and one generator update; returns every loss term."""
        image, mask, landmarks = batch["image"], batch["mask"], batch["landmarks"]
        lmap = landmark_map(landmarks, image.shape[-1], self.generator.config.landmark_radius).to(image)
        with autocast(self.device, self.precision):
            generated = self.g_train(image, mask, self.conditions(batch))
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
        with autocast(self.device, self.precision), self.adversary_for_generator() as discriminator:
            d_fake_g = discriminator(result, lmap)
        terms = self.objective(generated, result, image, mask, d_fake_g.float())
        self.add_consistency(terms, result, landmarks)
        terms["total"].backward()
        self.opt_g.step()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["d_loss"] = float(loss_d.detach())
        return values


def train_lafin(config: LafinTrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) a LaFIn run in `out`; returns the path of its last checkpoint."""
    return LafinTrainer(config, out, resume=resume, progress=progress).fit()
