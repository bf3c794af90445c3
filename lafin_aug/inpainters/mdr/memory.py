"""Region-wise average pooling and the Disentangled Memory Module of MDRNets (paper Sec. 3.2, Eq. 1-5).

Shapes (K semantic classes, always taken from the tensors, m slots per class, C channels):
  features  [B,C,h,w] a feature map, at a lower (or equal) resolution than the maps
  classes   [B,K,H,W] one-hot float semantic maps (soft after resizing)
  hole      [B,1,H,W] 1 = missing pixel, 0 = known
  queries   [B,K,C]   one latent vector per class (region_pool of the coarse face's style features)
  slots     [K,m,C]   the memory: m slots per class (one "disentangled memory block" per class)

Maps reach the feature size by `F.adaptive_avg_pool2d` (area): a feature cell's membership in
class k is the fraction of its pixels of class k, and a resized hole is the fraction of hole pixels.

Memory reading (Eq. 1, 4, 5) is soft and differentiable with respect to the queries; memory
updating (Eq. 1-3) is a no-grad moving average of the slot each query is most similar to, fed with
the latent vectors V of the *non-corrupted* pixels. The slots are a buffer: they are saved in the
state_dict and never receive gradients.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _membership(classes: torch.Tensor, weight: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    """[B,K,h,w] float32: how much of each feature cell belongs to class k (and carries `weight`).

    When the weight has the maps' resolution, classes and weight are multiplied *before* pooling,
    so a cell that is half known eye and half skin in the hole gives eye the full 0.5 it knows;
    pooling each first (0.5 * 0.5) would halve it. Equal to pool(classes) * pool(weight) when the
    maps already have the feature size. A weight of another resolution is pooled on its own.
    """
    classes = classes.float()
    if weight is None:
        return F.adaptive_avg_pool2d(classes, size)
    weight = weight.float()
    if weight.shape[-2:] == classes.shape[-2:]:
        return F.adaptive_avg_pool2d(classes * weight, size)
    return F.adaptive_avg_pool2d(classes, size) * F.adaptive_avg_pool2d(weight, size)


def region_pool(features: torch.Tensor, classes: torch.Tensor, weight: torch.Tensor | None = None,
                eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Region-wise average pooling (Zhu et al., SEAN): one mean feature vector per class.

    features [B,C,h,w], classes [B,K,H,W], weight [B,1,H,W] or None (e.g. `1 - hole`: pool over
    the non-corrupted pixels only; `hole`: the corrupted ones). Returns
      pooled [B,K,C] = sum_xy features * member_k / max(mass_k, eps), in features' dtype
      mass   [B,K]   = sum_xy member_k (float32, before clamping; in feature cells)
    where member_k = resized(classes_k * weight) (see `_membership`). A class with no mass pools to
    the zero vector.
    """
    if features.shape[0] != classes.shape[0]:
        raise ValueError(f"features has batch {features.shape[0]} but classes has batch {classes.shape[0]}")
    member = _membership(classes, weight, features.shape[-2:])
    mass = member.sum(dim=(2, 3))
    summed = torch.einsum("bchw,bkhw->bkc", features, member.to(features.dtype))
    return summed / mass.clamp_min(eps).unsqueeze(-1).to(summed.dtype), mass


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` [n,...] of every rank along dim 0, in rank order; ranks may differ in n.

    all_gather needs equal shapes, so each rank pads to the longest n (sizes gathered first) and the
    padding is cut off again. Identity without an initialised group of more than one process.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])


class DisentangledMemory(nn.Module):
    """K memory blocks of m slots each (DMM, Sec. 3.2); slot (i, j) lives in `self.slots[i, j]`.

    classes, slots, channels: K, m, C. decay: a in Eq. 3 (the weight of the old slot). seed: the
    slots start as rows of a seeded normal draw, L2-normalised, so every rank builds the same memory.
    temperature: the softmax of Eq. 4 is taken over cosine / temperature. The paper's Eq. 4 is the
    plain softmax (temperature 1, the default); as cosines lie in [-1, 1] that softmax is soft
    (the best slot outweighs the worst by e^2 = 7.4 at most), a lower temperature sharpens it.

    Slots are not re-normalised after an update: the cosines of Eq. 1 and 4 do not depend on a
    slot's norm, and the read (Eq. 5) should return vectors on the scale of the features it stores
    (V), which normalising would lose. The unit-norm start fades as a^n with n updates.
    """

    def __init__(self, classes: int, slots: int, channels: int, decay: float = 0.9, seed: int = 0,
                 temperature: float = 1.0):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.decay = decay
        self.temperature = temperature
        start = torch.randn(classes, slots, channels, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("slots", F.normalize(start, dim=-1))

    def extra_repr(self) -> str:
        k, m, c = self.slots.shape
        return f"classes={k}, slots={m}, channels={c}, decay={self.decay}, temperature={self.temperature}"

    def _check(self, queries: torch.Tensor) -> None:
        if queries.dim() != 3 or queries.shape[1:] != (self.slots.shape[0], self.slots.shape[2]):
            raise ValueError(f"queries must be [B,{self.slots.shape[0]},{self.slots.shape[2]}] (B, classes, "
                             f"channels), got {list(queries.shape)}")

    def cosine(self, queries: torch.Tensor) -> torch.Tensor:
        """Eq. 1: g_ij = cos(Q_i, slot_ij), [B,K,C] -> [B,K,m], in the queries' dtype."""
        self._check(queries)
        slots = F.normalize(self.slots.to(queries.dtype), dim=-1)
        return torch.einsum("bkc,kmc->bkm", F.normalize(queries, dim=-1), slots)

    def scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Eq. 4: a_ij = softmax over j of g_ij / temperature, [B,K,C] -> [B,K,m]."""
        return torch.softmax(self.cosine(queries) / self.temperature, dim=-1)

    def read(self, queries: torch.Tensor) -> torch.Tensor:
        """Eq. 5: Q_hat_i = sum_j a_ij slot_ij, [B,K,C] -> [B,K,C]; differentiable w.r.t. the queries."""
        scores = self.scores(queries)
        return torch.einsum("bkm,kmc->bkc", scores, self.slots.to(scores.dtype))

    @torch.no_grad()
    def update(self, queries: torch.Tensor, values: torch.Tensor, present: torch.Tensor) -> None:
        """Eq. 1-3: slot_ik <- a * slot_ik + (1 - a) * V_bi for k = argmax_j cos(Q_bi, slot_ij).

        queries [B,K,C] (from the coarse face), values [B,K,C] (from its non-corrupted pixels),
        present [B,K] bool: class i has non-corrupted pixels in sample b; only those (b, i) update.
        Several (b, i) of one batch that pick the same slot (i, k) apply the rule once, with the mean
        of their V: the result then does not depend on the order of the batch, and the slot moves by
        (1 - a) per step as in Eq. 3 rather than by (1 - a^n). Slots no (b, i) picks stay bit-identical.

        Under an initialised torch.distributed group the queries, values and present flags of all
        ranks are gathered first, so every rank applies the same update to the same slots and the
        memories stay equal without a broadcast (the update is a one-hot matmul, not an atomic
        scatter, so its result does not depend on summation order).
        """
        self._check(queries)
        if values.shape != queries.shape or present.shape != queries.shape[:2]:
            raise ValueError(f"values must be {list(queries.shape)} and present {list(queries.shape[:2])}, got "
                             f"{list(values.shape)} and {list(present.shape)}")
        dtype = self.slots.dtype
        with torch.autocast(queries.device.type, enabled=False):
            queries = _all_gather(queries.detach().to(dtype))
            values = _all_gather(values.detach().to(dtype))
            present = _all_gather(present.to(torch.uint8)).bool()

            chosen = self.cosine(queries).argmax(dim=-1)  # Eq. 2, [N,K]
            picks = F.one_hot(chosen, self.slots.shape[1]).to(dtype) * present.unsqueeze(-1).to(dtype)  # [N,K,m]
            values = torch.where(present.unsqueeze(-1), values, torch.zeros_like(values))  # absent may be NaN
            counts = picks.sum(dim=0)  # [K,m]
            mean = torch.einsum("nkm,nkc->kmc", picks, values) / counts.clamp_min(1).unsqueeze(-1)
            moved = self.decay * self.slots + (1 - self.decay) * mean  # Eq. 3
            self.slots.copy_(torch.where(counts.unsqueeze(-1) > 0, moved, self.slots))
