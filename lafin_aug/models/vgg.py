"""VGG-19 feature extractor for the perceptual and style losses, written out by hand.

`VGG19Features.features` has torchvision's `vgg19().features` layer indices, so a torchvision
ImageNet state dict (keys `features.N.weight` / `features.N.bias`) loads into it; classifier keys
and the layers after relu5_1 (index 29) are not built and their keys are ignored.

`load_vgg19(weights)` says where the weights came from, and the trainer records that string in its
checkpoints:
  "file:PATH"       `weights` is a path (a missing file is an error)
  "hub-cache:PATH"  `weights` is None and torch.hub's cache holds checkpoints/vgg19-*.pth
  "random"          nothing found (or weights="random"): seeded random features, with a loud
                    warning. Random conv features still give a usable texture statistic (Gram
                    matrices of random VGG features synthesise textures, Ustyuzhaninov et al.
                    2017), but perceptual and style losses on them are not the paper's.
  "off"             weights="off": no network, the losses skip the perceptual and style terms.
Nothing is ever downloaded.

Input: RGB in [0,1]; ImageNet mean/std normalisation happens inside. Output: the relu1_1,
relu2_1, relu3_1, relu4_1 and relu5_1 activations. The network is frozen and in eval mode.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from lafin_aug.checkpoint import load_weights, read_state_dict

log = logging.getLogger(__name__)

#: torchvision's VGG-19 ("E") feature layout: conv widths, "M" = 2x2 max pool.
VGG19_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
#: Indices in `features` of the ReLUs whose outputs the losses use.
FEATURE_LAYERS: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0


def _layers(up_to: int) -> list[nn.Module]:
    """torchvision's VGG-19 feature layers 0..up_to (inclusive)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return layers[: up_to + 1]


class VGG19Features(nn.Module):
    """Frozen VGG-19 up to relu5_1: RGB [B,3,H,W] in [0,1] -> list of the 5 FEATURE_LAYERS activations."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_layers(max(FEATURE_LAYERS.values())))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_LAYERS.values():
                outputs.append(x)
        return outputs

    def load_torchvision_state_dict(self, state: dict[str, torch.Tensor], path: str | Path) -> None:
        """Copy `features.N.*` tensors of a torchvision vgg19 state dict read from `path`; other keys are
        ignored. CheckpointError naming the file when a feature tensor is missing or of another shape."""
        own = self.state_dict()
        load_weights(self, {key: value for key, value in state.items() if key in own}, path, "torchvision VGG-19")


def _random_features() -> VGG19Features:
    """VGG19Features with seeded Kaiming-normal weights and zero biases (same on every machine)."""
    model = VGG19Features()
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.in_channels * 9
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            layer.bias.zero_()
    return model


def _hub_cache_weights() -> Path | None:
    """The first checkpoints/vgg19-*.pth in torch.hub's cache, if any."""
    found = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob("vgg19-*.pth"))
    return found[0] if found else None


def load_vgg19(weights: str | Path | None = None) -> tuple[VGG19Features | None, str]:
    """(model, source): see the module docstring for `weights` and the source strings."""
    if weights == "off":
        return None, "off"
    if weights is not None and weights != "random":
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-19 weights not found: {path}")
        source = f"file:{path}"
    elif weights is None and (path := _hub_cache_weights()) is not None:
        source = f"hub-cache:{path}"
    else:
        reason = ("requested" if weights == "random"
                  else f"no weights given and none in {torch.hub.get_dir()}/checkpoints")
        message = (f"VGG-19: {reason}; perceptual and style losses are computed on RANDOM (seeded) VGG "
                   "features, not ImageNet ones. Pass the path of a torchvision vgg19-*.pth to train as in the paper.")
        log.warning(message)
        warnings.warn(message, stacklevel=2)
        return _random_features(), "random"

    model = VGG19Features()
    with torch.no_grad():
        model.load_torchvision_state_dict(read_state_dict(path), path)
    return model, source
