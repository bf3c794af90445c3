"""Landmark detectors built by name (timm-style registry) behind one interface, and their checkpoints.

Every detector is an nn.Module with a frozen Config `config` (fields `points` and `size` at
least) and:
    outputs = model(image)                  # image [B,3,S,S] RGB in [0,1]; outputs["landmarks"] [B,P,2]
                                            # normalised, u = (x + 0.5) / S
    terms = model.loss(outputs, landmarks)  # landmarks [B,P,2] pixel-index; dict with "total"
    points = model.predict(image)           # [B,P,2] pixel-index, eval mode, no grad
A detector registers itself in its own module with `@register_detector("name", ConfigClass)`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.checkpoint import (
    DETECTOR_FORMAT,
    CheckpointError,
    CheckpointHeader,
    last_checkpoint,
    load_weights,
    read_checkpoint,
    state_of,
)
from lafin_aug.config import Config
from lafin_aug.images import to_tensor
from lafin_aug.registry import Registry
from lafin_aug.runtime import autocast

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

#: name -> (config class, model class)
DETECTORS: Registry[tuple[type[Config], type[nn.Module]]] = Registry("detector")


def register_detector(name: str, config_class: type[Config]) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make `build_detector(name, ...)` build this class from `config_class`."""
    def register(cls: ModelClass) -> ModelClass:
        DETECTORS.add(name, (config_class, cls))
        return cls
    return register


def detector_config(name: str, **options: Any) -> Config:
    """The config of detector `name` with `options` (e.g. points, size, width) set."""
    return DETECTORS.get(name)[0].from_dict(options)


def build_detector(name: str, config: dict[str, Any]) -> nn.Module:
    """A fresh detector `name` from its config dict."""
    config_class, model_class = DETECTORS.get(name)
    return model_class(config_class.from_dict(config))


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointHeader]:
    """(detector in eval mode, header) rebuilt from a detector checkpoint file (or run directory) alone."""
    path = last_checkpoint(path)
    header, checkpoint = read_checkpoint(path, DETECTOR_FORMAT)
    try:
        model = build_detector(header.family, header.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the stored detector config does not build a model ({exc})") from exc
    load_weights(model, state_of(checkpoint, "model", path), path)
    return model.to(device).eval(), header


@torch.no_grad()
def predict_images(model: nn.Module, images: np.ndarray, batch: int = 64, precision: str = "fp32") -> np.ndarray:
    """Pixel-index landmarks [N,P,2] that `model` predicts for uint8 crops [N,S,S,3] (precision resolved).

    Crops of another side than the detector's `config.size` are resized to it (bilinear, antialiased
    when shrinking) and the landmarks mapped back to the crops' pixel grid.
    """
    device = next(model.parameters()).device
    side = model.config.size
    scale = images.shape[1] / side
    out = []
    for start in range(0, len(images), batch):
        image = to_tensor(images[start:start + batch], device)
        if image.shape[-1] != side:
            image = F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False,
                                  antialias=scale > 1)
        with autocast(device, precision):
            predicted = model.predict(image).float()
        out.append(((predicted + 0.5) * scale - 0.5).cpu().numpy())
    return np.concatenate(out)
