"""The IterableDataset that streams shard records into any detector's training loop
(:class:`AugmentedShards`, :func:`to_record`); its split over ranks and workers and its shuffle
buffer are :mod:`lafin_aug.shards.split`'s.

Checks: what is refused where
-----------------------------
Every refusal is a :class:`ShardFormatError` whose message starts with the shard's (or the
manifest's) path; h5py/OS errors from a damaged file (e.g. ``truncated file``) are re-raised as
one (:func:`open_shard`, :func:`shard_errors`).

- :func:`write_shard` refuses records that break the format: layout, non-finite landmarks or
  landmarks more than ``LANDMARK_MARGIN`` x S (0.25 S, the dataset readers' tolerance) outside the
  crop, ``source_index < 0``, ``epoch < -1``, ``edited`` or mask values other than 0/1, real
  records with a mask.
- :class:`AugmentedShards` checks, when built (in the calling process): the manifest (readable,
  not empty, each shard once, exactly the ``shard-*.h5`` files present), and every shard's
  format, version, header (the same in all shards), layout, and records, epochs and real records
  against its manifest row; this opens every shard and reads its ``epoch`` array (6 ms for 4
  shards below). Before the first read of each shard in each process it verifies the sha256
  (``verify_checksums=True``, the default; a DataLoader worker that is not persistent hashes
  again every epoch). While reading it checks every record as :func:`write_shard` does,
  vectorised: the per-record arrays once per shard, the masks once per read block of 32 records;
  this costs nothing measurable (AugmentedShards read as fast as before the checks, within noise).
- :func:`verify_shards` does all of that for every record and shard, checks run.json against the
  headers, and with ``shards_planned`` in run.json fails an incomplete run
  (``incomplete: 3 of 16 shards``; a warning with ``allow_partial=True``).

The checksum costs one more read of each file: ``.venv/bin/python benchmarks/bench_shards.py
--records 256 --sizes 256 --repeats 5 --tables checksum`` (4 shards x 64 wild crops of 256 px,
50.9 MB; CPU ``AVX512, native bf16: yes`` per ``lafin_aug.runtime.cpu_capability()``; 2 cores shared
with two training runs, load average 3.7, so noisy to ~20 %) measured sha256 alone at 1500 MB/s
(7538 rec/s), and one first pass through a new dataset and DataLoader (batch 32) at::

    workers  checksums off  checksums on  on/off
          0      1612 rec/s    1330 rec/s    0.83
          2       602 rec/s     550 rec/s    0.91

i.e. about 17 % of a pass with 0 workers and 9 % with 2 (paid once with 0 or persistent workers,
every epoch otherwise). Turn it off (``verify_checksums=False``) only for shards verified since
they were copied (``lafin-aug verify``): then a flipped byte in an image goes unnoticed.

Reading speed
-------------
Reading through :class:`AugmentedShards` with DataLoader batch 32 at 256 px (``bench_shards.py``
as for the compression figures in :mod:`lafin_aug.shards.format`) ran at 2593 rec/s
with 0 workers, the same as a plain h5py loop that also builds float batches (2337), against 6184
for the bare uint8 h5py loop; with 2 workers it ran at 835 rec/s where the DataLoader alone, passing
in-memory batches of the same shapes, managed 1039 on these two busy cores.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from lafin_aug.io import sha256_file
from lafin_aug.shards.format import (
    MANIFEST_NAME,
    ManifestRow,
    ShardFormatError,
    ShardHeader,
    _header_differences,
    _listing_problems,
    _manifest_problems,
    _mask_problems,
    _structure,
    _value_problems,
    open_shard,
    read_manifest,
    shard_errors,
)
from lafin_aug.shards.split import consumer, resolve_ranks, share, shuffle_buffer

_READ_BLOCK = 32  # records read from a shard per h5py call


def _refuse(path: Path, problems: Sequence[str]) -> None:
    """ShardFormatError naming `path` and every problem, if there are any."""
    if problems:
        raise ShardFormatError(f"{path}: " + "; ".join(problems))


def _row_from_file(path: Path) -> ManifestRow:
    """A manifest row computed from a lone shard file (no checksum)."""
    with open_shard(path) as handle, shard_errors(path):
        epoch = handle["epoch"][:]
    return ManifestRow(path.name, len(epoch), "", tuple(int(e) for e in np.unique(epoch)),
                       int((epoch == -1).sum()))


def _ranges(counts: Sequence[int], lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(position, start, stop) pieces of the global record range [lo, hi) over consecutive `counts`."""
    pieces, offset = [], 0
    for position, count in enumerate(counts):
        start, stop = max(lo, offset), min(hi, offset + count)
        if start < stop:
            pieces.append((position, start - offset, stop - offset))
        offset += count
    return pieces


