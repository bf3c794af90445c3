"""Inpainter families behind one interface, built by name from a config dict (timm-style registry).

The interface every family implements (the trainer and the generate engine use nothing else):

    model = build_inpainter(config_dict)        # config_dict["family"] picks the class
    generated = model(image, mask, landmarks)   # [B,3,H,W] RGB in [0,1], not composited
    result = composite(generated, image, mask)  # known pixels bit-exactly the input
    model.config.to_dict()                      # plain data that rebuilds the same model

with image [B,3,H,W] RGB in [0,1], mask [B,1,H,W] (1 = missing) and landmarks [B,P,2] in
pixel-index coordinates, P == model.config.points.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from lafin_aug.models.inpainter import GeneratorConfig, LafinGenerator


class InpainterConfig(Protocol):
    points: int

    def to_dict(self) -> dict[str, Any]: ...


class Inpainter(Protocol):
    """What a registered class provides: `config_class.from_dict`, `__init__(config)`, `config`, forward."""

    config: InpainterConfig

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor: ...


ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

#: family name -> model class
INPAINTERS: dict[str, type[nn.Module]] = {}


def register_inpainter(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make `build_inpainter({"family": name, ...})` build this class."""
    def register(cls: ModelClass) -> ModelClass:
        if name in INPAINTERS:
            raise ValueError(f"inpainter family {name!r} is already registered ({INPAINTERS[name].__name__})")
        INPAINTERS[name] = cls
        return cls
    return register


def build_inpainter(config: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) model of config["family"] built from the config dict alone."""
    family = config.get("family")
    if family not in INPAINTERS:
        raise ValueError(f"unknown inpainter family {family!r} (registered: {sorted(INPAINTERS)})")
    cls = INPAINTERS[family]
    return cls(cls.config_class.from_dict(config))


def composite(generated: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """M * generated + (1 - M) * image, with M = mask > 0.5, as a select: known pixels are exactly `image`.

    Gradients reach `generated` inside the hole only. The result has the promoted dtype of the two.
    """
    return torch.where(mask > 0.5, generated, image)


register_inpainter(GeneratorConfig.family)(LafinGenerator)

__all__ = ["INPAINTERS", "GeneratorConfig", "Inpainter", "LafinGenerator", "build_inpainter",
           "composite", "register_inpainter"]
