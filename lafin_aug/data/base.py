"""The one reader interface: faces as (uint8 HxWx3 RGB image, float32 [P,2] landmarks, metadata).

A reader declares its faces' landmark schema by name (`schema_name`, see lafin_aug.landmarks), its
splits and the splits a benchmark scores (`test_splits`), and where its files count pixels from
(`origin`: 0 for pixel indices, 1 for the MATLAB/iBUG convention whose top-left pixel is (1, 1)).
Landmarks leave every reader 0-based: the base subtracts `origin` from what `_scan` parsed.
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from lafin_aug.landmarks import LandmarkSchema, get_schema, schema_for
from lafin_aug.registry import Registry

log = logging.getLogger(__name__)

OnError = Literal["skip", "raise"]

#: Landmarks further than this fraction of the image size outside the image are rejected.
OUTSIDE_TOLERANCE = 0.25


class DatasetError(ValueError):
    """A bad record: names the file (and line) and what was expected."""

    def __init__(self, source: str | Path, problem: str, line: int | None = None, reason: str = "invalid"):
        self.source = str(source)
        self.line = line
        self.problem = problem
        self.reason = reason
        where = f"{self.source}:{line}" if line is not None else self.source
        super().__init__(f"{where}: {problem}")


@dataclass
class Face:
    """One annotated face."""

    image: np.ndarray
    landmarks: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    """A parsed annotation whose image has not been read yet."""

    image_path: Path | None
    landmarks: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int | None = None


@dataclass
class SkipLog:
    """Records skipped under the skip policy: counted by reason, every error kept in order."""

    reasons: Counter = field(default_factory=Counter)
    errors: list[DatasetError] = field(default_factory=list)

    def add(self, error: DatasetError) -> None:
        log.warning("skipping record: %s", error)
        self.reasons[error.reason] += 1
        self.errors.append(error)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def by_reason(self) -> str:
        """The counts, most common first: "point_count 3, missing_image 1" ("" when none)."""
        return ", ".join(f"{reason} {count}" for reason, count in self.reasons.most_common())

    def first_sources(self, limit: int) -> list[str]:
        """`file[:line] (reason)` of the first `limit` skipped records, in the order they were met."""
        return [f"{error.source}{'' if error.line is None else f':{error.line}'} ({error.reason})"
                for error in self.errors[:max(limit, 0)]]


def parse_points(values: Sequence[str] | Sequence[float], expected: int | None, source: str | Path,
                 line: int | None = None) -> np.ndarray:
    """Flat x,y values -> float32 [P,2]; DatasetError on a wrong count or a non-finite value.

    Values are numbers or number strings; booleans (a Python bool is an int) are not numbers here.
    """
    try:
        if any(isinstance(v, (bool, np.bool_)) for v in values):
            raise TypeError("a boolean is not a coordinate")
        flat = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(source, f"non-numeric landmark value ({exc})", line, "non_numeric") from None
    if flat.size % 2:
        raise DatasetError(source, f"odd number of landmark values ({flat.size})", line, "point_count")
    points = flat.reshape(-1, 2)
    if expected is not None and len(points) != expected:
        raise DatasetError(source, f"expected {expected} points, found {len(points)}", line, "point_count")
    if not np.all(np.isfinite(points)):
        raise DatasetError(source, "landmarks contain NaN or infinite values", line, "non_finite")
    return points.astype(np.float32)


def outside_root(root: str | Path, path: str | Path) -> Path | None:
    """Where `path` really is when, with every link followed, it lies outside root's real path; else None."""
    real = Path(os.path.realpath(path))
    return None if real.is_relative_to(os.path.realpath(root)) else real


