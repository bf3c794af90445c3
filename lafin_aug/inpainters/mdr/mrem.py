"""The Mask-Region Enhanced Module of MDRNets (paper Sec. 3.3, Fig. 2 and 3).

MREM turns the per-class vectors back into feature maps and strengthens the hole with correlations
mined across the whole map:
  broadcast  per-class vectors [B,K,C] -> a map [B,C,h,w]: every cell gets the vectors of its
             classes, weighted by its (soft) membership
  fuse       hole * memory map + (1 - hole) * real map: memory-read features inside the hole,
             features of the real (known) pixels outside
  MaskedCorrelationMining  (Fig. 3) x + hole * patch-attention(x)

`hole` is 1 where pixels are missing; wherever it has another size than the maps it is brought to
theirs by `F.adaptive_avg_pool2d` (the fraction of hole pixels in each cell).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _resized(hole: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """hole [B,1,H,W] -> [B,1,h,w] at `like`'s size (fraction of hole pixels per cell), in like's dtype."""
    return F.adaptive_avg_pool2d(hole.float(), like.shape[-2:]).to(like.dtype)


def broadcast(vectors: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """[B,K,C] vectors onto [B,K,h,w] class maps -> [B,C,h,w]: out[:, :, y, x] = sum_k classes_k(y, x) * v_k.

    The output has the maps' size: pass maps already resized to the features
    (`F.adaptive_avg_pool2d(classes, (h, w))`). Runs in the vectors' dtype.
    """
    if vectors.shape[:2] != classes.shape[:2]:
        raise ValueError(f"vectors {list(vectors.shape)} and classes {list(classes.shape)} must agree in [B,K]")
    return torch.einsum("bkc,bkhw->bchw", vectors, classes.to(vectors.dtype))


def fuse(memory_map: torch.Tensor, real_map: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """hole * memory_map + (1 - hole) * real_map, the hole resized to the maps (Fig. 2)."""
    hole = _resized(hole, memory_map)
    return hole * memory_map + (1 - hole) * real_map


class MaskedCorrelationMining(nn.Module):
    """MCM (Fig. 3): out = x + hole * mined, mined = patch-to-patch attention over x.

    Three 1x1 convs give query, key and value maps [B,C,h,w]; each is cut (`F.unfold`, kernel =
    stride = patch) into N = (h/p)(w/p) non-overlapping p x p patches, flattened to D = C p^2
    vectors. The N x N similarity of query and key patches, softmaxed over the keys, mixes the value
    patches (one fused `scaled_dot_product_attention` call; the N x N matrix is never kept), which
    are folded back to [B,C,h,w]. The similarity is the dot product scaled by 1/sqrt(D), the
    usual scaling that keeps the softmax from saturating for long patch vectors (the paper only
    says "dot product").

    The mined features enter the hole only (mask multiplication): where the resized hole is 0 the
    output is exactly x. They are added directly, as in the paper; there is no learned gate
    starting at 0 (unlike `lafin_aug.models.attention.SelfAttention`), so the module is not the
    identity at initialisation.

    forward(x [B,C,h,w], hole [B,1,H,W]); h and w must be multiples of `patch`.
    """

    def __init__(self, channels: int, patch: int = 2):
        super().__init__()
        if patch < 1:
            raise ValueError(f"patch must be at least 1, got {patch}")
        self.patch = patch
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)

    def extra_repr(self) -> str:
        return f"patch={self.patch}"

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B,C,h,w] -> [B,1,N,C*p*p]."""
        return F.unfold(x, self.patch, stride=self.patch).transpose(1, 2).unsqueeze(1)

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch or w % self.patch:
            raise ValueError(f"feature size {h}x{w} must be a multiple of the patch size {self.patch}")
        mined = F.scaled_dot_product_attention(
            self._patches(self.query(x)), self._patches(self.key(x)), self._patches(self.value(x)))
        mined = F.fold(mined.squeeze(1).transpose(1, 2), (h, w), self.patch, stride=self.patch)
        return x + _resized(hole, mined) * mined
