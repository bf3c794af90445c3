"""G_L, the LaFIn landmark predictor (paper Table 6), registered as detector "lafin-gl": a MobileNetV2
trunk with three fused branches.

Value ranges at the model boundary:
  input   [B,3,H,W] RGB in [0,1], H and W multiples of 32 (any size: the branches are globally
          pooled). ImageNet mean/std normalisation happens inside the model.
  output  [B,P,2] (x, y) normalised to the image: u = (x + 0.5) / W, v = (y + 0.5) / H for
          pixel-index coordinates (x, y), so (0, 0) is the top-left corner of the top-left pixel
          and (1, 1) the bottom-right corner of the bottom-right pixel. This is independent of the
          resolution: resizing the image keeps (u, v). The output is not clamped (a point may lie
          outside the image). `to_pixel` / `to_normalised` convert.

Trunk (t, c, n, s as in MobileNetV2; channels c scaled by `width_mult`):
  conv3x3 32 stride 2; (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
  (6,320,1,1); conv1x1 1280                                   (1/2 ... 1/32 of the input)
Branches, each globally average-pooled to a vector:
  S1  1x1 conv 128 + ReLU6 over C1, the 32-channel stage output (1/8 scale: 32x32 at 256)
  S2  1x1 conv 128 + ReLU6 over C2, the 96-channel stage output (1/16 scale: 16x16 at 256)
  S3  1x1 conv 64 + ReLU6 over the pooled 1280-channel features (1/32 scale)
  fc  [S1, S2, S3] (320) -> 2P; its bias starts at 0.5, so an untrained net predicts the centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lafin_aug.config import Config
from lafin_aug.detectors.base import register_detector
from lafin_aug.losses import landmark_loss

#: MobileNetV2 inverted-residual settings: expansion t, channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
C1_STAGE, C2_STAGE = 2, 4  # indices into MOBILENET_V2_SETTINGS of the S1 and S2 branch inputs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _scaled(channels: int, width_mult: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: nearest multiple of 8, never below 90% of the exact value."""
    exact = channels * width_mult
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * exact else rounded


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU6; `groups=channels` makes it depthwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand (skipped when t = 1), 3x3 depthwise, linear 1x1 project."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, hidden, 1)] if expansion != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


@dataclass(frozen=True)
class LandmarkNetConfig(Config):
    """Everything needed to rebuild a LandmarkNet; stored in checkpoints via to_dict()."""

    points: int = 68
    width_mult: float = 1.0


class LandmarkNet(nn.Module):
    """G_L: RGB [B,3,H,W] in [0,1] -> landmarks [B,P,2] normalised to the image (see module docstring)."""

    def __init__(self, config: LandmarkNetConfig | None = None):
        super().__init__()
        self.config = config = config or LandmarkNetConfig()
        width = config.width_mult
        channels = _scaled(32, width)
        self.stem = ConvBNReLU6(3, channels, 3, stride=2)
        stages = []
        for expansion, c, repeats, stride in MOBILENET_V2_SETTINGS:
            blocks = []
            for i in range(repeats):
                blocks.append(InvertedResidual(channels, _scaled(c, width), stride if i == 0 else 1, expansion))
                channels = _scaled(c, width)
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        last = _scaled(1280, max(width, 1.0))
        self.head = ConvBNReLU6(channels, last, 1)

        c1, c2 = (_scaled(MOBILENET_V2_SETTINGS[i][1], width) for i in (C1_STAGE, C2_STAGE))
        self.branch1 = nn.Sequential(nn.Conv2d(c1, 128, 1), nn.ReLU6(inplace=True))
        self.branch2 = nn.Sequential(nn.Conv2d(c2, 128, 1), nn.ReLU6(inplace=True))
        self.branch3 = nn.Sequential(nn.Conv2d(last, 64, 1), nn.ReLU6(inplace=True))
        self.fc = nn.Linear(128 + 128 + 64, 2 * config.points)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.constant_(self.fc.bias, 0.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        if c != 3 or h % 32 or w % 32:
            raise ValueError(f"image must be [B,3,H,W] with H, W multiples of 32, got {tuple(image.shape)}")
        x = self.stem((image - self.mean) / self.std)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index == C1_STAGE:
                c1 = x
            elif index == C2_STAGE:
                c2 = x
        x = self.head(x)
        s1 = self.branch1(c1).mean(dim=(2, 3))
        s2 = self.branch2(c2).mean(dim=(2, 3))
        s3 = self.branch3(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
        return self.fc(torch.cat([s1, s2, s3], dim=1)).view(b, self.config.points, 2)


def _wh(size: int | tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    height, width = (size, size) if isinstance(size, int) else size
    return torch.tensor([width, height], dtype=like.dtype, device=like.device)


def to_pixel(normalised: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """[..., 2] normalised (u, v) -> pixel-index (x, y) of an image of `size` S or (H, W): x = u * W - 0.5."""
    return normalised * _wh(size, normalised) - 0.5


def to_normalised(pixel: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """[..., 2] pixel-index (x, y) -> normalised (u, v) of an image of `size` S or (H, W): u = (x + 0.5) / W."""
    return (pixel + 0.5) / _wh(size, pixel)


@dataclass(frozen=True)
class LafinGLConfig(Config):
    """G_L as a detector: points, input size, MobileNetV2 width multiplier."""

    points: int = 68
    size: int = 128
    width_mult: float = 1.0


@register_detector("lafin-gl", LafinGLConfig)
class LafinGLDetector(nn.Module):
    """G_L trained with LaFIn's Eq. 1 (squared L2 norm, `losses.landmark_loss`) on normalised coordinates."""

    def __init__(self, config: LafinGLConfig):
        super().__init__()
        self.config = config
        self.net = LandmarkNet(LandmarkNetConfig(points=config.points, width_mult=config.width_mult))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"landmarks": self.net(image)}

    def loss(self, outputs: dict[str, torch.Tensor], landmarks_px: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 1 between predicted and true normalised points."""
        value = landmark_loss(outputs["landmarks"], to_normalised(landmarks_px.to(outputs["landmarks"]),
                                                                   self.config.size))
        return {"total": value, "landmark": value}

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Pixel-index landmarks [B,P,2] of images [B,3,S,S] in [0,1], computed in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return to_pixel(self(image)["landmarks"], self.config.size)
        finally:
            self.train(was_training)
