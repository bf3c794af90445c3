"""Where a detector's training batches come from: real crops, crops with holes, or augmented pairs.

A source is a pure function of (step, rng): the trainer seeds the rng from (seed, step), so every
variant of a benchmark draws the same real faces in the same order and a resumed run continues exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lafin_aug.data.crops import FaceCrops
from lafin_aug.data.fill import fill_hole
from lafin_aug.data.masks import MaskConfig, make_mask
from lafin_aug.data.schedule import step_indices

#: how augmented records join the real ones (see MixedSource)
MIXES = ("add", "replace")


class BatchSource(Protocol):
    """Yields (images uint8 [B,S,S,3], landmarks float32 [B,P,2]) for a step."""

    def batch(self, step: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class RealSource:
    """Real crops in the seeded epoch order; `hole_fraction` of them get a mask filled by `fill`.

    fill: one of `lafin_aug.data.fill.FILLS` ("zero" is the masked input M̄∘I that LaFIn's
    landmark predictor is trained on).
    """

    bank: FaceCrops
    seed: int = 0
    hole_fraction: float = 0.0
    fill: str = "zero"
    masks: MaskConfig = MaskConfig()
    rank: int = 0
    world: int = 1

    def batch(self, step: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        epochs, indices = step_indices(len(self.bank), size, step, self.seed, self.rank, self.world)
        images = self.bank.images[indices].copy()
        holes = rng.random(size) < self.hole_fraction
        for k in np.flatnonzero(holes):
            mask = make_mask(self.bank.size, self.seed, int(epochs[k]), int(self.bank.source_index[indices[k]]),
                             self.masks)
            images[k] = fill_hole(images[k], mask, self.fill, rng)
        return images, self.bank.landmarks[indices].copy()


@dataclass
class MixedSource:
    """Real crops with the augmentation under test (`extra`).

    mix "replace": half of each batch from `real`, half from `extra` (equal compute: the detector
    sees half as many real faces per step as without augmentation); "add": the full batch from
    `real` and as many records of `extra` beside it (equal real exposure, twice the batch; the
    reference LaFIn code takes one step on real faces and one on generated pairs instead).
    """

    real: BatchSource
    extra: BatchSource
    mix: str = "replace"

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise ValueError(f"unknown mix {self.mix!r} (one of {', '.join(MIXES)})")

    def batch(self, step: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        half = size // 2 if self.mix == "replace" else size
        images_a, points_a = self.real.batch(step, size - half if self.mix == "replace" else size, rng)
        images_b, points_b = self.extra.batch(step, half, rng)
        return np.concatenate([images_a, images_b]), np.concatenate([points_a, points_b])