_Raw = tuple[np.ndarray, np.ndarray, np.ndarray, int, int, bool]  # image, landmarks, mask, epoch, source, edited


def to_record(raw: _Raw) -> dict[str, Any]:
    """One yielded record: tensors at the model boundary."""
    image, landmarks, mask, epoch, source_index, edited = raw
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().mul_(1.0 / 255.0)
    return {
        "image": chw,
        "landmarks": torch.from_numpy(landmarks),
        "mask": torch.from_numpy(mask[None]),
        "epoch": epoch,
        "source_index": source_index,
        "edited": edited,
    }


def _listed_rows(directory: Path) -> list[ManifestRow]:
    """The manifest rows of a shard directory, refused unless they list exactly the shard files present."""
    rows = read_manifest(directory)
    problems = _listing_problems(directory, rows)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ShardFormatError(f"{directory / first.file}: {first.message}{more}; "
                               f"run `lafin-aug verify {directory}`")
    return rows


def _file_row(path: Path) -> ManifestRow:
    """A lone shard file's row: its directory's manifest row when that lists it (with the checksum),
    else one computed from the file (no checksum to verify)."""
    if (path.parent / MANIFEST_NAME).is_file():
        for row in read_manifest(path.parent):
            if row.name == path.name:
                return row
    return _row_from_file(path)


