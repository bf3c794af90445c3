"""G_P, the LaFIn inpainting generator (paper Table 8); its config is `LafinConfig` (config.py).

Value ranges at the model boundary:
  image      [B,3,H,W] float RGB in [0,1]; H and W multiples of 4. Hole pixels are ignored (the
             generator blanks them itself, so passing the full image cannot leak the ground truth).
  mask       [B,1,H,W] 1 where content is missing, 0 where known; binarised at 0.5.
  conditions `Conditions`; reads only conditions.landmarks: [B,P,2] (x, y) pixel-index
             coordinates of the image, P == config.points.
  output     [B,3,H,W] float RGB in [0,1] ((tanh + 1) / 2), *not* composited: use
             `lafin_aug.inpainters.composite` to paste it into the hole.

Internally the known pixels are mapped to [-1,1] and the hole is filled with 0 (mid grey). The
network input is [masked RGB (3), landmark map (1), mask (1)]. The paper feeds only the first
four; we add the mask channel (`mask_channel=True`, the default) because with a grey fill the
network cannot otherwise tell a grey known pixel from a hole pixel, and every mask-aware
inpainter since (EdgeConnect, CTSDG, LaMa) gives it the mask. `mask_channel=False` reproduces the
paper's 4-channel input.

Layout (w = width, default 64; resolution relative to the input):
  encoder1  7x7 conv, reflection pad 3       4|5 -> w     1
  encoder2  4x4 conv stride 2                 w -> 2w    1/2
  encoder3  4x4 conv stride 2                2w -> 4w    1/4
  middle    `blocks` residual blocks, dilation 2         1/4
  attention short+long term attention (attention.py)    1/4
  decoder1  4x4 transposed conv stride 2     4w -> 2w    1/2
  fuse1     1x1 conv over [encoder2 * known, decoder1] 4w -> 4w
  decoder2  4x4 transposed conv stride 2     4w -> w     1
  fuse2     1x1 conv over [encoder1 * known, decoder2] 2w -> 2w
  to_rgb    7x7 conv, reflection pad 3, tanh 2w -> 3
Every conv but to_rgb is followed by instance norm and ReLU. "known" at 1/2 and 1/4 scale is
1 - max-pooled mask: a cell that touches the hole counts as hole.

Weights and activations are kept in channels_last memory format (the layout oneDNN's and cuDNN's
fast convolutions use; on the CPU it also spares a reorder per conv); outputs are channels_last too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.inpainters.family import Conditions
from lafin_aug.inpainters.lafin.config import LafinConfig
from lafin_aug.models.attention import ShortLongAttention
from lafin_aug.models.blocks import ConvNormAct, ReflectConv2d, ResidualBlock, UpNormAct
from lafin_aug.models.conditioning import landmark_map


def _known_only(features: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Zero the cells of `features` that touch the hole (`hole` is full resolution, max-pooled to fit).

    The product is taken in the features' dtype, so bf16 features stay bf16 under autocast.
    """
    factor = hole.shape[-1] // features.shape[-1]
    cell_hole = F.max_pool2d(hole, factor) if factor > 1 else hole
    return features * (1 - cell_hole).to(features.dtype)


class LafinGenerator(nn.Module):
    """G_P: (image, mask, conditions) -> generated RGB in [0,1]; see the module docstring for ranges."""

    def __init__(self, config: LafinConfig | None = None):
        super().__init__()
        self.config = config = config or LafinConfig()
        w = config.width
        self.encoder1 = ConvNormAct(config.in_channels, w, 7, padding=3, reflect=True)
        self.encoder2 = ConvNormAct(w, 2 * w, 4, stride=2, padding=1)
        self.encoder3 = ConvNormAct(2 * w, 4 * w, 4, stride=2, padding=1)
        self.middle = nn.Sequential(*(ResidualBlock(4 * w, dilation=2) for _ in range(config.blocks)))
        self.attention = ShortLongAttention(4 * w, max_keys=config.max_attention_keys)
        self.decoder1 = UpNormAct(4 * w, 2 * w)
        self.fuse1 = ConvNormAct(4 * w, 4 * w, 1)
        self.decoder2 = UpNormAct(4 * w, w)
        self.fuse2 = ConvNormAct(2 * w, 2 * w, 1)
        self.to_rgb = ReflectConv2d(2 * w, 3, 7, padding=3)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        landmarks = conditions.landmarks
        self._check_inputs(image, mask, landmarks)
        hole = (mask > 0.5).to(image.dtype)
        inputs = [(image * 2 - 1) * (1 - hole),
                  landmark_map(landmarks, tuple(image.shape[-2:]), self.config.landmark_radius).to(image)]
        if self.config.mask_channel:
            inputs.append(hole)

        e1 = self.encoder1(torch.cat(inputs, dim=1).contiguous(memory_format=torch.channels_last))
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        x = self.middle(e3)
        x = self.attention(x, e3, F.max_pool2d(hole, 4))
        x = self.fuse1(torch.cat([_known_only(e2, hole), self.decoder1(x)], dim=1))
        x = self.fuse2(torch.cat([_known_only(e1, hole), self.decoder2(x)], dim=1))
        return (torch.tanh(self.to_rgb(x)) + 1) / 2

    def _check_inputs(self, image: torch.Tensor, mask: torch.Tensor, landmarks: torch.Tensor) -> None:
        b, c, h, w = image.shape
        if c != 3 or h % 4 or w % 4:
            raise ValueError(f"image must be [B,3,H,W] with H, W multiples of 4, got {tuple(image.shape)}")
        if tuple(mask.shape) != (b, 1, h, w):
            raise ValueError(f"mask must be [{b},1,{h},{w}], got {tuple(mask.shape)}")
        if tuple(landmarks.shape) != (b, self.config.points, 2):
            raise ValueError(
                f"landmarks must be [{b},{self.config.points},2], got {tuple(landmarks.shape)}"
                + ("; map 98-point WFLW landmarks with lafin_aug.landmarks.to_ibug68"
                   if landmarks.shape[-2:] == (98, 2) and self.config.points == 68 else ""))
