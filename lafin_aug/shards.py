"""Augmented-record shards: the HDF5 format (version 1), its manifest, verification, and the
IterableDataset that streams them into any detector's training loop.

Shard format, version 1
-----------------------
A shard directory holds ``shard-00000.h5``, ``shard-00001.h5``, ... plus ``manifest.csv`` and
``run.json``. Each shard file holds N records of one S x S crop size and P points:

=================  =========  ============  ==================================================
dataset            dtype      shape         meaning
=================  =========  ============  ==================================================
``image``          uint8      [N,S,S,3]     RGB crop (inpainted, or the real crop)
``landmarks``      float32    [N,P,2]       (x, y) pixel-index coordinates, all finite
``mask``           uint8      [N,S,S]       1 = inpainted pixel; all 0 when ``epoch == -1``
``source_index``   int64      [N]           index (>= 0) of the face in the reader's order
``epoch``          int32      [N]           augmentation epoch; -1 = the un-augmented real crop
``edited``         uint8      [N]           1 = landmarks were edited before conditioning
=================  =========  ============  ==================================================

``image`` and ``mask`` are chunked one record per chunk and compressed (see below); the small
per-record arrays are stored contiguously. File attributes: ``format`` = ``"lafin-aug-shard"``,
``version`` = 1, ``points``, ``size``, ``dataset``, ``split``, ``seed``, ``inpainter_sha256``
(the :class:`ShardHeader`); all shards of one directory share them. Readers refuse any other
``format`` or ``version`` with an error naming the file.

``manifest.csv`` has one row per shard: ``file, records, sha256, epochs, real_records`` where
``epochs`` lists the distinct epochs in the shard, ascending, joined by ``;`` (e.g. ``-1;0;1``)
and ``real_records`` counts its ``epoch == -1`` records (so a reader can size an augmented-only
pass without opening files). ``run.json`` is the generating command's full configuration; top-level
keys named like header fields must agree with the shards.

A shard is written to a hidden temporary name beside its final name and renamed only when
complete, so an interrupted write never leaves a file under ``shard-*.h5``; a hard-killed writer
can leave a ``.shard-*.h5.tmp-PID`` file, which readers ignore and :func:`verify_shards` reports
as a warning.

Compression
-----------
Chosen for read speed. ``.venv/bin/python benchmarks/bench_shards.py --repeats 5`` on 512 wild face
crops (/work/shared/data/wild/train) resized to 128 and 256 px, stroke-and-box masks, one record in
four a real crop; page cache warm (decompression and h5py cost, not disk); best of 5 on 2 CPU cores
shared with other jobs (load average ~4), so figures are noisy to about 2x. Records/s and KB per
record; "none+gzip-1" is the default (images uncompressed, masks gzip level 1)::

    size  compression  write  image read  mask read  both read  image KB  mask KB
     128  none          3587       32748      62045      21435      49.2     16.4
     128  lzf            872        3042      13477       2482      45.7      1.2
     128  gzip-1         550        2167      20412       1959      41.5      0.6
     128  gzip-4         410        2263      13500       1938      41.5      0.5
     128  none+gzip-1   4335       44075      23660      15396      49.2      0.6
     256  none          1944       30382      62798      20476     196.6     65.5
     256  lzf            413        1828       4379       1290     164.3      2.8
     256  gzip-1         164         747       6909        674     142.8      1.6
     256  gzip-4         205        1175       7261       1011     142.9      1.2
     256  none+gzip-1   2000       21198      11986       7657     196.6      1.6

Photographs barely compress under byte compressors (at 256 px lzf saves 16 %, gzip 27 %, level 4
no more than level 1) yet decompressing them costs 10-40x the CPU of reading raw bytes, CPU that
loader workers share with augmentation and training: images are stored uncompressed. Masks are
mostly zeros: gzip-1 shrinks them 40x (65.5 -> 1.6 KB at 256 px) and reads them at least as fast
as lzf or gzip-4. A 256 px record takes ~198 KB on disk (145 KB with everything gzip-1); where disk or
network bandwidth rather than CPU limits reading (cold cache, slow network filesystem), write with
``compression="gzip-1"``. Readers need no setting: HDF5 filters describe themselves.

Reading through :class:`AugmentedShards` with DataLoader batch 32 at 256 px ran at 2593 rec/s
with 0 workers, the same as a plain h5py loop that also builds float batches (2337), against 6184
for the bare uint8 h5py loop; with 2 workers it ran at 835 rec/s where the DataLoader alone, passing
in-memory batches of the same shapes, managed 1039 on these two busy cores.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lafin_aug.io import atomic_path, sha256_file
from lafin_aug.runtime import distributed

SHARD_FORMAT = "lafin-aug-shard"
SHARD_VERSION = 1
MANIFEST_NAME = "manifest.csv"
RUN_CONFIG_NAME = "run.json"
MANIFEST_COLUMNS = ("file", "records", "sha256", "epochs", "real_records")

#: h5py filter arguments for each compression name accepted by :func:`write_shard`.
COMPRESSIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "lzf": {"compression": "lzf"},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "gzip-4": {"compression": "gzip", "compression_opts": 4},
}
DEFAULT_COMPRESSION = "none"
DEFAULT_MASK_COMPRESSION = "gzip-1"

_SHARD_NAME = re.compile(r"shard-\d{5,}\.h5")
_READ_BLOCK = 32  # records read from a shard per h5py call
_DATASETS = ("image", "landmarks", "mask", "source_index", "epoch", "edited")


class ShardFormatError(ValueError):
    """A shard, manifest or run config that is not what this version of lafin-aug can read."""


@dataclass(frozen=True)
class ShardHeader:
    """What every record of a shard directory shares, stored as file attributes."""

    points: int
    size: int
    dataset: str
    split: str
    seed: int
    inpainter_sha256: str


@dataclass(frozen=True)
class ManifestRow:
    """One shard as listed in manifest.csv."""

    name: str
    records: int
    sha256: str
    epochs: tuple[int, ...]
    real_records: int

    def count(self, include_real: bool) -> int:
        """Records a reader yields from this shard."""
        return self.records if include_real else self.records - self.real_records


@dataclass(frozen=True)
class Finding:
    """One problem :func:`verify_shards` found, naming the file it concerns."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_shards`: failures make it not ok, warnings do not."""

    directory: str
    shards: int = 0
    records: int = 0
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no failure was found."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output."""
        return {"ok": self.ok, **asdict(self)}


