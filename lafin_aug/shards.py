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
``landmarks``      float32    [N,P,2]       (x, y) pixel indices, finite, <= 0.25 S outside
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
``epochs`` lists the distinct epochs in the shard, ascending, joined by ``;`` (e.g. ``-1;0;1``),
``sha256`` is the file's checksum (64 lowercase hex digits) and ``real_records`` counts its
``epoch == -1`` records (so a reader can size an augmented-only pass without opening files). The
manifest lists every ``shard-*.h5`` file of the directory exactly once. ``run.json`` is the
generating command's full configuration; top-level keys named like header fields must agree with
the shards, and ``shards_planned`` (when present) is the number of shards the run will write.

A shard is written to a hidden temporary name beside its final name and renamed only when
complete, so an interrupted write never leaves a file under ``shard-*.h5``; a hard-killed writer
can leave a ``.shard-*.h5.tmp-PID`` file, which readers ignore, :func:`verify_shards` reports as a
warning and :func:`remove_stale_temporaries` deletes (once its writer is gone).

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

import contextlib
import csv
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lafin_aug.data.base import OUTSIDE_TOLERANCE
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

#: How far (a fraction of the crop side S) a stored landmark may lie outside the crop: the dataset
#: readers' tolerance around a photo. Crops frame their landmarks, so real records sit well inside.
LANDMARK_MARGIN = OUTSIDE_TOLERANCE

_SHARD_NAME = re.compile(r"shard-\d{5,}\.h5")
_SHARD_GLOB = "shard-*.h5"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMPORARY_GLOB = ".shard-*.h5.tmp-*"
_TEMPORARY_NAME = re.compile(r"\.shard-\d{5,}\.h5\.tmp-(\d+)")  # lafin_aug.io.atomic_path's names
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
                    edited: np.ndarray, size: int) -> list[str]:
    """Value-range violations of the per-record arrays of S = `size` crops, naming the records.

    Landmarks must be finite and lie within LANDMARK_MARGIN x S of the crop (as the dataset
    readers allow around a photo); one vectorised pass over each array.
    """
    problems = []
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    bad = np.flatnonzero(~finite)
    if bad.size:
        problems.append(f"landmarks of records {_first(bad)} are not finite")
    margin = LANDMARK_MARGIN * size
    outside = ((landmarks < -margin) | (landmarks > size - 1 + margin)).any(axis=(1, 2)) & finite
    bad = np.flatnonzero(outside)
    if bad.size:
        problems.append(f"landmarks of records {_first(bad)} lie more than {margin:g} px outside the "
                        f"{size}x{size} crop")
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
    """Masks outside {0,1}, and real (epoch -1) records with a non-empty mask; records counted from `offset`.

    One vectorised pass over the masks (their per-record maximum).
    """
    problems = []
    peak = mask.max(axis=(1, 2), initial=0)
    bad = np.flatnonzero(peak > 1)
    if bad.size:
        problems.append(f"mask of records {_first(bad, offset)} has values other than 0 and 1")
    bad = np.flatnonzero((epoch == -1) & (peak > 0))
    if bad.size:
        problems.append(f"real (epoch -1) records {_first(bad, offset)} have a non-empty mask")
    return problems


def _manifest_problems(epoch: np.ndarray, row: ManifestRow) -> list[str]:
    """Disagreements between a shard's epoch array and its manifest row."""
    problems = []
    if len(epoch) != row.records:
        problems.append(f"holds {len(epoch)} records, manifest says {row.records}")
    epochs = tuple(int(e) for e in np.unique(epoch))
    if epochs != row.epochs:
        problems.append(f"holds epochs {list(epochs)}, manifest says {list(row.epochs)}")
    real = int((epoch == -1).sum())
    if real != row.real_records:
        problems.append(f"holds {real} real records, manifest says {row.real_records}")
    return problems