def resolve_inside(root: Path, name: str, source: str | Path, line: int | None = None) -> Path:
    """root/name, refusing names that escape root: absolute paths, `..`, or links to a file outside it.

    The check is made on real paths (links of root and name followed), so a link inside root to
    another file inside root is fine. The path is returned as named (`root/name`), which opens the
    file that was checked.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise DatasetError(source, f"bad image name {name!r}", line, "malformed")
    root_abs = Path(os.path.abspath(root))
    path = root_abs / name
    if not Path(os.path.normpath(path)).is_relative_to(root_abs):
        raise DatasetError(source, f"image name {name!r} escapes the dataset root {root}", line, "path_escape")
    real = outside_root(root_abs, path)
    if real is not None:
        raise DatasetError(source, f"image {name!r} is a link to {real}, outside the dataset root {root}", line,
                           "path_escape")
    if not path.is_file():
        raise DatasetError(source, f"image {path} does not exist", line, "missing_image")
    return path


def read_image(path: Path, source: str | Path | None = None, line: int | None = None) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB; DatasetError if it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise DatasetError(source or path, f"cannot read image {path}", line, "unreadable_image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_inside_image(landmarks: np.ndarray, shape: tuple[int, ...], source: str | Path,
                       line: int | None = None) -> None:
    """DatasetError if any landmark lies far outside an image of this shape."""
    height, width = shape[:2]
    margin = OUTSIDE_TOLERANCE * max(height, width)
    x, y = landmarks[:, 0], landmarks[:, 1]
    if (x.min() < -margin or y.min() < -margin or x.max() > width - 1 + margin
            or y.max() > height - 1 + margin):
        raise DatasetError(
            source,
            f"landmarks far outside the {width}x{height} image "
            f"(x in [{x.min():.1f}, {x.max():.1f}], y in [{y.min():.1f}, {y.max():.1f}])",
            line, "outside_image")


class FaceReader(Sequence[Face], ABC):
    """A landmark dataset: a sequence of faces in a fixed order (the order shards refer to).

    Annotations are parsed when the reader is made; images are read on access. Under
    ``on_error="skip"`` bad records are logged, counted in ``skipped`` and left out; under
    ``"raise"`` the first one raises :class:`DatasetError`.
    """

    kind: str = ""
    splits: tuple[str, ...] = ("train",)
    #: the splits a benchmark scores on, in table order (empty: just the split it is given)
    test_splits: tuple[str, ...] = ()
    #: name of the faces' landmark schema; None: the registered schema with `points` points, if any
    schema_name: str | None = None
    #: where the files count pixels from by default (0 or 1); a reader with an `origin` option passes it on
    origin: int = 0

    def __init__(self, root: str | Path | None, split: str = "train", on_error: OnError = "skip",
                 origin: int | None = None):
        if split not in self.splits:
            raise ValueError(f"{self.kind}: unknown split {split!r} (known: {', '.join(self.splits)})")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        if origin is not None and (isinstance(origin, bool) or origin not in (0, 1)):
            raise ValueError(f"{self.kind}: origin must be 0 (pixel indices) or 1 (MATLAB/iBUG), not {origin!r}")
        self.origin = type(self).origin if origin is None else int(origin)
        self.root = Path(root) if root is not None else None
        self.split = split
        self.on_error = on_error
        self.skipped = SkipLog()
        self.records: list[Record] = []
        self._sizes: list[tuple[int, int]] | None = None
        for item in self._scan():
            if isinstance(item, DatasetError):
                self.reject(item)
            else:
                if self.origin:
                    item.landmarks = item.landmarks - np.float32(self.origin)
                self.records.append(item)

    @property
    def points(self) -> int:
        """Landmarks per face: the schema's count (a reader without `schema_name` overrides this)."""
        if self.schema_name is None:
            raise NotImplementedError(f"{type(self).__name__} names no schema_name, so it must define points")
        return get_schema(self.schema_name).num_points

    @property
    def schema(self) -> LandmarkSchema | None:
        """The faces' landmark schema: `schema_name`'s, else the one registered with `points` points (None if none)."""
        if self.schema_name is not None:
            return get_schema(self.schema_name)
        try:
            return schema_for(self.points)
        except ValueError:
            return None

    @abstractmethod
    def _scan(self) -> Iterator[Record | DatasetError]:
        """Parse the annotations: yield a Record per good face and a DatasetError per bad one."""

    def reject(self, error: DatasetError) -> None:
        """Apply the on_error policy to a bad record: raise it, or log and count it."""
        if self.on_error == "raise":
            raise error
        self.skipped.add(error)

    def _load_image(self, record: Record) -> np.ndarray:
        assert record.image_path is not None
        return read_image(record.image_path, record.source or record.image_path, record.line)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Face:  # type: ignore[override]
        record = self.records[index]
        image = self._load_image(record)
        check_inside_image(record.landmarks, image.shape, record.source or record.image_path, record.line)
        meta = dict(record.meta, index=index, source=record.source, image_path=str(record.image_path or ""))
        return Face(image, record.landmarks.copy(), meta)

    def validate(self, progress: bool = True) -> list[tuple[int, int]]:
        """Read every image once, drop (or raise on) records whose image or landmarks are bad.

        Returns the (height, width) of each kept face's image; a second call reads nothing.
        """
        if self._sizes is not None:
            return self._sizes
        kept: list[Record] = []
        sizes: list[tuple[int, int]] = []
        for index in tqdm(range(len(self.records)), desc=f"checking {self.kind}", unit="face",
                          disable=not progress, leave=False):
            try:
                image = self[index].image
            except DatasetError as error:
                self.reject(error)
                continue
            kept.append(self.records[index])
            sizes.append(image.shape[:2])
        self.records = kept
        self._sizes = sizes
        return sizes

    def __iter__(self) -> Iterator[Face]:
        for index in range(len(self.records)):
            try:
                yield self[index]
            except DatasetError as error:
                self.reject(error)

    def describe(self) -> dict[str, Any]:
        """Counts for `lafin-aug stats`: faces, points, schema, origin, skipped (by reason), image size range.

        When no face is usable the dict also holds "warning", a one-line str that says so and why
        (see :meth:`skipped_summary`); the key is absent otherwise.
        """
        sizes = self.validate()
        heights = [h for h, _ in sizes]
        widths = [w for _, w in sizes]
        summary = {
            "dataset": self.kind,
            "root": str(self.root) if self.root is not None else None,
            "split": self.split,
            "faces": len(self),
            "points": self.points,
            "schema": self.schema.name if self.schema is not None else None,
            "origin": self.origin,
            "skipped": self.skipped.total,
            "skipped_by_reason": dict(self.skipped.reasons),
            "height": [min(heights), max(heights)] if sizes else None,
            "width": [min(widths), max(widths)] if sizes else None,
        }
        if not len(self):
            where = f" under {self.root}" if self.root is not None else ""
            why = (f": {self.skipped.total} skipped ({self.skipped.by_reason()}; first: "
                   f"{', '.join(self.skipped.first_sources(3))})" if self.skipped.total else ": no records found")
            summary["warning"] = _one_line(f"no usable faces{where} ({self.kind}, split {self.split}){why}")
        return summary

    def skipped_summary(self, limit: int = 5) -> str:
        """One line on the records skipped so far, "" when none: the count by reason and the first `limit` sources.

        E.g. "skipped 3 records under data/wild: point_count 2, missing_image 1; first: a.pts:71
        (point_count), b.pts (missing_image), c.pts:40 (point_count)". Records dropped by
        :meth:`validate` or while iterating count once they have been met.
        """
        skipped = self.skipped
        if not skipped.total:
            return ""
        where = f" under {self.root}" if self.root is not None else ""
        first = skipped.first_sources(limit)
        more = f" (+{skipped.total - len(first)} more)" if skipped.total > len(first) else ""
        listed = f"; first: {', '.join(first)}{more}" if first else ""
        records = "record" if skipped.total == 1 else "records"
        return _one_line(f"skipped {skipped.total} {records}{where}: {skipped.by_reason()}{listed}")


def _one_line(text: str) -> str:
    """`text` with line breaks (from file names or quoted values) folded into spaces."""
    return " ".join(text.splitlines())


#: dataset kind -> reader class; each reader module registers its class with `register_reader`
READERS: Registry[type[FaceReader]] = Registry("dataset kind")


def register_reader(cls: type[FaceReader]) -> type[FaceReader]:
    """Class decorator: make the reader openable as `--dataset cls.kind`."""
    return READERS.add(cls.kind, cls)