def shard_name(index: int) -> str:
    """File name of the shard with this index: ``shard-00007.h5``."""
    return f"shard-{index:05d}.h5"


# ---------------------------------------------------------------------------------------------
# record checks shared by the writer and the verifier


def _layout_problems(header: ShardHeader, arrays: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> list[str]:
    """Shape/dtype disagreements between (shape, dtype) per dataset and the header."""
    n = arrays["epoch"][0][0] if arrays["epoch"][0] else -1
    s, p = header.size, header.points
    expected = {
        "image": ((n, s, s, 3), (np.uint8,)),
        "landmarks": ((n, p, 2), (np.float32,)),
        "mask": ((n, s, s), (np.uint8,)),
        "source_index": ((n,), (np.int64,)),
        "epoch": ((n,), (np.int32,)),
        "edited": ((n,), (np.uint8, np.bool_)),
    }
    problems = []
    for name, (shape, dtypes) in expected.items():
        got_shape, got_dtype = arrays[name]
        if tuple(got_shape) != shape or np.dtype(got_dtype) not in [np.dtype(d) for d in dtypes]:
            want = " or ".join(np.dtype(d).name for d in dtypes)
            problems.append(f"{name} is {np.dtype(got_dtype).name} {list(got_shape)}, "
                            f"expected {want} {list(shape)} (N={n}, S={s}, P={p})")
    return problems


def _first(indices: np.ndarray, offset: int = 0, limit: int = 5) -> str:
    """Up to `limit` record indices for a message."""
    shown = ", ".join(str(int(i) + offset) for i in indices[:limit])
    return f"[{shown}{', ...' if len(indices) > limit else ''}]"


def _value_problems(landmarks: np.ndarray, source_index: np.ndarray, epoch: np.ndarray,
                    edited: np.ndarray) -> list[str]:
    """Value-range violations of the per-record arrays, naming the records."""
    problems = []
    bad = np.flatnonzero(~np.isfinite(landmarks).all(axis=(1, 2)))
    if bad.size:
        problems.append(f"landmarks of records {_first(bad)} are not finite")
    bad = np.flatnonzero(source_index < 0)
    if bad.size:
        problems.append(f"source_index of records {_first(bad)} is negative")
    bad = np.flatnonzero(epoch < -1)
    if bad.size:
        problems.append(f"epoch of records {_first(bad)} is below -1")
    bad = np.flatnonzero(edited.astype(np.uint8) > 1)
    if bad.size:
        problems.append(f"edited of records {_first(bad)} is not 0 or 1")
    return problems


def _mask_problems(mask: np.ndarray, epoch: np.ndarray, offset: int = 0) -> list[str]:
    """Masks outside {0,1}, and real (epoch -1) records with a non-empty mask; records counted from `offset`."""
    problems = []
    bad = np.flatnonzero((mask > 1).any(axis=(1, 2)))
    if bad.size:
        problems.append(f"mask of records {_first(bad, offset)} has values other than 0 and 1")
    bad = np.flatnonzero((epoch == -1) & mask.any(axis=(1, 2)))
    if bad.size:
        problems.append(f"real (epoch -1) records {_first(bad, offset)} have a non-empty mask")
    return problems


# ---------------------------------------------------------------------------------------------
# writing


def _as_int(array: np.ndarray, dtype: type) -> np.ndarray:
    """Integer or bool array cast to `dtype`; other kinds are left for the layout check to reject."""
    array = np.asarray(array)
    return array.astype(dtype) if array.dtype.kind in "iub" else array


def write_shard(path: str | Path, header: ShardHeader, image: np.ndarray, landmarks: np.ndarray,
                mask: np.ndarray, source_index: np.ndarray, epoch: np.ndarray, edited: np.ndarray,
                compression: str = DEFAULT_COMPRESSION,
                mask_compression: str = DEFAULT_MASK_COMPRESSION) -> ManifestRow:
    """Write one shard atomically and return its manifest row.

    ``image`` must be uint8; ``landmarks`` any float; ``mask``, ``source_index``, ``epoch`` and
    ``edited`` any integer or bool dtype. Records that break the format raise ValueError naming
    the file and the records before anything is written. ``compression`` applies to ``image``,
    ``mask_compression`` to ``mask`` (names from COMPRESSIONS).
    """
    path = Path(path)
    for name in (compression, mask_compression):
        if name not in COMPRESSIONS:
            raise ValueError(f"unknown compression {name!r} (known: {sorted(COMPRESSIONS)})")
    landmarks = np.asarray(landmarks)
    arrays = {
        "image": np.asarray(image),
        "landmarks": landmarks.astype(np.float32) if landmarks.dtype.kind == "f" else landmarks,
        "mask": _as_int(mask, np.uint8),
        "source_index": _as_int(source_index, np.int64),
        "epoch": _as_int(epoch, np.int32),
        "edited": _as_int(edited, np.uint8),
    }
    problems = _layout_problems(header, {k: (v.shape, v.dtype) for k, v in arrays.items()})
    if not problems:
        problems = (_value_problems(arrays["landmarks"], arrays["source_index"], arrays["epoch"],
                                    arrays["edited"])
                    + _mask_problems(arrays["mask"], arrays["epoch"]))
    if problems:
        raise ValueError(f"{path}: refusing to write shard: " + "; ".join(problems))

    n, s = len(arrays["epoch"]), header.size
    chunked = {"image": ((1, s, s, 3), compression), "mask": ((1, s, s), mask_compression)}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["format"] = SHARD_FORMAT
            handle.attrs["version"] = SHARD_VERSION
            for key, value in asdict(header).items():
                handle.attrs[key] = value
            for name in _DATASETS:
                if name in chunked and n:
                    chunks, scheme = chunked[name]
                    handle.create_dataset(name, data=arrays[name], chunks=chunks, **COMPRESSIONS[scheme])
                else:
                    handle.create_dataset(name, data=arrays[name])
        digest = sha256_file(tmp)
    epochs = tuple(int(e) for e in np.unique(arrays["epoch"]))
    return ManifestRow(path.name, n, digest, epochs, int((arrays["epoch"] == -1).sum()))


# ---------------------------------------------------------------------------------------------
# manifest and run config


def write_manifest(directory: str | Path, rows: Sequence[ManifestRow]) -> None:
    """Write ``directory/manifest.csv`` atomically, one row per shard in the given order."""
    with atomic_path(Path(directory) / MANIFEST_NAME) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_COLUMNS)
            for row in rows:
                writer.writerow([row.name, row.records, row.sha256, ";".join(map(str, row.epochs)),
                                 row.real_records])