def _refuse(path: Path, problems: Sequence[str]) -> None:
    """ShardFormatError naming `path` and every problem, if there are any."""
    if problems:
        raise ShardFormatError(f"{path}: " + "; ".join(problems))


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
                                    arrays["edited"], header.size)
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
    """The rows of ``directory/manifest.csv``; ShardFormatError naming the file (and line) if it cannot be
    read or is malformed. An empty (header-only) manifest reads as no rows; readers refuse it."""
    path = Path(directory) / MANIFEST_NAME
    try:
        with open(path, newline="") as handle:
            return _manifest_rows(csv.DictReader(handle), path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ShardFormatError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _manifest_rows(reader: csv.DictReader, path: Path) -> list[ManifestRow]:
    """The checked rows of an open manifest."""
    if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
        raise ShardFormatError(f"{path}: header is {reader.fieldnames}, expected {list(MANIFEST_COLUMNS)}")
    rows = []
    for raw in reader:
        where = f"{path}:{reader.line_num}"
        if None in raw or None in raw.values():
            raise ShardFormatError(f"{where}: expected the {len(MANIFEST_COLUMNS)} fields {list(MANIFEST_COLUMNS)}")
        if not _SHARD_NAME.fullmatch(raw["file"]):
            raise ShardFormatError(f"{where}: file {raw['file']!r} is not a shard name like {shard_name(0)}")
        if not _SHA256.fullmatch(raw["sha256"]):
            raise ShardFormatError(f"{where}: sha256 {raw['sha256']!r} is not 64 lowercase hex digits")
        try:
            epochs = tuple(int(e) for e in raw["epochs"].split(";")) if raw["epochs"] else ()
            row = ManifestRow(raw["file"], int(raw["records"]), raw["sha256"], epochs, int(raw["real_records"]))
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


@contextlib.contextmanager
def shard_errors(path: str | Path) -> Iterator[None]:
    """Re-raise what h5py (or the OS) raises inside the block as ShardFormatError naming `path`.

    For code that reads an open shard's datasets itself: a damaged file makes h5py raise OSError,
    KeyError, RuntimeError or ValueError with messages that name no file.
    """
    try:
        yield
    except ShardFormatError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ShardFormatError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def open_shard(path: str | Path) -> h5py.File:
    """Open a shard read-only after checking its format and version; the caller closes it.

    ShardFormatError naming the file when it is missing, not HDF5, damaged (e.g. truncated), or of
    another format or version. Reads from the returned handle can still hit damaged data: wrap them
    in :func:`shard_errors` for errors that name the file.
    """
    path = Path(path)
    with shard_errors(path):
        handle = h5py.File(path, "r")
    try:
        with shard_errors(path):
            _check_format(handle, path)
    except ShardFormatError:
        handle.close()
        raise
    return handle


def _header(handle: h5py.File, path: Path) -> ShardHeader:
    """The ShardHeader stored in an open shard's attributes."""
    with shard_errors(path):
        values = {f.name: _attr(handle.attrs, f.name, path) for f in fields(ShardHeader)}
    return ShardHeader(**values)


def read_shard_header(path: str | Path) -> ShardHeader:
    """The header attributes of one shard (format and version checked)."""
    with open_shard(path) as handle:
        return _header(handle, Path(path))


def _row_from_file(path: Path) -> ManifestRow:
    """A manifest row computed from a lone shard file (no checksum)."""
    with open_shard(path) as handle, shard_errors(path):
        epoch = handle["epoch"][:]
    return ManifestRow(path.name, len(epoch), "", tuple(int(e) for e in np.unique(epoch)),
                       int((epoch == -1).sum()))


def _structure(handle: h5py.File, path: Path, row: ManifestRow) -> tuple[ShardHeader, np.ndarray | None, list[str]]:
    """Header, epoch array (None when the layout is broken) and structural problems of an open shard:
    datasets present with the header's shapes and dtypes, counts and epochs agreeing with `row`."""
    header = _header(handle, path)
    with shard_errors(path):
        missing = [name for name in _DATASETS if name not in handle]
        if missing:
            return header, None, [f"missing datasets {missing}"]
        problems = _layout_problems(header, {k: (handle[k].shape, handle[k].dtype) for k in _DATASETS})
        if problems:
            return header, None, problems
        epoch = handle["epoch"][:]
    return header, epoch, _manifest_problems(epoch, row)


def _header_differences(header: ShardHeader, reference: ShardHeader) -> list[str]:
    """`key value != reference value` for each header field that differs."""
    return [f"{k} {v!r} != {getattr(reference, k)!r}" for k, v in asdict(header).items()
            if v != getattr(reference, k)]


def _listing_problems(directory: Path, rows: Sequence[ManifestRow]) -> list[Finding]:
    """Manifest rows against the shard files present: empty, duplicated, unlisted or missing."""
    names = [row.name for row in rows]
    problems = []
    if not rows:
        problems.append(Finding(MANIFEST_NAME, "lists no shards"))
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Finding(name, f"listed more than once in {MANIFEST_NAME}"))
    for path in sorted(directory.glob(_SHARD_GLOB)):
        if path.name not in names:
            problems.append(Finding(path.name, f"present but not listed in {MANIFEST_NAME}"))
    for name in dict.fromkeys(names):
        if not (directory / name).is_file():
            problems.append(Finding(name, f"listed in {MANIFEST_NAME} but missing"))
    return problems


# ---------------------------------------------------------------------------------------------
# verification


