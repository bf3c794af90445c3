"""Which faces (and which epoch) a training step sees: a pure function of (seed, step), so resume is exact."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled face order of one epoch."""
    return np.random.default_rng((seed, epoch, 0x5EED)).permutation(count)


def step_indices(count: int, batch: int, step: int, seed: int, rank: int = 0,
                 world: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, face indices) of this rank's `batch` samples at `step`; ranks take disjoint slices."""
    if count <= 0:
        raise ValueError("cannot schedule batches over an empty dataset")
    start = (step * world + rank) * batch
    positions = np.arange(start, start + batch)
    epochs = positions // count
    indices = np.array([epoch_order(count, seed, int(e))[p % count] for e, p in zip(epochs, positions)])
    return epochs.astype(np.int64), indices.astype(np.int64)