def read_manifest(directory: str | Path) -> list[ManifestRow]:
    """The rows of ``directory/manifest.csv``; ShardFormatError naming the file and line if malformed."""
    path = Path(directory) / MANIFEST_NAME
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise ShardFormatError(f"{path}: header is {reader.fieldnames}, expected {list(MANIFEST_COLUMNS)}")
        rows = []
        for raw in reader:
            where = f"{path}:{reader.line_num}"
            if not _SHARD_NAME.fullmatch(raw["file"] or ""):
                raise ShardFormatError(f"{where}: file {raw['file']!r} is not a shard name like {shard_name(0)}")
            try:
                epochs = tuple(int(e) for e in raw["epochs"].split(";")) if raw["epochs"] else ()
                row = ManifestRow(raw["file"], int(raw["records"]), raw["sha256"], epochs,
                                  int(raw["real_records"]))
            except (TypeError, ValueError) as exc:
                raise ShardFormatError(f"{where}: {exc}") from None
            if not 0 <= row.real_records <= row.records:
                raise ShardFormatError(f"{where}: real_records {row.real_records} not in 0..{row.records}")
            rows.append(row)
    return rows


def read_run_config(directory: str | Path) -> dict[str, Any]:
    """The generating command's configuration, ``directory/run.json``; ShardFormatError unless a JSON object."""
    path = Path(directory) / RUN_CONFIG_NAME
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ShardFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ShardFormatError(f"{path}: expected a JSON object, found {type(config).__name__}")
    return config