def _inspect(path: Path, row: ManifestRow) -> tuple[ShardHeader, list[str]]:
    """Header of one shard and its departures from the format and from its manifest row."""
    with open_shard(path) as handle:
        header, epoch, problems = _structure(handle, path, row)
        if epoch is None:
            return header, problems
        with shard_errors(path):
            problems += _value_problems(handle["landmarks"][:], handle["source_index"][:], epoch,
                                        handle["edited"][:], header.size)
            block = 256
            for start in range(0, len(epoch), block):
                problems += _mask_problems(handle["mask"][start:start + block], epoch[start:start + block], start)
    return header, problems


def _completeness(directory: Path, rows: Sequence[ManifestRow],
                  config: Mapping[str, Any]) -> tuple[list[Finding], Finding | None]:
    """(failures, the `incomplete` finding or None) of the shards listed against run.json's
    ``shards_planned``; nothing when run.json has no such key."""
    planned = config.get("shards_planned")
    if planned is None:
        return [], None
    if not isinstance(planned, int) or isinstance(planned, bool) or planned < 1:
        return [Finding(RUN_CONFIG_NAME, f"shards_planned is {planned!r}, expected a positive integer")], None
    present = {row.name for row in rows if (directory / row.name).is_file()}
    beyond = sorted(name for name in present if int(name[len("shard-"):-len(".h5")]) >= planned)
    failures = [Finding(name, f"beyond the {planned} shards planned in {RUN_CONFIG_NAME} "
                              f"(shards_planned: {shard_name(0)} to {shard_name(planned - 1)})") for name in beyond]
    if len(present) - len(beyond) < planned:
        return failures, Finding(MANIFEST_NAME, f"incomplete: {len(present) - len(beyond)} of {planned} shards "
                                                f"(shards_planned in {RUN_CONFIG_NAME}); rerun the generate "
                                                f"command to finish")
    return failures, None


def verify_shards(directory: str | Path, allow_partial: bool = False) -> VerifyReport:
    """Check every shard of a directory against manifest.csv, run.json and the format guarantees.

    A run.json with ``shards_planned`` makes fewer shards than planned a failure
    (``incomplete: 3 of 16 shards``), or only a warning with ``allow_partial=True``; without that
    key completeness is not judged.
    """
    directory = Path(directory)
    report = VerifyReport(str(directory))
    try:
        rows = read_manifest(directory)
    except ShardFormatError as exc:
        report.failures.append(Finding(MANIFEST_NAME, str(exc)))
        return report

    report.failures += _listing_problems(directory, rows)
    for path in sorted(directory.glob(_TEMPORARY_GLOB)):
        report.warnings.append(Finding(path.name, "temporary file of an interrupted write; safe to delete "
                                                  "(remove_stale_temporaries)"))

    reference: tuple[str, ShardHeader] | None = None
    for row in rows:
        path = directory / row.name
        if not path.is_file():
            continue  # reported by _listing_problems
        digest = sha256_file(path)
        if digest != row.sha256:
            report.failures.append(Finding(row.name, f"sha256 {digest} differs from manifest {row.sha256}"))
        try:
            header, problems = _inspect(path, row)
        except Exception as exc:  # any failure to read is a finding, not a crash
            message = str(exc).removeprefix(f"{path}: ")
            report.failures.append(Finding(row.name, message if isinstance(exc, ShardFormatError)
                                           else f"cannot be read: {exc}"))
            continue
        report.failures += [Finding(row.name, p) for p in problems]
        if reference is None:
            reference = (row.name, header)
        elif diffs := _header_differences(header, reference[1]):
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
        failures, incomplete = _completeness(directory, rows, config)
        report.failures += failures
        if incomplete is not None:
            (report.warnings if allow_partial else report.failures).append(incomplete)
    return report


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a reused id counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | Path, min_age: float = 60.0) -> list[Path]:
    """Delete the ``.shard-*.h5.tmp-PID`` files hard-killed writers left in `directory`; the paths removed.

    A file is stale when its writer's PID runs no process on this machine and it has not been
    modified for `min_age` seconds (a live writer on another machine sharing the directory keeps
    its file fresh: shards are written in one go after inpainting). Call it before resuming.
    """
    removed, now = [], time.time()
    for path in sorted(Path(directory).glob(_TEMPORARY_GLOB)):
        match = _TEMPORARY_NAME.fullmatch(path.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            if now - path.stat().st_mtime < min_age:
                continue
            path.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
        removed.append(path)
    return removed


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
        found_rank, found_world = distributed()
        self.rank = found_rank if rank is None else rank
        self.world_size = found_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
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