class AugmentedShards(IterableDataset):
    """Records of a shard directory (or one shard file) as training samples.

    Each record is a dict: ``image`` float32 [3,S,S] in [0,1] (RGB), ``landmarks`` float32 [P,2]
    pixel coordinates, ``mask`` uint8 [1,S,S] in {0,1} (1 = inpainted; uint8 because detectors
    rarely need it and it is a quarter of the float bytes to pass between processes), ``epoch``
    int (-1 for a real crop), ``source_index`` int, ``edited`` bool; ``transform(record) -> record``
    is applied last. ``include_real=False`` drops the epoch -1 records.

    Checks (every failure a ShardFormatError whose message starts with the shard or manifest path;
    raised in the DataLoader worker that reads, which the DataLoader re-raises in the caller):

    - when built (``__init__``, in the calling process): the manifest lists exactly the
      ``shard-*.h5`` files present, each once, and at least one; every shard opens as HDF5 with
      this format and version, has the six datasets with the header's shapes and dtypes, shares
      the first shard's header, and matches its manifest row (records, epochs, real records);
    - before the first read of each shard in each process (``verify_checksums=True``, the
      default): its sha256 against the manifest. This reads the whole file once more; with
      ``num_workers > 0`` and non-persistent workers, every epoch (see the module docstring for
      the measured cost). A lone shard file outside a directory whose manifest lists it has no
      checksum to verify;
    - while reading, vectorised: per shard, landmarks finite and within LANDMARK_MARGIN x S of
      the crop, source_index >= 0, epoch >= -1, edited in {0,1}; per read block, masks in {0,1}
      and empty for real records. Any h5py/OS error reading a shard becomes ShardFormatError.

    Splitting (:mod:`lafin_aug.shards.split`): the consumers are the DataLoader workers of every
    rank, C = world_size x num_workers, consumer k = rank x num_workers + worker id. The records of
    one pass, in this epoch's shard order and file order within a shard, are cut into C contiguous
    ranges of nearly equal size (they differ by at most one record) and consumer k reads range k.
    With at least as many shards as consumers that means whole shards plus at most two partial ones
    per consumer; with fewer shards it splits inside shards. Either way one pass yields every record
    exactly once and no consumer waits on another's extra shard. Rank and world size come from
    the constructor, else an initialised torch.distributed, else the RANK/WORLD_SIZE environment
    variables, read when the dataset is built (build it after ``init_process_group``).

    Shuffling (``shuffle=True``): the shard order is permuted by (seed, epoch), identically on
    every consumer; each consumer reads its shards in blocks of records in permuted order and
    passes them through a shuffle buffer of ``buffer_size`` records seeded by (seed, epoch, k).
    Call :meth:`set_epoch` before each epoch, as with DistributedSampler (with
    ``persistent_workers=True`` the workers keep the epoch they were started with).

    Shard files are (re)opened inside ``__iter__``, i.e. in the worker, so fork and spawn workers both work.
    """

    def __init__(self, path_or_dir: str | Path, shuffle: bool = True, seed: int = 0, buffer_size: int = 256,
                 include_real: bool = True, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 rank: int | None = None, world_size: int | None = None, verify_checksums: bool = True):
        path = Path(path_or_dir)
        if path.is_dir():
            self.directory, self.rows = path, _listed_rows(path)
        else:
            self.directory, self.rows = path.parent, [_file_row(path)]
        self.header = self._check_structure()
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.rank, self.world_size = resolve_ranks(rank, world_size)
        self.shuffle, self.seed, self.buffer_size = shuffle, seed, buffer_size
        self.include_real, self.transform = include_real, transform
        self.verify_checksums = verify_checksums
        self._verified: set[str] = set()  # shards whose checksum this process has verified
        self.epoch = 0

    def _check_structure(self) -> ShardHeader:
        """The shared header, after the structural checks of every shard (see the class docstring)."""
        reference: tuple[Path, ShardHeader] | None = None
        for row in self.rows:
            path = self.directory / row.name
            with open_shard(path) as handle:
                header, _, problems = _structure(handle, path, row)
            _refuse(path, problems)
            if reference is None:
                reference = (path, header)
            elif diffs := _header_differences(header, reference[1]):
                raise ShardFormatError(f"{path}: header differs from {reference[0].name}: " + ", ".join(diffs))
        assert reference is not None  # _listed_rows refuses an empty manifest
        return reference[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of this epoch (deterministic in (seed, epoch))."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        """Records this rank yields in one pass (the manifest total, filtered, when not distributed)."""
        start, stop = share(sum(row.count(self.include_real) for row in self.rows), self.rank, self.world_size)
        return stop - start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        k, consumers = consumer(self.rank, self.world_size)
        order = np.arange(len(self.rows))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))
        counts = [self.rows[i].count(self.include_real) for i in order]
        lo, hi = share(sum(counts), k, consumers)
        rng = np.random.default_rng([self.seed, self.epoch, k]) if self.shuffle else None
        raws = (raw for position, start, stop in _ranges(counts, lo, hi)
                for raw in self._read(self.rows[order[position]], start, stop, rng))
        if rng is not None and self.buffer_size > 1:
            raws = shuffle_buffer(raws, self.buffer_size, rng)
        for raw in raws:
            record = to_record(raw)
            yield self.transform(record) if self.transform is not None else record

    def _verify_checksum(self, row: ManifestRow, path: Path) -> None:
        """ShardFormatError unless the file's sha256 is the manifest's (once per shard and process)."""
        if not self.verify_checksums or not row.sha256 or row.name in self._verified:
            return
        with shard_errors(path):
            digest = sha256_file(path)
        if digest != row.sha256:
            raise ShardFormatError(f"{path}: sha256 {digest} differs from {row.sha256} in "
                                   f"{self.directory / MANIFEST_NAME}: the file was damaged or changed after "
                                   f"it was written")
        self._verified.add(row.name)

    def _read(self, row: ManifestRow, start: int, stop: int,
              rng: np.random.Generator | None) -> Iterator[_Raw]:
        """Records start..stop (counting only the included ones) of one shard, checked, read blockwise
        and copied out of the block, so a shuffle buffer holds only the uint8 records it needs."""
        path = self.directory / row.name
        self._verify_checksum(row, path)
        with open_shard(path) as handle:
            with shard_errors(path):
                epoch, landmarks = handle["epoch"][:], handle["landmarks"][:]
                source_index, edited = handle["source_index"][:], handle["edited"][:]
            _refuse(path, _manifest_problems(epoch, row)
                    + _value_problems(landmarks, source_index, epoch, edited, self.header.size))
            selected = np.arange(len(epoch)) if self.include_real else np.flatnonzero(epoch != -1)
            selected = selected[start:stop]
            blocks = [selected[i:i + _READ_BLOCK] for i in range(0, len(selected), _READ_BLOCK)]
            if rng is not None:
                blocks = [blocks[i] for i in rng.permutation(len(blocks))]
            for block in blocks:
                first, last = int(block[0]), int(block[-1]) + 1
                with shard_errors(path):
                    images, masks = handle["image"][first:last], handle["mask"][first:last]
                _refuse(path, _mask_problems(masks, epoch[first:last], first))
                for i in block:
                    yield (images[i - first].copy(), landmarks[i].copy(), masks[i - first].copy(),
                           int(epoch[i]), int(source_index[i]), bool(edited[i]))