# ---------------------------------------------------------------------------------------------
# reading


def _attr(attrs: h5py.AttributeManager, key: str, path: Path) -> Any:
    """One file attribute as a plain Python value."""
    if key not in attrs:
        raise ShardFormatError(f"{path}: missing attribute {key!r}")
    value = attrs[key]
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _check_format(handle: h5py.File, path: Path) -> None:
    """ShardFormatError naming `path` unless it is a shard of a version this code reads."""
    fmt = handle.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt != SHARD_FORMAT:
        raise ShardFormatError(f"{path}: not a lafin-aug shard (format attribute {fmt!r}, "
                               f"expected {SHARD_FORMAT!r})")
    version = handle.attrs.get("version")
    version = version.item() if isinstance(version, np.generic) else version
    if version != SHARD_VERSION:
        raise ShardFormatError(f"{path}: shard format version {version!r} is not supported; this "
                               f"lafin-aug reads version {SHARD_VERSION} (upgrade lafin-aug or regenerate)")


def open_shard(path: str | Path) -> h5py.File:
    """Open a shard read-only after checking its format and version; the caller closes it."""
    path = Path(path)
    handle = h5py.File(path, "r")
    try:
        _check_format(handle, path)
    except ShardFormatError:
        handle.close()
        raise
    return handle


def _header(handle: h5py.File, path: Path) -> ShardHeader:
    """The ShardHeader stored in an open shard's attributes."""
    values = {f.name: _attr(handle.attrs, f.name, path) for f in fields(ShardHeader)}
    return ShardHeader(**values)


def read_shard_header(path: str | Path) -> ShardHeader:
    """The header attributes of one shard (format and version checked)."""
    with open_shard(path) as handle:
        return _header(handle, Path(path))


def _row_from_file(path: Path) -> ManifestRow:
    """A manifest row computed from a lone shard file (no checksum)."""
    with open_shard(path) as handle:
        epoch = handle["epoch"][:]
    return ManifestRow(path.name, len(epoch), "", tuple(int(e) for e in np.unique(epoch)),
                       int((epoch == -1).sum()))


# ---------------------------------------------------------------------------------------------
# verification


