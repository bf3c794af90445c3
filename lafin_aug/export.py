"""Export augmented shards (or any dataset) as COCO keypoints (as mmpose reads them) or 300-W `.pts` files.

``export_pairs(source, to, out)`` reads a shard directory (through :class:`AugmentedShards`, so every
check and checksum applies) or a :class:`DatasetSpec`, and writes the faces so that our own readers
(``open_dataset("coco", out / "annotations.json")``, ``open_dataset("pts", out)``) give back the same
images and landmarks.

Layouts
-------
``to="coco"``: ``out/images/<name>.png`` (or ``.jpg``), ``out/annotations.json`` with ``images``
(file_name relative to the JSON, width, height, id), ``annotations`` (keypoints as x, y, v triples,
v = 2; num_keypoints; bbox [x, y, w, h] of the landmarks; area = w * h; iscrowd 0; image_id;
category_id 1; id) and one category ``face`` with keypoint names (``jaw_0``, ``brow_left_0``, ...,
from the schema's groups) and a skeleton (1-based index pairs, COCO's convention) from the schema's
boundary polylines. Annotations of shard records also carry ``epoch`` (-1 = the real crop),
``source_index``, ``edited`` and ``mask_file`` (``masks/<name>.png``, null for real records).

``to="pts"``: ``out/<name>.png`` + ``out/<name>.pts`` (``version: 1``, ``n_points: P``, ``{``, one
``x y`` line a point, ``}``), and ``out/masks/<name>.png`` for generated records.

Masks are single-channel PNGs holding 255 where the shard mask is 1 (inpainted) and 0 elsewhere.
Shard record names say what they are: ``000007-face000002-epoch1`` (``-real`` for the real crop,
``-edited`` appended when the landmarks were edited); dataset faces are named by their position.

Coordinates
-----------
Our landmarks are pixel-index coordinates (the centre of pixel column x is x). The coco reader and
the pts reader both take the file's values as they stand (0-based pixel indices, no +-0.5 or
1-based shift; mmpose's COCO conversions of 300-W/WFLW carry the annotation values unchanged), so
the inverse written here is the identity: each float32 coordinate is written as the shortest
decimal that parses back (through float64, as the readers parse) to the same float32.

Writing
-------
Every file goes to a temporary name and is renamed when complete; ``annotations.json`` is written
after every image, and ``out/export.json`` (the marker: source, options, counts) first as
incomplete and last as complete. A non-empty ``out`` is refused unless its marker names the same
source; exporting again there rewrites the files and deletes those of the earlier export that
this one did not write (e.g. the real crops after ``include_real=False``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lafin_aug.config import Config
from lafin_aug.data.base import FaceReader
from lafin_aug.data.spec import DatasetSpec, open_reader
from lafin_aug.images import save_image, to_uint8
from lafin_aug.io import write_bytes, write_json
from lafin_aug.landmarks import schema_for
from lafin_aug.shards import AugmentedShards

TARGETS = ("coco", "pts")
IMAGE_FORMATS = ("png", "jpg")
ANNOTATIONS_NAME = "annotations.json"
MARKER_NAME = "export.json"
MARKER_FORMAT = "lafin-aug-export"
MARKER_VERSION = 1

#: Files an export writes (relative to `out`), and temporaries of an interrupted one: what a new
#: export of the same source may delete when it did not write them again.
_OWN_FILES = re.compile(r"(?:(?:images|masks)/)?(?:\d{6,}[\w-]*\.(?:png|jpg|pts)|\.[^/]+\.tmp-\d+)"
                        rf"|{re.escape(ANNOTATIONS_NAME)}")


class ExportError(ValueError):
    """An export that cannot start: the output folder belongs to something else."""


@dataclass(frozen=True)
class ExportConfig(Config):
    """How to export: target layout, image file format, whether shard exports keep the real crops."""

    to: str = "coco"
    image_format: str = "png"
    include_real: bool = True
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise ValueError(f"unknown export target {self.to!r} (known: {', '.join(TARGETS)})")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"unknown image format {self.image_format!r} (known: {', '.join(IMAGE_FORMATS)})")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 0..100, not {self.jpeg_quality}")


@dataclass
class ExportSummary:
    """What an export wrote."""

    out: Path
    to: str
    records: int = 0
    real: int = 0
    generated: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        skipped = f", {self.skipped} bad dataset records skipped" if self.skipped else ""
        return (f"exported {self.records} records ({self.real} real, {self.generated} generated{skipped}) "
                f"as {self.to} to {self.out}")


@dataclass
class _Item:
    """One face to write: `extra` (epoch, source_index, edited) and `mask` for shard records only."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    extra: dict[str, Any] | None = None
    mask: np.ndarray | None = None
    image_key: str | None = None  # faces with the same key share one image (COCO)


