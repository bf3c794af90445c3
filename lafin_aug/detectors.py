"""Landmark detectors built by name (timm-style registry) behind one interface.

Every detector is an nn.Module with a frozen-dataclass `config` (fields `points` and `size` at
least, `to_dict`/`from_dict`) and:
    outputs = model(image)                  # image [B,3,S,S] RGB in [0,1]; outputs["landmarks"] [B,P,2]
                                            # normalised, u = (x + 0.5) / S
    terms = model.loss(outputs, landmarks)  # landmarks [B,P,2] pixel-index; dict with "total"
    points = model.predict(image)           # [B,P,2] pixel-index, eval mode, no grad
Register a third one with `register_detector("name", ConfigClass)` on its class.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import torch
from torch import nn

from lafin_aug.models.lab import LABConfig, LABDetector
from lafin_aug.models.landmark_net import LandmarkNet, LandmarkNetConfig, to_normalised, to_pixel

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

#: name -> (config class, model class)
DETECTORS: dict[str, tuple[type, type[nn.Module]]] = {}


def register_detector(name: str, config_class: type) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make `build_detector(name, ...)` build this class from `config_class`."""
    def register(cls: ModelClass) -> ModelClass:
        if name in DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        DETECTORS[name] = (config_class, cls)
        return cls
    return register


def _registered(name: str) -> tuple[type, type[nn.Module]]:
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r} (registered: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name]


def detector_config(name: str, **options: Any) -> Any:
    """The config of detector `name` with `options` (e.g. points, size, width) set."""
    return _registered(name)[0].from_dict(options)


def build_detector(name: str, config: dict[str, Any]) -> nn.Module:
    """A fresh detector `name` from its config dict."""
    config_class, model_class = _registered(name)
    return model_class(config_class.from_dict(config))


@dataclass(frozen=True)
class BuiltinConfig:
    """LaFIn's landmark predictor G_L as a detector: points, input size, MobileNetV2 width multiplier."""

    points: int = 68
    size: int = 128
    width_mult: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuiltinConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown BuiltinConfig keys: {sorted(unknown)}")
        return cls(**data)


@register_detector("builtin", BuiltinConfig)
class BuiltinDetector(nn.Module):
    """G_L trained with the L2 loss of LaFIn's Eq. 1 on normalised coordinates."""

    def __init__(self, config: BuiltinConfig):
        super().__init__()
        self.config = config
        self.net = LandmarkNet(LandmarkNetConfig(points=config.points, width_mult=config.width_mult))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"landmarks": self.net(image)}

    def loss(self, outputs: dict[str, torch.Tensor], landmarks_px: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 1: squared L2 distance between predicted and true normalised points, averaged."""
        target = to_normalised(landmarks_px.to(outputs["landmarks"]), self.config.size)
        l2 = ((outputs["landmarks"] - target) ** 2).sum(-1).mean()
        return {"total": l2, "landmark": l2}

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return to_pixel(self(image)["landmarks"], self.config.size)
        finally:
            self.train(was_training)


register_detector("lab", LABConfig)(LABDetector)