def _inspect(path: Path, row: ManifestRow) -> tuple[ShardHeader, list[str]]:
    """Header of one shard and its departures from the format and from its manifest row."""
    with open_shard(path) as handle:
        header = _header(handle, path)
        missing = [name for name in _DATASETS if name not in handle]
        if missing:
            return header, [f"missing datasets {missing}"]
        problems = _layout_problems(header, {k: (handle[k].shape, handle[k].dtype) for k in _DATASETS})
        if problems:
            return header, problems
        epoch = handle["epoch"][:]
        if len(epoch) != row.records:
            problems.append(f"holds {len(epoch)} records, manifest says {row.records}")
        problems += _value_problems(handle["landmarks"][:], handle["source_index"][:], epoch,
                                    handle["edited"][:])
        block = 256
        for start in range(0, len(epoch), block):
            problems += _mask_problems(handle["mask"][start:start + block], epoch[start:start + block], start)
        epochs = tuple(int(e) for e in np.unique(epoch))
        if epochs != row.epochs:
            problems.append(f"holds epochs {list(epochs)}, manifest says {list(row.epochs)}")
        real = int((epoch == -1).sum())
        if real != row.real_records:
            problems.append(f"holds {real} real records, manifest says {row.real_records}")
    return header, problems


def verify_shards(directory: str | Path) -> VerifyReport:
    """Check every shard of a directory against manifest.csv, run.json and the format guarantees."""
    directory = Path(directory)
    report = VerifyReport(str(directory))
    try:
        rows = read_manifest(directory)
    except (OSError, ShardFormatError) as exc:
        report.failures.append(Finding(MANIFEST_NAME, str(exc)))
        return report

    names = [row.name for row in rows]
    for name in sorted({n for n in names if names.count(n) > 1}):
        report.failures.append(Finding(name, "listed more than once in manifest.csv"))
    for path in sorted(directory.glob("shard-*.h5")):
        if path.name not in names:
            report.failures.append(Finding(path.name, "present but not listed in manifest.csv"))
    for path in sorted(directory.glob(".shard-*.h5.tmp-*")):
        report.warnings.append(Finding(path.name, "temporary file of an interrupted write; safe to delete"))

    reference: tuple[str, ShardHeader] | None = None
    for row in rows:
        path = directory / row.name
        if not path.is_file():
            report.failures.append(Finding(row.name, "listed in manifest.csv but missing"))
            continue
        digest = sha256_file(path)
        if digest != row.sha256:
            report.failures.append(Finding(row.name, f"sha256 {digest} differs from manifest {row.sha256}"))
        try:
            header, problems = _inspect(path, row)
        except Exception as exc:  # any failure to read is a finding, not a crash
            report.failures.append(Finding(row.name, f"cannot be read: {exc}"))
            continue
        report.failures += [Finding(row.name, p) for p in problems]
        if reference is None:
            reference = (row.name, header)
        else:
            diffs = [f"{k} {v!r} != {getattr(reference[1], k)!r}" for k, v in asdict(header).items()
                     if v != getattr(reference[1], k)]
            if diffs:
                report.failures.append(Finding(row.name, f"header differs from {reference[0]}: " + ", ".join(diffs)))
        report.shards += 1
        report.records += row.records

    try:
        config = read_run_config(directory)
    except (OSError, ShardFormatError) as exc:
        report.failures.append(Finding(RUN_CONFIG_NAME, str(exc)))
    else:
        if reference is not None:
            for key, value in asdict(reference[1]).items():
                if key in config and config[key] != value:
                    report.failures.append(Finding(RUN_CONFIG_NAME, f"{key} is {config[key]!r}, shards say {value!r}"))
    return report


# ---------------------------------------------------------------------------------------------
# the IterableDataset


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


