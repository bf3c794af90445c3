"""One pass of records split over the ranks and DataLoader workers of a run, and shuffled within a
consumer: the one place both streaming datasets (:class:`lafin_aug.shards.AugmentedShards` and
:class:`lafin_aug.OnTheFlyAugment`) read ranks and workers.

The consumers are the DataLoader workers of every rank: C = world_size x num_workers, consumer
k = rank x num_workers + worker id (a process reading without DataLoader workers is one consumer).
The N records of one pass, in an order every consumer computes identically, are cut into C
contiguous ranges of nearly equal size (they differ by at most one record) and consumer k takes
range k, so one pass yields every record exactly once. The ranges of one rank's workers are
adjacent, so a rank's share is range `rank` of the same cut into world_size parts. This is
webdataset's split_by_node followed by split_by_worker, except that it cuts records rather than
dealing out whole shards, so no consumer waits on another's extra shard.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import numpy as np
from torch.utils.data import get_worker_info

from lafin_aug.runtime import distributed

T = TypeVar("T")


def resolve_ranks(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): the arguments given, else those of :func:`lafin_aug.runtime.distributed`."""
    found_rank, found_world = distributed()
    rank = found_rank if rank is None else rank
    world_size = found_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return rank, world_size


def consumer(rank: int, world_size: int) -> tuple[int, int]:
    """(k, C) of the calling process: its consumer index and the number of consumers of the run."""
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * workers + worker, world_size * workers


def share(total: int, part: int, parts: int) -> tuple[int, int]:
    """[start, stop) of range `part` when `total` records are cut into `parts` contiguous ranges."""
    return part * total // parts, (part + 1) * total // parts


def shuffle_buffer(items: Iterator[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """Items in an order randomised by a reservoir of `size` items."""
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]