@dataclass
class _Source:
    """What is exported: its identity (stored in the marker), size, point count and faces."""

    identity: dict[str, Any]
    total: int
    points: int
    items: Iterator[_Item]
    reader: FaceReader | None = None


# ---------------------------------------------------------------------------------------------
# sources


def _shard_source(path: Path, include_real: bool) -> _Source:
    """The records of a shard directory (or one shard file) in file order; checked when opened."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such shard directory or shard file")
    shards = AugmentedShards(path, shuffle=False, include_real=include_real, rank=0, world_size=1)

    def items() -> Iterator[_Item]:
        for number, record in enumerate(shards):
            epoch, source_index, edited = int(record["epoch"]), int(record["source_index"]), bool(record["edited"])
            name = (f"{number:06d}-face{source_index:06d}-{'real' if epoch == -1 else f'epoch{epoch}'}"
                    f"{'-edited' if edited else ''}")
            yield _Item(name, to_uint8(record["image"][None])[0], record["landmarks"].numpy(),
                        {"epoch": epoch, "source_index": source_index, "edited": edited},
                        None if epoch == -1 else record["mask"][0].numpy())

    return _Source({"shards": str(path.resolve())}, len(shards), shards.header.points, items())


def _dataset_source(spec: DatasetSpec) -> _Source:
    """The faces of a dataset in the reader's order; bad records are skipped and counted."""
    reader = open_reader(spec, on_error="skip")
    identity = {"dataset": spec.dataset, "root": None if spec.root is None else str(Path(spec.root).resolve()),
                "split": spec.split, **spec.options()}

    def items() -> Iterator[_Item]:
        for number, face in enumerate(reader):
            yield _Item(f"{number:06d}", face.image, face.landmarks, image_key=face.meta.get("image_path") or None)

    return _Source(identity, len(reader), reader.points, items(), reader)


def _describe(identity: dict[str, Any]) -> str:
    """A source identity as a person would name it."""
    if "shards" in identity:
        return f"the shards {identity['shards']}"
    if "dataset" in identity:
        details = ", ".join(f"{key} {identity[key]}" for key in ("root", "split", "count", "seed")
                            if identity.get(key) is not None)
        return f"the {identity['dataset']} dataset ({details})"
    return "an unknown source"


# ---------------------------------------------------------------------------------------------
# files


def decimal(value: float | np.floating) -> str:
    """The shortest decimal text that reads back (via float64, as our readers parse) as this float32."""
    exact = np.float32(value)
    text = np.format_float_positional(exact, unique=True, trim="-")
    if np.float32(float(text)) != exact:  # a float32-shortest text the float64 detour rounds away
        text = np.format_float_positional(np.float64(exact), unique=True, trim="-")
    return text


def pts_text(landmarks: np.ndarray) -> str:
    """A 300-W `.pts` file of [P,2] landmarks, coordinates as given (0-based pixel indices)."""
    lines = [f"{decimal(x)} {decimal(y)}" for x, y in np.asarray(landmarks, np.float32)]
    return "\n".join(["version: 1", f"n_points: {len(lines)}", "{", *lines, "}"]) + "\n"


