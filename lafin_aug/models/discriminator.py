"""D, the LaFIn PatchGAN discriminator (paper Table 7).

Input: image [B,3,H,W] RGB in [0,1] (mapped to [-1,1] inside) and its landmark map [B,1,H,W]
(`lafin_aug.models.conditioning.landmark_map`, drawn with the generator's radius).
Output: raw logits [B,1,H/8-2,W/8-2], 30x30 for 256x256 input, each scoring one 70x70 patch;
there is no sigmoid: the LSGAN losses in lafin_aug.losses take the logits as they are.
Weights and activations are channels_last (see lafin_aug.inpainters.lafin.generator).

Layout (w = width, default 64), 4x4 convs, padding 1, spectral norm on every conv (the
attention's 1x1 projections included), leaky ReLU 0.2 after all but the last:
  conv1  stride 2   4 -> w     256 -> 128
  conv2  stride 2   w -> 2w    128 -> 64
  attention (gated self-attention, attention.py)
  conv3  stride 2  2w -> 4w     64 -> 32
  conv4  stride 1  4w -> 8w     32 -> 31
  conv5  stride 1  8w -> 1      31 -> 30
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from lafin_aug.models.attention import SelfAttention


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=1)


def _conv_act(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_conv(in_channels, out_channels, stride), nn.LeakyReLU(0.2, inplace=True))


class PatchDiscriminator(nn.Module):
    """Spectral-normalised PatchGAN with self-attention after the second conv."""

    def __init__(self, width: int = 64, max_attention_keys: int = 1024):
        super().__init__()
        self.conv1 = _conv_act(4, width, 2)
        self.conv2 = _conv_act(width, 2 * width, 2)
        self.attention = SelfAttention(2 * width, max_keys=max_attention_keys)
        self.conv3 = _conv_act(2 * width, 4 * width, 2)
        self.conv4 = _conv_act(4 * width, 8 * width, 1)
        self.conv5 = _conv(8 * width, 1, 1)
        for conv in [m for m in self.modules() if isinstance(m, nn.Conv2d)]:
            spectral_norm(conv)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor, landmark_map: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image * 2 - 1, landmark_map.to(image.dtype)], dim=1).contiguous(memory_format=torch.channels_last)
        x = self.conv2(self.conv1(x))
        x = self.attention(x)
        return self.conv5(self.conv4(self.conv3(x)))
