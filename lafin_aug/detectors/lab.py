"""LAB (Look at Boundary, Wu et al. 2018): a boundary-aware facial landmark detector.

Two parts trained together:
- a stacked-hourglass boundary estimator that predicts the schema's 13 boundary heatmaps at 1/4 of
  the image size after every stack (intermediate supervision);
- a ResNet-like landmark regressor that fuses the last stack's heatmaps into its features at the
  input and after every stage (feature-map fusion: features ⊕ features ⊗ gate(heatmaps)), then
  regresses 2P coordinates.

Images enter as float [B,3,S,S] in [0,1]. Landmarks leave normalised: u = (x + 0.5) / S, where x is
the pixel-index coordinate, so [0,1] spans the image's extent; `predict` returns pixel indices.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.config import Config
from lafin_aug.detectors.base import register_detector
from lafin_aug.detectors.heatmaps import boundary_heatmaps
from lafin_aug.landmarks import schema_for

#: Boundary heatmaps are this many times smaller than the image (fixed by the estimator's stem).
HEATMAP_STRIDE = 4
#: Number of boundary curves in every schema.
BOUNDARIES = 13
#: The regressor's spatial size before its fully connected head.
HEAD_GRID = 4
#: Channel groups of GroupNorm (fewer when the channel count is not a multiple).
NORM_GROUPS = 8
#: Builds a normalisation layer for a channel count.
Norm = Callable[[int], nn.Module]


def norm_layer(kind: str) -> Norm:
    """Normalisation factory: "group" (GroupNorm, independent of the batch) or "batch" (BatchNorm2d)."""
    if kind == "group":
        return lambda channels: nn.GroupNorm(math.gcd(NORM_GROUPS, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d
    raise ValueError(f"LABConfig.norm must be 'group' or 'batch', got {kind!r}")


@dataclass(frozen=True)
class LABConfig(Config):
    """Shape and training weights of a LAB detector; plain data for checkpoints.

    points: 68 or 98; size: square input side S (multiple of 16); stacks: hourglass stacks (the
    paper uses 4; the default 2 trains in minutes on a CPU at 64-128 px); width: feature channels; depth: hourglass recursion depth;
    sigma: boundary heatmap Gaussian width in heatmap pixels; boundary_weight: weight of the
    boundary loss against the landmark loss; norm: "group" (default) or "batch". BatchNorm (the
    original LAB's choice) left some batch-16 runs far worse in eval mode than with batch statistics
    (test NME 0.34 against 0.15) while their training loss was normal; GroupNorm has no running
    statistics.
    """

    points: int = 68
    size: int = 64
    stacks: int = 2
    width: int = 32
    depth: int = 3
    sigma: float = 1.0
    boundary_weight: float = 1.0
    norm: str = "group"

    def __post_init__(self) -> None:
        schema_for(self.points)
        norm_layer(self.norm)
        if self.size % 16:
            raise ValueError(f"LABConfig.size must be a multiple of 16, got {self.size}")
        if self.heatmap_size % 2**self.depth:
            raise ValueError(
                f"LABConfig.depth {self.depth} halves the {self.heatmap_size}-pixel heatmap too often"
            )
        if self.stacks < 1 or self.width < 1:
            raise ValueError(f"LABConfig needs stacks >= 1 and width >= 1, got {self.stacks}, {self.width}")

    @property
    def heatmap_size(self) -> int:
        """Side of the boundary heatmaps."""
        return self.size // HEATMAP_STRIDE


class Residual(nn.Module):
    """Basic residual block: two 3x3 convolutions, projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            norm(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            norm(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), norm(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class Hourglass(nn.Module):
    """Recursive hourglass: a skip branch at this scale plus a half-scale branch upsampled back."""

    def __init__(self, depth: int, channels: int, norm: Norm):
        super().__init__()
        self.skip = Residual(channels, channels, norm)
        self.down = Residual(channels, channels, norm)
        self.inner = Hourglass(depth - 1, channels, norm) if depth > 1 else Residual(channels, channels, norm)
        self.up = Residual(channels, channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, scale_factor=2, mode="nearest")


class HourglassStack(nn.Module):
    """One stack: hourglass, boundary heatmap head, and (unless last) the input of the next stack."""

    def __init__(self, depth: int, channels: int, last: bool, norm: Norm):
        super().__init__()
        self.hourglass = Hourglass(depth, channels, norm)
        self.features = nn.Sequential(
            Residual(channels, channels, norm),
            nn.Conv2d(channels, channels, 1, bias=False),
            norm(channels),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(channels, BOUNDARIES, 1)
        self.merge = None if last else nn.ModuleDict({
            "features": nn.Conv2d(channels, channels, 1),
            "heatmaps": nn.Conv2d(BOUNDARIES, channels, 1),
        })

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(heatmaps [B,13,H,H], next stack's input or None for the last stack)."""
        features = self.features(self.hourglass(x))
        heatmaps = self.head(features)
        if self.merge is None:
            return heatmaps, None
        return heatmaps, x + self.merge["features"](features) + self.merge["heatmaps"](heatmaps)


class BoundaryEstimator(nn.Module):
    """Stem down to 1/4 resolution, then stacked hourglasses each emitting 13 boundary heatmaps."""

    def __init__(self, config: LABConfig):
        super().__init__()
        width = config.width
        norm = norm_layer(config.norm)
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            norm(width),
            nn.ReLU(inplace=True),
            Residual(width, width, norm),
            nn.MaxPool2d(2),
            Residual(width, width, norm),
        )
        self.stacks = nn.ModuleList(
            HourglassStack(config.depth, width, i == config.stacks - 1, norm) for i in range(config.stacks)
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps [B,13,S/4,S/4] after every stack, first to last."""
        x = self.stem(image)
        outputs = []
        for stack in self.stacks:
            heatmaps, x = stack(x)
            outputs.append(heatmaps)
        return outputs


class BoundaryFusion(nn.Module):
    """Feature-map fusion: features ⊕ (features ⊗ sigmoid(conv(heatmaps))), mixed by a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm):
        super().__init__()
        self.gate = nn.Conv2d(BOUNDARIES, in_channels, 3, 1, 1)
        self.mix = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        heatmaps = F.interpolate(heatmaps, size=features.shape[-2:], mode="bilinear", align_corners=False)
        gate = torch.sigmoid(self.gate(heatmaps))
        return self.mix(torch.cat([features, features * gate], dim=1))


class LandmarkRegressor(nn.Module):
    """Image CNN with boundary fusion at the input and after each of 4 stride-2 stages; 2P outputs."""

    def __init__(self, config: LABConfig):
        super().__init__()
        width = config.width
        norm = norm_layer(config.norm)
        channels = [width, width, width, 2 * width, 4 * width]
        self.input_fusion = BoundaryFusion(3, width, norm)
        self.stages = nn.ModuleList(Residual(a, b, norm, stride=2) for a, b in zip(channels, channels[1:]))
        self.fusions = nn.ModuleList(BoundaryFusion(c, c, norm) for c in channels[1:])
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(HEAD_GRID),
            nn.Flatten(),
            nn.Linear(channels[-1] * HEAD_GRID**2, 2 * config.points),
        )

    def forward(self, image: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """Normalised landmarks [B,P,2] of images [B,3,S,S] (any range) given boundary heatmaps."""
        x = self.input_fusion(image, heatmaps)
        for stage, fusion in zip(self.stages, self.fusions):
            x = fusion(stage(x), heatmaps)
        return 0.5 + self.head(x).view(len(image), -1, 2)


@register_detector("lab", LABConfig)
class LABDetector(nn.Module):
    """Boundary estimator + boundary-fused landmark regressor, trained jointly."""

    def __init__(self, config: LABConfig):
        super().__init__()
        self.config = config
        self.schema = schema_for(config.points)
        self.boundary = BoundaryEstimator(config)
        self.regressor = LandmarkRegressor(config)

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        """{'landmarks': [B,P,2] normalised to [0,1], 'boundaries': list of [B,13,S/4,S/4] per stack}."""
        size = self.config.size
        if image.ndim != 4 or image.shape[1:] != (3, size, size):
            raise ValueError(f"expected images [B,3,{size},{size}] in [0,1], got {tuple(image.shape)}")
        x = image * 2 - 1
        boundaries = self.boundary(x)
        return {"landmarks": self.regressor(x, boundaries[-1]), "boundaries": boundaries}

    def loss(self, outputs: dict[str, Any], landmarks_px: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses against ground-truth pixel-index landmarks [B,P,2] of the S×S input images.

        boundary: MSE between each stack's heatmaps and boundary_heatmaps(gt), averaged over stacks;
        landmark: MSE of the normalised coordinates; total = landmark + boundary_weight * boundary.
        """
        config = self.config
        landmarks_px = landmarks_px.to(device=outputs["landmarks"].device, dtype=torch.float32)
        target = boundary_heatmaps(landmarks_px, self.schema, config.size, config.heatmap_size, config.sigma)
        boundary = torch.stack([F.mse_loss(h, target) for h in outputs["boundaries"]]).mean()
        landmark = F.mse_loss(outputs["landmarks"], (landmarks_px + 0.5) / config.size)
        total = landmark + config.boundary_weight * boundary
        return {"total": total, "boundary": boundary, "landmark": landmark}

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Pixel-index landmarks [B,P,2] of images [B,3,S,S] in [0,1], computed in eval mode."""
        was_training = self.training
        self.eval()
        try:
            normalised = self(image)["landmarks"]
        finally:
            self.train(was_training)
        return normalised * self.config.size - 0.5