def coco_category(points: int) -> dict[str, Any]:
    """The mmpose-style face category: keypoint names from the schema's groups, a 1-based skeleton from
    its boundary polylines (``kp_<i>`` names and no skeleton for a point count without a schema)."""
    try:
        schema = schema_for(points)
    except ValueError:
        return {"id": 1, "name": "face", "supercategory": "person",
                "keypoints": [f"kp_{i}" for i in range(points)], "skeleton": []}
    names = [f"kp_{i}" for i in range(points)]
    for group, indices in schema.groups.items():
        for position, index in enumerate(indices):
            names[index] = f"{group}_{position}"
    edges: dict[frozenset[int], list[int]] = {}
    for line in schema.boundaries.values():
        for a, b in zip(line, line[1:]):
            edges.setdefault(frozenset((a, b)), [a + 1, b + 1])
    return {"id": 1, "name": "face", "supercategory": "person", "keypoints": names, "skeleton": list(edges.values())}


def _landmark_box(landmarks: np.ndarray) -> tuple[list[float], float]:
    """COCO bbox [x, y, w, h] around the landmarks, and its area w * h."""
    low, high = landmarks.min(axis=0).astype(np.float64), landmarks.max(axis=0).astype(np.float64)
    width, height = round(high[0] - low[0], 4), round(high[1] - low[1], 4)
    return [float(decimal(low[0])), float(decimal(low[1])), width, height], round(width * height, 4)


# ---------------------------------------------------------------------------------------------
# writers


@dataclass
class _Writer:
    """Writes items under `out`, remembering every file (relative posix path) it wrote."""

    out: Path
    config: ExportConfig
    points: int
    written: set[str] = field(default_factory=set)

    def _file(self, relative: str, image: np.ndarray) -> str:
        save_image(self.out / relative, image, self.config.jpeg_quality)
        self.written.add(relative)
        return relative

    def _mask(self, item: _Item) -> str | None:
        """The mask PNG of a generated record (None for real records and dataset faces)."""
        if item.mask is None:
            return None
        return self._file(f"masks/{item.name}.png", (item.mask * 255).astype(np.uint8))

    def add(self, item: _Item) -> None:
        raise NotImplementedError

    def finish(self, description: str) -> None:
        """Write what comes after the images."""


@dataclass
class _CocoWriter(_Writer):
    """COCO keypoints: images under images/, masks under masks/, annotations.json last."""

    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    image_ids: dict[str, int] = field(default_factory=dict)

    def _image_id(self, item: _Item) -> int:
        """The id of the item's image, written on its first face."""
        if item.image_key is not None and item.image_key in self.image_ids:
            return self.image_ids[item.image_key]
        file_name = self._file(f"images/{item.name}.{self.config.image_format}", item.image)
        image_id = len(self.images) + 1
        height, width = item.image.shape[:2]
        self.images.append({"file_name": file_name, "width": width, "height": height, "id": image_id})
        if item.image_key is not None:
            self.image_ids[item.image_key] = image_id
        return image_id

    def add(self, item: _Item) -> None:
        keypoints: list[float] = []
        for x, y in item.landmarks:
            keypoints += [float(decimal(x)), float(decimal(y)), 2]
        bbox, area = _landmark_box(item.landmarks)
        annotation = {"id": len(self.annotations) + 1, "image_id": self._image_id(item), "category_id": 1,
                      "keypoints": keypoints, "num_keypoints": len(item.landmarks), "bbox": bbox, "area": area,
                      "iscrowd": 0}
        if item.extra is not None:
            annotation.update(item.extra, mask_file=self._mask(item))
        self.annotations.append(annotation)

    def finish(self, description: str) -> None:
        document = {"info": {"description": description}, "images": self.images, "annotations": self.annotations,
                    "categories": [coco_category(self.points)]}
        write_bytes(self.out / ANNOTATIONS_NAME, json.dumps(document, separators=(",", ":")).encode() + b"\n")
        self.written.add(ANNOTATIONS_NAME)