class AugmentedShards(IterableDataset):
    """Records of a shard directory (or one shard file) as training samples.

    Each record is a dict: ``image`` float32 [3,S,S] in [0,1] (RGB), ``landmarks`` float32 [P,2]
    pixel coordinates, ``mask`` uint8 [1,S,S] in {0,1} (1 = inpainted; uint8 because detectors
    rarely need it and it is a quarter of the float bytes to pass between processes), ``epoch``
    int (-1 for a real crop), ``source_index`` int, ``edited`` bool; ``transform(record) -> record``
    is applied last. ``include_real=False`` drops the epoch -1 records.

    Splitting: the consumers are the DataLoader workers of every rank, C = world_size x
    num_workers, consumer k = rank x num_workers + worker id. The records of one pass, in this
    epoch's shard order and file order within a shard, are cut into C contiguous ranges of
    nearly equal size (they differ by at most one record) and consumer k reads range k. With at
    least as many shards as consumers that means whole shards plus at most two partial ones per
    consumer; with fewer shards it splits inside shards. Either way one pass yields every record
    exactly once and no consumer waits on another's extra shard. Rank and world size come from
    the constructor, else an initialised torch.distributed, else the RANK/WORLD_SIZE environment
    variables, read when the dataset is built (build it after ``init_process_group``).

    Shuffling (``shuffle=True``): the shard order is permuted by (seed, epoch), identically on
    every consumer; each consumer reads its shards in blocks of records in permuted order and
    passes them through a shuffle buffer of ``buffer_size`` records seeded by (seed, epoch, k).
    Call :meth:`set_epoch` before each epoch, as with DistributedSampler (with
    ``persistent_workers=True`` the workers keep the epoch they were started with).

    Shard files are opened inside ``__iter__``, i.e. in the worker, so fork and spawn workers both work.
    """

    def __init__(self, path_or_dir: str | Path, shuffle: bool = True, seed: int = 0, buffer_size: int = 256,
                 include_real: bool = True, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 rank: int | None = None, world_size: int | None = None):
        path = Path(path_or_dir)
        if path.is_dir():
            self.directory, self.rows = path, read_manifest(path)
        else:
            self.directory, self.rows = path.parent, [_row_from_file(path)]
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        found_rank, found_world = distributed()
        self.rank = found_rank if rank is None else rank
        self.world_size = found_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
        self.shuffle, self.seed, self.buffer_size = shuffle, seed, buffer_size
        self.include_real, self.transform = include_real, transform
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of this epoch (deterministic in (seed, epoch))."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        """Records this rank yields in one pass (the manifest total, filtered, when not distributed)."""
        total = sum(row.count(self.include_real) for row in self.rows)
        return (self.rank + 1) * total // self.world_size - self.rank * total // self.world_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        consumers, consumer = self.world_size * workers, self.rank * workers + worker
        order = np.arange(len(self.rows))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))
        counts = [self.rows[i].count(self.include_real) for i in order]
        total = sum(counts)
        lo, hi = consumer * total // consumers, (consumer + 1) * total // consumers
        rng = np.random.default_rng([self.seed, self.epoch, consumer]) if self.shuffle else None
        raws = (raw for position, start, stop in _ranges(counts, lo, hi)
                for raw in self._read(self.rows[order[position]], start, stop, rng))
        if rng is not None and self.buffer_size > 1:
            raws = _shuffle_buffer(raws, self.buffer_size, rng)
        for raw in raws:
            record = to_record(raw)
            yield self.transform(record) if self.transform is not None else record

    def _read(self, row: ManifestRow, start: int, stop: int,
              rng: np.random.Generator | None) -> Iterator[_Raw]:
        """Records start..stop (counting only the included ones) of one shard, read blockwise and
        copied out of the block, so a shuffle buffer holds only the uint8 records it needs."""
        path = self.directory / row.name
        with open_shard(path) as handle:
            epoch = handle["epoch"][:]
            if len(epoch) != row.records or int((epoch == -1).sum()) != row.real_records:
                raise ShardFormatError(f"{path}: contents disagree with {MANIFEST_NAME} "
                                       f"(run verify_shards on {self.directory})")
            selected = np.arange(len(epoch)) if self.include_real else np.flatnonzero(epoch != -1)
            selected = selected[start:stop]
            landmarks = handle["landmarks"][:]
            source_index = handle["source_index"][:]
            edited = handle["edited"][:]
            blocks = [selected[i:i + _READ_BLOCK] for i in range(0, len(selected), _READ_BLOCK)]
            if rng is not None:
                blocks = [blocks[i] for i in rng.permutation(len(blocks))]
            for block in blocks:
                first, last = int(block[0]), int(block[-1]) + 1
                images, masks = handle["image"][first:last], handle["mask"][first:last]
                for i in block:
                    yield (images[i - first].copy(), landmarks[i].copy(), masks[i - first].copy(),
                           int(epoch[i]), int(source_index[i]), bool(edited[i]))


def _shuffle_buffer(items: Iterator[_Raw], size: int, rng: np.random.Generator) -> Iterator[_Raw]:
    """Items in an order randomised by a reservoir of `size` items."""
    buffer: list[_Raw] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]
