"""The MDRNets coarse network: a U-Net whose convolutions are partial convolutions (paper Sec. 4).

MDRNets (Coordinated Face Inpainting with Memory-Disentangled Refinement Networks) first fills
the hole with this network, then parses the coarse face and refines it. The paper says only
"U-Net with the vanilla convolutions replaced by partial convolutions [Liu et al. 2018]"; its
supplementary material with the exact sizes is not available, so the sizes below are ours,
following Liu et al.'s PConv U-Net scaled down (7x7, 5x5, then 3x3 kernels; `depth` levels).

Value ranges at the model boundary:
  image   [B,3,H,W] float RGB in [0,1]; H and W multiples of 2**depth. Hole pixels are ignored:
          they are zeroed before the first layer and every layer is a partial conv, so their
          content (NaN included) never reaches the output.
  hole    [B,1,H,W] 1 where content is missing, 0 where known; binarised at 0.5.
  output  [B,3,H,W] float RGB in [0,1] (sigmoid), *not* composited: use
          `lafin_aug.inpainters.composite` to paste it into the hole.

Internally the known pixels are mapped to [-1,1] and the hole holds 0. Every layer carries a
valid map (1 = known), shrinking the hole as in Liu et al.

Layout (w = width, default 32; c_i = min(2**i * w, 8w); resolution relative to the input;
shown for depth 4):
  encoder1  7x7 pconv stride 2, ReLU                      3 -> w     1/2
  encoder2  5x5 pconv stride 2, ReLU                      w -> 2w    1/4
  encoder3  3x3 pconv stride 2, ReLU                     2w -> 4w    1/8
  encoder4  3x3 pconv stride 2, ReLU                     4w -> 8w    1/16
  decoder4  up x2, cat encoder3, 3x3 pconv, LReLU(0.2)  8w+4w -> 4w  1/8
  decoder3  up x2, cat encoder2, 3x3 pconv, LReLU(0.2)  4w+2w -> 2w  1/4
  decoder2  up x2, cat encoder1, 3x3 pconv, LReLU(0.2)   2w+w -> w   1/2
  to_rgb    up x2, cat input,    3x3 pconv, sigmoid       w+3 -> 3   1
"up x2" is nearest upsampling of the features and of their valid map; the valid map of a
concatenation is the concatenation of the two valid maps (one per channel, Liu et al.).
Deeper levels past 4 use 3x3 kernels and 8w channels.

No normalisation layer: Liu et al. use batch norm, but with batches of 1-8 its statistics are
noisy, and any norm over a feature map mixes in the zeros of cells the valid map has not reached
yet, so its statistics would depend on the hole's size. The network is shallow enough to train
without one.

Reach: a partial conv shrinks the hole by its kernel radius at its own scale, so the valid map
closes a hole only up to a width set by `depth`: with depth 4, square holes up to about 60 pixels
across (measured; the exact figure depends on where the hole sits on the stride-2 grid). Where a
wider hole is still uncovered at full resolution the output is sigmoid(0) = 0.5 grey; raise
`depth` for larger holes (Liu et al. use 7 levels at 256x256 and 8 at 512x512).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.inpainters.mdr.blocks import PartialConv2d


class _PartialStage(nn.Module):
    """PartialConv2d followed by an activation; `forward(x, valid) -> (out, new_valid)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 activation: nn.Module):
        super().__init__()
        self.conv = PartialConv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2)
        self.activation = activation

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, new_valid = self.conv(x, valid)
        return self.activation(out), new_valid


def _up_and_concat(x: torch.Tensor, valid: torch.Tensor, skip: torch.Tensor,
                   skip_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-upsample (x, valid) by 2 and concatenate the skip; the valid map gets one channel per channel."""
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    valid = F.interpolate(valid, scale_factor=2, mode="nearest")
    maps = [valid.expand(-1, x.shape[1], -1, -1), skip_valid.expand(-1, skip.shape[1], -1, -1)]
    return torch.cat([x, skip.to(x.dtype)], dim=1), torch.cat(maps, dim=1)


class PartialConvUNet(nn.Module):
    """The coarse network: (image, hole) -> coarse RGB in [0,1]; see the module docstring for ranges."""

    def __init__(self, width: int = 32, depth: int = 4):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        self.depth = depth
        channels = [3] + [min(2 ** i * width, 8 * width) for i in range(depth)]
        kernels = [7, 5] + [3] * max(depth - 2, 0)
        self.encoders = nn.ModuleList(
            _PartialStage(channels[i], channels[i + 1], kernels[i], 2, nn.ReLU())
            for i in range(depth))
        self.decoders = nn.ModuleList(
            _PartialStage(channels[i + 1] + channels[i], channels[i], 3, 1, nn.LeakyReLU(0.2))
            for i in range(1, depth))
        self.to_rgb = PartialConv2d(channels[1] + 3, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        self._check_inputs(image, hole)
        valid = (hole <= 0.5).to(image.dtype)
        x = torch.where(valid > 0, image * 2 - 1, torch.zeros((), dtype=image.dtype, device=image.device))

        skips = [(x, valid)]
        for encoder in self.encoders:
            skips.append(encoder(*skips[-1]))
        x, valid = skips.pop()
        for decoder in reversed(self.decoders):
            x, valid = decoder(*_up_and_concat(x, valid, *skips.pop()))
        out, _ = self.to_rgb(*_up_and_concat(x, valid, *skips.pop()))
        return torch.sigmoid(out)

    def _check_inputs(self, image: torch.Tensor, hole: torch.Tensor) -> None:
        b, c, h, w = image.shape
        multiple = 2 ** self.depth
        if c != 3 or h % multiple or w % multiple:
            raise ValueError(f"image must be [B,3,H,W] with H and W multiples of 2**depth = {multiple}, "
                             f"got {tuple(image.shape)}")
        if tuple(hole.shape) != (b, 1, h, w):
            raise ValueError(f"hole must be [{b},1,{h},{w}], got {tuple(hole.shape)}")
