"""Train MDRNets in its three stages, in one run directory (see `MDRTrainConfig`).

  reconstruction  the encoder-decoder of InCo² on whole real crops: L1
  coarse          the partial-conv U-Net: hole-normalised L1 (LaFIn's Eq. 2) + 0.1 TV
  refine          style encoder, memory, MREM and refinement network (coarse network and
                  reconstruction encoder frozen) against a PatchGAN on [image, landmark map]:
                  pixel L1, perceptual, style, TV, adversarial (LaFIn's Eq. 2-7 weights) + InCo²

Each step belongs to one stage (`MDRTrainConfig.stage`), so `--resume` continues any stage exactly,
memory slots included (they are a buffer of the generator). Memory slots are updated only in the
refine stage, from this rank's batch (all ranks' vectors under torch.distributed).

Under torchrun every rank trains on its own share of each step's faces; the discriminator is wrapped in
DDP and the gradients of the other stages' networks are averaged over the ranks before each optimiser
step, so all ranks hold the same weights and memory slots after every step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lafin_aug.data.crops import FaceCrops
from lafin_aug.inpainters.family import composite
from lafin_aug.inpainters.mdr.config import MDRTrainConfig
from lafin_aug.inpainters.mdr.generator import MDRGenerator
from lafin_aug.inpainters.mdr.losses import inco2_loss
from lafin_aug.inpainters.mdr.reconstruction import ReconstructionNet
from lafin_aug.inpainters.training import InpainterTrainer
from lafin_aug.losses import lsgan_discriminator_loss, pixel_l1, total_variation
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.runtime import autocast, average_gradients


class MDRTrainer(InpainterTrainer):
    """One MDRNets run: every network, one optimiser per stage, the loop; resumable bit-for-bit."""

    family = "mdr"

    def __init__(self, config: MDRTrainConfig, out: str | Path, resume: bool = False,
                 bank: FaceCrops | None = None, progress: bool = True):
        self._prepare(config, out, resume, bank, progress)
        self.generator = MDRGenerator(config.model_config(self.bank.points)).to(self.device)
        self.reconstruction = ReconstructionNet(config.recon_width).to(self.device)
        self._build_adversary()
        adam = lambda params, lr: torch.optim.Adam(params, lr=lr, betas=config.betas)  # noqa: E731
        g = self.generator
        self.opt_recon = adam(self.reconstruction.parameters(), config.lr)
        self.opt_coarse = adam(g.coarse.parameters(), config.lr)
        refine = [p for name, p in g.named_parameters() if not name.startswith("coarse.")]
        self.opt_refine = adam(refine, config.lr)
        self.opt_d = adam(self.discriminator.parameters(), config.lr_d)
        self._start(resume)

    def stateful(self) -> dict[str, Any]:
        return {"generator": self.generator, "reconstruction": self.reconstruction,
                "discriminator": self.discriminator, "opt_recon": self.opt_recon, "opt_coarse": self.opt_coarse,
                "opt_refine": self.opt_refine, "opt_d": self.opt_d}

    def losses(self) -> dict[str, Any]:
        return {"vgg": self.vgg_source, "inco2": "reconstruction encoder (stage 1)", "semantic": "off (no parser)",
                "semantic_map": "landmarks"}

    def train(self, mode: bool = True) -> None:
        self.generator.train(mode)
        self.reconstruction.train(mode)
        self.discriminator.train(mode)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One step of the stage `self.step` belongs to; returns its loss terms (with 'total')."""
        stage = self.config.stage(self.step)
        terms = {"reconstruction": self._reconstruction_step, "coarse": self._coarse_step,
                 "refine": self._refine_step}[stage](batch)
        return {name: float(value.detach()) for name, value in terms.items()}

    def _reconstruction_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.precision):
            rebuilt = self.reconstruction(batch["image"])
        loss = (rebuilt.float() - batch["image"]).abs().mean()
        self._apply(self.opt_recon, loss)
        return {"total": loss, "recon_l1": loss}

    def _coarse_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image, mask = batch["image"], batch["mask"]
        with autocast(self.device, self.precision):
            coarse = self.generator.coarse(image, mask).float()
        hole, valid = pixel_l1(coarse, image, mask)
        tv = total_variation(composite(coarse, image, mask))
        loss = hole + valid + 0.1 * tv
        self._apply(self.opt_coarse, loss)
        return {"total": loss, "coarse_hole": hole, "coarse_valid": valid, "coarse_tv": tv}

    def _refine_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image, mask = batch["image"], batch["mask"]
        lmap = landmark_map(batch["landmarks"], image.shape[-1]).to(image)
        with autocast(self.device, self.precision):
            generated = self.generator.run(image, mask, self.conditions(batch), update_memory=True)["output"]
        generated = generated.float()
        result = composite(generated, image, mask)

        with autocast(self.device, self.precision):
            d_real = self.d_train(image, lmap)
            d_fake = self.d_train(result.detach(), lmap)
        loss_d = lsgan_discriminator_loss(d_real.float(), d_fake.float())
        self._apply(self.opt_d, loss_d)

        with autocast(self.device, self.precision), self.adversary_for_generator() as discriminator:
            d_fake_g = discriminator(result, lmap)
            with torch.no_grad():
                target_features = self.reconstruction.encode(image)
            with self.frozen(self.reconstruction):
                result_features = self.reconstruction.encode(result)
        terms = self.objective(generated, result, image, mask, d_fake_g.float())
        terms["inco2"] = inco2_loss(result_features.float(), target_features.float(), batch["parsing"], mask)
        terms["total"] = terms["total"] + self.config.inco2 * terms["inco2"]
        self.add_consistency(terms, result, batch["landmarks"])
        self._apply(self.opt_refine, terms["total"])
        terms["d_loss"] = loss_d
        return terms

    def _apply(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimiser step on `loss` (other stages' gradients are cleared first), with the gradients
        averaged over the ranks under torchrun (the discriminator's by its DDP wrapper)."""
        for group in (self.opt_recon, self.opt_coarse, self.opt_refine, self.opt_d):
            group.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer is not self.opt_d:
            average_gradients(p for group in optimizer.param_groups for p in group["params"])
        optimizer.step()


def train_mdr(config: MDRTrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) an MDRNets run in `out`; returns the path of its last checkpoint."""
    return MDRTrainer(config, out, resume=resume, progress=progress).fit()
