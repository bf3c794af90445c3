"""The reconstruction encoder-decoder whose middle-layer features InCo² compares (MDRNets Fig. 4).

The paper pretrains an encoder-decoder to reconstruct faces and uses its encoder as a fixed feature
extractor; no pretrained one exists here, so the family trains it as its first stage on the same
faces (L1 reconstruction of whole images), then freezes it.

Layout (w = width): 4x4 conv stride 2 (3 -> w), 4x4 conv stride 2 (w -> 2w), two 3x3 residual
convs at 1/4 scale: the encoder's features [B,2w,H/4,W/4]; decoder: two 4x4 transposed convs back
to RGB in [0,1]. Instance norm and LeakyReLU(0.2) after every conv but the last. Channels_last
weights and activations.
"""
from __future__ import annotations

import torch
from torch import nn

from lafin_aug.models.blocks import InstanceNorm


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 4, 2, 1), InstanceNorm(out_channels),
                         nn.LeakyReLU(0.2))


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), InstanceNorm(out_channels),
                         nn.LeakyReLU(0.2))


class ReconstructionNet(nn.Module):
    """Image [B,3,H,W] in [0,1] (H, W multiples of 4) -> reconstruction; `encode` gives the features."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(_down(3, width), _down(width, 2 * width),
                                     nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(2 * width, 2 * width, 3, padding=1))
        self.decoder = nn.Sequential(nn.LeakyReLU(0.2), _up(2 * width, width),
                                     nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Sigmoid())
        self.to(memory_format=torch.channels_last)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Middle-layer features [B,2w,H/4,W/4] of an image in [0,1]."""
        return self.encoder((image * 2 - 1).contiguous(memory_format=torch.channels_last))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(image))
