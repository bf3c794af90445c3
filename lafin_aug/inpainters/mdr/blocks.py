"""Building blocks of the MDRNets inpainter: partial conv, gated conv, gated residual block, SPADE.

  PartialConv2d   Liu et al. 2018 ("Image Inpainting for Irregular Holes Using Partial
                  Convolutions"): a conv that sees only known pixels; the coarse U-Net (coarse.py).
  GatedConv2d     Yu et al. 2019 (DeepFill v2, "Free-Form Image Inpainting with Gated
                  Convolution"): ELU(features) * sigmoid(gate), for the guided refinement network.
  GatedResBlock   x + gated3x3(gated3x3(x)).
  SPADE           Park et al. 2019: parameter-free instance norm modulated per pixel by a
                  conditioning map.
  SPADEResBlock   Park et al.'s residual block: (SPADE -> LeakyReLU(0.2) -> 3x3 conv) twice.

Conventions:
  valid  [B,1,H,W] or [B,C,H,W] float, 1 where the pixel is *known*, 0 where it is missing; it is
         binarised at 0.5. This is the complement of the project's `mask` (1 = missing) and is
         named differently on purpose.
  cond   a SPADE conditioning map [B,C_cond,h,w] of any size; it is resized (nearest) to the
         features it modulates.
Feature maps have no fixed range. Every block keeps H and W unless it has stride > 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lafin_aug.models.blocks import InstanceNorm


def _window_counts(valid: torch.Tensor, channels: int, ones: torch.Tensor, stride: int,
                   padding: int) -> torch.Tensor:
    """Number of known input elements (all channels together) under each window, float32 [B,1,H',W'].

    A 1-channel `valid` stands for all `channels` channels. Counted in float32 with autocast off,
    so counts stay exact integers even under bf16 autocast.
    """
    with torch.autocast(valid.device.type, enabled=False):
        known = (valid > 0.5).float()
        per_pixel = known.sum(dim=1, keepdim=True) if known.shape[1] > 1 else known * channels
        counts = F.conv2d(per_pixel, ones.float(), stride=stride, padding=padding)
    return counts.round()


class PartialConv2d(nn.Module):
    """Partial convolution (Liu et al. 2018): `forward(x, valid) -> (out, new_valid)`.

    out = W * (x ⊙ valid) · area / known + b   where the window holds known > 0 known elements,
    out = 0                                    where it holds none,
    with area = C_in · k · k. Padding counts as missing, so border windows are renormalised too.
    new_valid [B,1,H',W'] (dtype of `valid`) is 1 where the window held any known element.

    `valid` is [B,1,H,W] (the same map for every channel of x) or [B,C_in,H,W] (one map per
    channel, as for the concatenation of two feature maps with their own valid maps).
    Missing pixels of x never reach the output, whatever they hold (NaN included). The
    renormalisation ratio is computed in float32 and applied in the conv's dtype (bf16 under
    autocast, where it is exact for fully known windows, ratio 1, and within one rounding elsewhere).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)
        self.area = in_channels * kernel_size * kernel_size

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, channels, h, w = x.shape
        if tuple(valid.shape) not in ((b, 1, h, w), (b, channels, h, w)):
            raise ValueError(f"valid must be [{b},1,{h},{w}] or [{b},{channels},{h},{w}] for x of shape "
                             f"{tuple(x.shape)}, got {tuple(valid.shape)}")
        raw = self.conv(torch.where(valid > 0.5, x, torch.zeros((), dtype=x.dtype, device=x.device)))
        counts = _window_counts(valid, channels, self.ones, self.conv.stride[0], self.conv.padding[0])
        covered = counts > 0.5
        ratio = torch.where(covered, self.area / counts.clamp(min=1.0), torch.zeros_like(counts)).to(raw.dtype)
        if self.bias is None:
            return raw * ratio, covered.to(valid.dtype)
        return torch.addcmul(raw * ratio, self.bias.to(raw.dtype).view(1, -1, 1, 1), covered.to(raw.dtype)), \
            covered.to(valid.dtype)


class GatedConv2d(nn.Module):
    """Gated convolution (DeepFill v2): act(conv_f(x)) * sigmoid(conv_g(x)), act = ELU or identity.

    The two convs are one Conv2d with 2 * out_channels outputs, split in half (features, gate).
    Zero padding; with padding = dilation * (kernel_size // 2) and stride 1 it keeps H and W.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, activation: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, dilation)
        self.activation = nn.ELU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return self.activation(features) * torch.sigmoid(gate)


class GatedResBlock(nn.Module):
    """x + gated3x3(gated3x3_dilated(x)); the second gated conv has no ELU. Same shape in and out."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            GatedConv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            GatedConv2d(channels, channels, 3, padding=1, activation=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SPADE(nn.Module):
    """IN(x) * (1 + gamma(cond)) + beta(cond) (Park et al. 2019), same shape as x.

    IN is instance norm without affine parameters or running statistics (same in train() and
    eval()); gamma and beta are 3x3 convs over a shared 3x3 conv + ReLU of `hidden` channels.
    `cond` [B,cond_channels,h,w] is resized to x's H, W (nearest) when its size differs.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.norm = InstanceNorm(channels)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(cond)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)


class SPADEResBlock(nn.Module):
    """Park et al.'s SPADE residual block: `forward(x, cond)` [B,in,H,W] -> [B,out,H,W].

    body:     SPADE -> LeakyReLU(0.2) -> 3x3 conv (in -> min(in, out)),
              SPADE -> LeakyReLU(0.2) -> 3x3 conv (min(in, out) -> out)
    shortcut: identity when in == out, else SPADE -> 1x1 conv without bias.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm1 = SPADE(in_channels, cond_channels, hidden)
        self.conv1 = nn.Conv2d(in_channels, middle, 3, padding=1)
        self.norm2 = SPADE(middle, cond_channels, hidden)
        self.conv2 = nn.Conv2d(middle, out_channels, 3, padding=1)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.shortcut_norm = SPADE(in_channels, cond_channels, hidden)
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut_conv(self.shortcut_norm(x, cond)) if self.learned_shortcut else x
        y = self.conv1(F.leaky_relu(self.norm1(x, cond), 0.2))
        y = self.conv2(F.leaky_relu(self.norm2(y, cond), 0.2))
        return shortcut + y
