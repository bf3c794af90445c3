"""Convolutional building blocks of the LaFIn inpainter: conv/deconv + instance norm + ReLU, residual block.

Instance norm is used without affine parameters and without running statistics, as in the paper,
so a block behaves the same in train() and eval().
"""
from __future__ import annotations

import torch
from torch import nn


class ConvNormAct(nn.Sequential):
    """Conv2d -> InstanceNorm2d -> ReLU. `reflect=True` pads by reflection (the 7x7 stem), else zeros."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, reflect: bool = False):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      padding_mode="reflect" if reflect else "zeros"),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpNormAct(nn.Sequential):
    """4x4 stride-2 ConvTranspose2d (doubles H and W) -> InstanceNorm2d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3_dilated(x))))), reflection padded, same shape in and out."""

    def __init__(self, channels: int, dilation: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, padding_mode="reflect"),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
