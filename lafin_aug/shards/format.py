"""The augmented-record shard format (version 1): constants, header and manifest row, writing a
shard, the manifest and run config, opening a shard and reading its header, and the record checks
the writer and both readers (:mod:`lafin_aug.shards.verify`, :mod:`lafin_aug.shards.dataset`) share.

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
"""
from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lafin_aug.data.base import OUTSIDE_TOLERANCE
from lafin_aug.io import atomic_path, sha256_file

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