@dataclass
class _PtsWriter(_Writer):
    """300-W layout: <name>.png and <name>.pts side by side, masks under masks/."""

    def add(self, item: _Item) -> None:
        self._file(f"{item.name}.{self.config.image_format}", item.image)
        write_bytes(self.out / f"{item.name}.pts", pts_text(item.landmarks).encode())
        self.written.add(f"{item.name}.pts")
        self._mask(item)


# ---------------------------------------------------------------------------------------------
# the output folder


def _read_marker(out: Path) -> dict[str, Any] | None:
    """The export marker of `out`, or None when there is none (or it is not ours)."""
    try:
        marker = json.loads((out / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else None


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Refuse an `out` that holds anything but an export of this source; mark it as an (incomplete) export."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder; choose a new or empty --out")
    if out.is_dir() and any(out.iterdir()):
        marker = _read_marker(out)
        if marker is None:
            raise ExportError(f"{out}: not empty and not a lafin-aug export (no {MARKER_NAME}); "
                              "choose a new or empty --out")
        if marker.get("source") != identity:
            raise ExportError(f"{out}: holds an export of {_describe(marker.get('source') or {})}, not of "
                              f"{_describe(identity)}; choose another --out")
    write_json(out / MARKER_NAME, {"format": MARKER_FORMAT, "version": MARKER_VERSION, "source": identity,
                                   "complete": False})


def _remove_stale(out: Path, written: set[str]) -> None:
    """Delete the files of an earlier export of this source that this one did not write again."""
    for path in sorted(out.rglob("*"), reverse=True):
        relative = path.relative_to(out).as_posix()
        if path.is_file() and relative not in written and _OWN_FILES.fullmatch(relative):
            path.unlink()
    for folder in ("images", "masks"):
        if (out / folder).is_dir() and not any((out / folder).iterdir()):
            (out / folder).rmdir()


# ---------------------------------------------------------------------------------------------
# the entry point


def export_pairs(source: str | Path | DatasetSpec, to: str, out: str | Path, *, image_format: str = "png",
                 include_real: bool = True, jpeg_quality: int = 95, progress: bool = True) -> ExportSummary:
    """Export a shard directory (or shard file) or a dataset (`source` a DatasetSpec) as `to`
    ("coco" or "pts") into the folder `out`; see the module docstring for layouts and conventions.

    `include_real` (shard sources): also export the real crops (epoch -1). Raises ShardFormatError
    naming the shard for a damaged shard directory (before anything is written when the damage is
    structural), ExportError for an `out` that holds something else, ValueError for bad options.
    """
    config = ExportConfig(to=to, image_format=image_format, include_real=include_real, jpeg_quality=jpeg_quality)
    out = Path(out)
    found = (_dataset_source(source) if isinstance(source, DatasetSpec)
             else _shard_source(Path(source), config.include_real))
    identity = json.loads(json.dumps(found.identity))  # as the marker stores it
    _claim(out, identity)
    writer = (_CocoWriter if config.to == "coco" else _PtsWriter)(out, config, found.points)
    summary = ExportSummary(out, config.to)
    for item in tqdm(found.items, total=found.total, desc=f"export {config.to}", unit="record",
                     disable=not progress):
        writer.add(item)
        summary.records += 1
        generated = item.extra is not None and item.extra["epoch"] != -1
        summary.generated += generated
        summary.real += not generated
    summary.skipped = found.reader.skipped.total if found.reader is not None else 0
    writer.finish(f"lafin-aug export of {_describe(identity)}")
    _remove_stale(out, writer.written | {MARKER_NAME})
    write_json(out / MARKER_NAME, {"format": MARKER_FORMAT, "version": MARKER_VERSION, "source": identity,
                                   "complete": True, "config": config.to_dict(), "records": summary.records,
                                   "real": summary.real, "generated": summary.generated,
                                   "skipped": summary.skipped})
    return summary
