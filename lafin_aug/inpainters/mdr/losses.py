"""InCo^2 loss of MDRNets (paper Sec. 3.5, Eq. 6-8): intra- and inter-class coordination.

The features come from the encoder of a reconstruction network (an encoder-decoder trained to
reproduce faces as its own stage, then frozen), applied to the output face and to the ground truth.
Region-wise average pooling (`region_pool`) turns a feature map into one vector per class:
  M(F)     [B,K,C] pooled over the corrupted pixels (weight = hole)
  M_bar(F) [B,K,C] pooled over the non-corrupted pixels (weight = 1 - hole)
and the loss compares the class-to-class similarity matrices of output and ground truth:
  L_intra = | M(out) M(out)^T     - M(gt) M(gt)^T     |   Eq. 6, [B,K,K]: classes in the hole
  L_inter = | M(out) M_bar(out)^T - M(gt) M_bar(gt)^T |   Eq. 7, [B,K,K]: hole class vs known class
  L_InCo2 = L_intra + L_inter                              Eq. 8
The OCR of the paper does not show the norm; we take the mean absolute difference (L1) over the
entries. Only pairs of classes that are present count: entry (i, j) of L_intra when classes i and j
both have hole pixels in that sample, of L_inter when i has hole pixels and j has known pixels. Each
term is the mean over the present entries of the whole batch, 0 when there are none. The pooled
vectors are L2-normalised first, so the similarities are cosines in [-1, 1]: with the plain dot
products M M^T the term grew with the encoder's feature magnitude, reached 6-9x the pixel loss on
our first real run (wild faces, 128 px) and tinted the fills magenta; cosines keep it scale-free.

Everything runs in float32, also inside torch.autocast(bfloat16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lafin_aug.inpainters.mdr.memory import region_pool


def _masked_mean(difference: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of |difference| over the entries where `present` is True; 0 when none is."""
    present = present.to(difference.dtype)
    return (difference.abs() * present).sum() / present.sum().clamp_min(1.0)


def inco2_loss(out_features: torch.Tensor, gt_features: torch.Tensor, classes: torch.Tensor,
               hole: torch.Tensor) -> torch.Tensor:
    """Eq. 8, L_intra + L_inter, a float32 scalar.

    out_features, gt_features [B,C,h,w] reconstruction-encoder features of the output face and of
    the ground truth; classes [B,K,H,W] one-hot semantic maps; hole [B,1,H,W], 1 = missing.
    """
    if out_features.shape != gt_features.shape:
        raise ValueError(f"out_features {list(out_features.shape)} and gt_features {list(gt_features.shape)} "
                         f"must have one shape")
    with torch.autocast(out_features.device.type, enabled=False):
        hole = hole.float()
        out_hole, hole_mass = region_pool(out_features.float(), classes, weight=hole)
        out_known, known_mass = region_pool(out_features.float(), classes, weight=1 - hole)
        gt_hole, _ = region_pool(gt_features.float(), classes, weight=hole)
        gt_known, _ = region_pool(gt_features.float(), classes, weight=1 - hole)
        out_hole, out_known, gt_hole, gt_known = (F.normalize(v, dim=-1) for v in (out_hole, out_known, gt_hole,
                                                                                      gt_known))
        in_hole, in_known = hole_mass > 0, known_mass > 0

        intra = out_hole @ out_hole.transpose(1, 2) - gt_hole @ gt_hole.transpose(1, 2)
        inter = out_hole @ out_known.transpose(1, 2) - gt_hole @ gt_known.transpose(1, 2)
        return (_masked_mean(intra, in_hole.unsqueeze(2) & in_hole.unsqueeze(1))
                + _masked_mean(inter, in_hole.unsqueeze(2) & in_known.unsqueeze(1)))
