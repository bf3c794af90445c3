"""What an inpainter family is, and the interface every family's model implements.

A family is one registration (`register_family`): its model config, its model class, its training
config and its trainer. The generate engine, the evaluation and the benchmark use nothing else::

    family = FAMILIES.get(name)
    model = family.model(family.model_config.from_dict(config_dict))
    generated = model(image, mask, conditions)   # [B,3,H,W] RGB in [0,1], not composited
    result = composite(generated, image, mask)   # known pixels bit-exactly the input

with image [B,3,H,W] RGB in [0,1], mask [B,1,H,W] (1 = missing) and `Conditions`: landmarks
[B,P,2] in pixel-index coordinates (P == model.config.points) and, for families that declare
`uses_parsing`, a one-hot face-parsing map [B,K,H,W] drawn from the landmarks
(`lafin_aug.data.parsing`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from lafin_aug.config import Config
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.parsing import parsing_maps
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.losses import InpaintLossWeights
from lafin_aug.registry import Registry


@dataclass
class Conditions:
    """What guides the inpainting besides the masked image (see the module docstring for shapes)."""

    landmarks: torch.Tensor
    parsing: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Conditions:
        """The same conditions on `device`."""
        return Conditions(self.landmarks.to(device), None if self.parsing is None else self.parsing.to(device))


@dataclass(frozen=True)
class InpainterTrainConfig(Config):
    """The options every family's training config has (a family's config subclasses this one).

    `lafin-aug train inpainter` sets these from its own options and the family's other fields
    from `--model KEY=VALUE`. masks/flip: the training masks and random mirroring; weights: LaFIn's
    Eq. 7 loss weights; vgg_weights: a torchvision vgg19-*.pth for the perceptual and style terms,
    "random" or "off" (see models/vgg.py); disc_width: the PatchGAN discriminator of families that
    train against one. consistency > 0 adds the landmark-consistency loss (beyond both
    papers): a frozen detector (`consistency_detector`, a checkpoint trained on real faces only)
    predicts landmarks on the composited output, and their distance to the conditioning landmarks
    over the inter-ocular distance, weighted by `consistency`, joins the generator's objective.
    fast_step: the faster training step (benchmarks/bench_training.py): the VGG-19 loss network runs
    under the run's precision (bf16 autocast in bf16 runs, float32 reductions), and networks that only
    judge the generator's output in its update (the discriminator, MDRNets' reconstruction encoder)
    get no weight gradients there (they were discarded anyway; fp32 losses are unchanged bit for
    bit). False: the step of lafin-aug 0.2.
    """

    data: DatasetSpec = field(default_factory=DatasetSpec)
    size: int = 256
    steps: int = 1000
    batch: int = 4
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 500
    masks: MaskConfig = field(default_factory=MaskConfig)
    flip: bool = True
    weights: InpaintLossWeights = field(default_factory=InpaintLossWeights)
    vgg_weights: str | None = None
    disc_width: int = 64
    consistency: float = 0.0
    consistency_detector: str | None = None
    fast_step: bool = True


class Train(Protocol):
    """A family's trainer: train (or resume) a run in `out`; returns its last checkpoint."""

    def __call__(self, config: Any, out: str | Path, resume: bool = False, progress: bool = True) -> Path: ...


@dataclass(frozen=True)
class InpainterFamily:
    """Everything the toolkit needs to build, train and run one inpainter family.

    model_config: the architecture (a Config with `points`); model: its nn.Module, built as
    `model(model_config)`; train_config: the family's InpainterTrainConfig subclass; trainer: the
    `Train` function, or "module:function" imported on first use (so that run-time code never
    imports training code); uses_parsing: its forward reads `conditions.parsing`.
    """

    name: str
    model_config: type[Config]
    model: type[nn.Module]
    train_config: type[InpainterTrainConfig]
    trainer: Train | str
    uses_parsing: bool = False

    def build(self, config: dict[str, Any]) -> nn.Module:
        """A fresh (untrained) model from a model-config dict."""
        return self.model(self.model_config.from_dict(config))

    def train(self, config: InpainterTrainConfig, out: str | Path, resume: bool = False,
              progress: bool = True) -> Path:
        """Run the family's trainer; returns the run's last checkpoint."""
        trainer = self.trainer
        if isinstance(trainer, str):
            module, _, name = trainer.partition(":")
            trainer = getattr(importlib.import_module(module), name)
        return trainer(config, out, resume=resume, progress=progress)

    def conditions(self, landmarks: torch.Tensor, size: int | tuple[int, int]) -> Conditions:
        """The conditions this family reads, drawn for a batch of landmarks on an image of `size`."""
        return Conditions(landmarks, parsing_maps(landmarks, size) if self.uses_parsing else None)


#: family name -> InpainterFamily
FAMILIES: Registry[InpainterFamily] = Registry("inpainter family")


def register_family(family: InpainterFamily) -> InpainterFamily:
    """Make `family` available by name to training, generation, evaluation and the CLI."""
    return FAMILIES.add(family.name, family)


def build_inpainter(family: str, config: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) model of `family` built from a model-config dict alone."""
    return FAMILIES.get(family).build(config)


def composite(generated: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """M * generated + (1 - M) * image, with M = mask > 0.5, as a select: known pixels are exactly `image`.

    Gradients reach `generated` inside the hole only. The result has the promoted dtype of the two.
    """
    return torch.where(mask > 0.5, generated, image)
