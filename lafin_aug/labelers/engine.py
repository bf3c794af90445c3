"""`label_images`: 68 landmarks for every face in a folder of images, written as a dataset our readers read.

Output folder ``out``
---------------------
Per kept face, ``<relative image path>.face<k>.<ext>`` beside ``<relative image path>.face<k>.pts``
(300-W format, 0-based pixel-index coordinates of that image file), mirroring the input tree.
``<ext>`` is the source's own suffix for a byte copy of a jpg/jpeg/png/bmp source, ``png`` for a
crop (``crop=True``: LaFIn's ``crop_face`` at ``size``) or a re-encoded webp (which the pts reader
does not list). So ``open_dataset("pts", out)`` reads the kept faces, and
``open_dataset("coco", out / "labels.json")`` reads the same faces from one COCO-keypoint file
(``bbox`` is the detector's box mapped into the written image and clipped to it; each annotation
also carries ``score``, ``source_image`` and ``face``).

``label.csv`` has one row per detected face, or one per image without a face (``no_face``) or
that could not be read (``bad_image``: ``empty_file``, ``not_an_image``, ``unreadable``):
source image (relative to the images folder), its sha256, detections in it, face index, status
(kept/rejected/no_face/bad_image), reason (``low_score``, ``small_face``, ``outside_image``,
``degenerate_landmarks``), detector score, box x0 y0 x1 y1 in the source, labeler, detector, the
written image file, its width and height, and the affine from source to written coordinates.

Resuming
--------
Every file is written to a temporary name and renamed; an image's rows are appended to
``label.csv`` in one write after its files. A rerun with ``resume=True`` skips every image whose
rows are all in ``label.csv`` (a torn last line is dropped), refuses a folder labelled with other
settings, and rewrites ``labels.json`` from ``label.csv`` and the ``.pts`` files. ``run.json``
holds the settings and the last summary.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm import tqdm

from lafin_aug.config import Config
from lafin_aug.data.crop import apply_affine, crop_face
from lafin_aug.data.pts import IMAGE_SUFFIXES as PTS_IMAGE_SUFFIXES
from lafin_aug.data.pts import read_pts
from lafin_aug.export import coco_category, decimal, pts_text
from lafin_aug.images import encode_image
from lafin_aug.io import atomic_path, write_bytes, write_json
from lafin_aug.runtime import resolve_device

from .base import (
    DEFAULT_DETECTOR,
    FACE_DETECTORS,
    LABELERS,
    BackendOptions,
    FaceDetector,
    Labeler,
    LabelError,
    require_weights,
)
from .dlib_backend import import_dlib, predictor_path
from .fan_backend import weights_needed

#: image files looked for under the images folder (suffix compared lower-case)
IMAGE_SUFFIXES = (*PTS_IMAGE_SUFFIXES, ".webp")
CSV_NAME = "label.csv"
COCO_NAME = "labels.json"
MARKER_NAME = "run.json"
MARKER_FORMAT = "lafin-aug-label"
MARKER_VERSION = 1
COLUMNS = ("image", "sha256", "faces", "face", "status", "reason", "score", "x0", "y0", "x1", "y1", "labeler",
           "detector", "file", "width", "height", "affine")
Row = dict[str, str]


@dataclass(frozen=True)
class LabelConfig(Config):
    """How to label: labeler and detector (None: the labeler's own), filters, output form, workers, weights."""

    labeler: str = "fan"
    detector: str | None = None
    min_score: float | None = None
    min_face: int = 40
    crop: bool = False
    size: int = 256
    workers: int = 1
    device: str = "auto"
    fan_weights: str | None = None
    detector_weights: str | None = None

    def __post_init__(self) -> None:
        LABELERS.get(self.labeler)
        FACE_DETECTORS.get(self.face_detector)
        if self.size < 16:
            raise ValueError(f"size must be at least 16 px, not {self.size}")
        if self.min_face < 0 or self.workers < 1:
            raise ValueError(f"min_face must be >= 0 and workers >= 1 (got {self.min_face}, {self.workers})")

    @property
    def face_detector(self) -> str:
        """The detector's name: as given, else the labeler's default (fan: sfd, dlib: dlib)."""
        return self.detector or DEFAULT_DETECTOR.get(self.labeler, "dlib")

    def identity(self) -> dict[str, Any]:
        """The settings that decide what is written: a resumed labelling must keep them."""
        return {"labeler": self.labeler, "detector": self.face_detector, "min_score": self.min_score,
                "min_face": self.min_face, "crop": self.crop, "size": self.size if self.crop else None}

    def backend_options(self) -> BackendOptions:
        return BackendOptions(resolve_device(self.device), self.fan_weights, self.detector_weights, self.min_face,
                              self.min_score)


@dataclass
class LabelSummary:
    """What a labelling holds (whole folder) and what this run did."""

    out: Path
    images: int = 0
    labelled: int = 0
    already_done: int = 0
    kept: int = 0
    kept_now: int = 0
    no_face: int = 0
    rejected: Counter = field(default_factory=Counter)
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = self.labelled / self.seconds if self.seconds else 0.0
        rejected = sum(self.rejected.values())
        reasons = ", ".join(f"{reason} {count}" for reason, count in self.rejected.most_common())
        bad = "; ".join(f"{name} ({reason})" for name, reason in self.bad[:10])
        more = f" and {len(self.bad) - 10} more" if len(self.bad) > 10 else ""
        return (f"{self.out}: labelled {self.labelled} images in {self.seconds:.1f} s ({rate:.2f} images/s, "
                f"{self.kept_now} faces kept), {self.already_done} already done; in all {self.kept} faces kept, "
                f"{rejected} rejected{f' ({reasons})' if reasons else ''}, {self.no_face} images without a face, "
                f"{len(self.bad)} bad images{f': {bad}{more}' if bad else ''}")

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "labelled": self.labelled, "already_done": self.already_done,
                "kept": self.kept, "no_face": self.no_face, "rejected": dict(self.rejected),
                "bad_images": [{"image": name, "reason": reason} for name, reason in self.bad],
                "seconds": round(self.seconds, 3)}


# ---------------------------------------------------------------------------------------------
# finding and labelling one image


def find_images(root: Path, exclude: Path | None = None) -> list[str]:
    """Relative posix paths of every image file under `root` (any nesting, sorted), none inside `exclude`."""
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for path in root.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        found.append(path.relative_to(root).as_posix())
    return sorted(found)


_BACKENDS: dict[tuple[str, str, BackendOptions], tuple[FaceDetector, Labeler]] = {}


def backends(config: LabelConfig) -> tuple[FaceDetector, Labeler]:
    """The detector and labeler of `config`, built once per process."""
    key = (config.labeler, config.face_detector, config.backend_options())
    if key not in _BACKENDS:
        _BACKENDS[key] = (FACE_DETECTORS.get(key[1])(key[2]), LABELERS.get(key[0])(key[2]))
    return _BACKENDS[key]


def preflight(config: LabelConfig) -> None:
    """Fail before any work: one LabelError when packages or weight files are missing, a CheckpointError
    naming the file when one is unreadable or of another network (the backends are built here)."""
    options = config.backend_options()
    require_weights(weights_needed(config.labeler, config.face_detector, options))
    if "dlib" in (config.labeler, config.face_detector):
        import_dlib()
    if config.labeler == "dlib":
        predictor_path()
    backends(config)


def _decode(data: bytes) -> np.ndarray | None:
    """uint8 RGB pixels of encoded image bytes (as our readers decode them), None when not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _number(value: float) -> str:
    return format(float(value), ".6g")


def _write_face(out: Path, relative: str, index: int, image: np.ndarray, data: bytes, landmarks: np.ndarray,
                config: LabelConfig) -> Row:
    """Write one kept face (image, then .pts); the csv fields that say what was written.

    ValueError (from the crop) when the landmarks span no area.
    """
    base = f"{relative}.face{index}"
    if config.crop:
        cropped = crop_face(image, landmarks, config.size)
        name, payload, points, affine = f"{base}.png", encode_image(cropped.image), cropped.landmarks, cropped.affine
        height, width = cropped.image.shape[:2]
    else:
        suffix = Path(relative).suffix
        copy = suffix.lower() in PTS_IMAGE_SUFFIXES
        name, payload = (f"{base}{suffix}", data) if copy else (f"{base}.png", encode_image(image))
        points, affine = landmarks, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        height, width = image.shape[:2]
    write_bytes(out / name, payload)
    write_bytes(out / f"{base}.pts", pts_text(points).encode())
    return {"file": name, "width": str(width), "height": str(height),
            "affine": " ".join(_number(v) for v in np.asarray(affine).reshape(-1))}


def label_image(root: Path, relative: str, out: Path, config: LabelConfig, threads: int | None = None) -> list[Row]:
    """Detect, label, filter and write the faces of one image; its label.csv rows (never raises for a bad image)."""
    if threads:
        torch.set_num_threads(threads)
    common = {"image": relative, "labeler": config.labeler, "detector": config.face_detector}
    try:
        data = (root / relative).read_bytes()
    except OSError as exc:
        return [{**common, "faces": "0", "status": "bad_image", "reason": f"unreadable: {exc.strerror or exc}"}]
    common["sha256"] = hashlib.sha256(data).hexdigest()
    image = _decode(data)
    if image is None:
        return [{**common, "faces": "0", "status": "bad_image", "reason": "not_an_image" if data else "empty_file"}]
    detector, labeler = backends(config)
    detections = sorted(detector.detect(image), key=lambda d: -d.score)
    if not detections:
        return [{**common, "faces": "0", "status": "no_face"}]
    rows: list[Row] = []
    for index, detection in enumerate(detections):
        reason = ("low_score" if config.min_score is not None and detection.score < config.min_score
                  else "small_face" if detection.side < config.min_face else "")
        rows.append({**common, "faces": str(len(detections)), "face": str(index), "reason": reason,
                     "status": "rejected" if reason else "", "score": _number(detection.score),
                     **dict(zip(("x0", "y0", "x1", "y1"), (_number(v) for v in detection.box)))})
    todo = [number for number, row in enumerate(rows) if not row["reason"]]
    predicted = labeler.landmarks(image, [detections[number].box for number in todo])
    height, width = image.shape[:2]
    for number, landmarks in zip(todo, predicted):
        row = rows[number]
        if (landmarks.min() < 0 or landmarks[:, 0].max() > width - 1 or landmarks[:, 1].max() > height - 1
                or not np.isfinite(landmarks).all()):
            row.update(status="rejected", reason="outside_image")
            continue
        try:
            row.update(_write_face(out, relative, number, image, data, landmarks, config), status="kept")
        except ValueError:
            row.update(status="rejected", reason="degenerate_landmarks")
    return rows


# ---------------------------------------------------------------------------------------------
# label.csv and the output folder


def _csv_text(rows: Iterable[Row], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_label_csv(path: Path) -> dict[str, list[Row]]:
    """The complete images of a label.csv (image -> rows, in file order).

    A torn last line and the rows of an image whose rows are not all there are dropped, and the
    file is rewritten without them. LabelError for a file that is not a label.csv.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    complete = text[:text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete))
    if complete and tuple(reader.fieldnames or ()) != COLUMNS:
        raise LabelError(f"{path}: not a lafin-aug label.csv (columns {reader.fieldnames}, expected {list(COLUMNS)})")
    groups: dict[str, list[Row]] = {}
    for row in reader:
        groups.setdefault(row["image"], []).append(row)
    done = {image: rows for image, rows in groups.items() if len(rows) == max(1, int(rows[0]["faces"] or 0))}
    if complete != text or len(done) != len(groups) or not complete:
        with atomic_path(path) as tmp:
            tmp.write_text(_csv_text((row for rows in done.values() for row in rows), header=True), encoding="utf-8")
    return done


def _claim(out: Path, root: Path, config: LabelConfig, resume: bool) -> dict[str, list[Row]]:
    """Mark `out` as this labelling (or check that it is one, with `resume`); the images already done."""
    identity = {"images": str(root.resolve()), **config.identity()}
    if out.exists() and not out.is_dir():
        raise LabelError(f"{out}: exists and is not a folder; choose a new or empty --out")
    try:
        marker = json.loads((out / MARKER_NAME).read_text())
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        if out.is_dir() and any(out.iterdir()):
            raise LabelError(f"{out}: not empty and not a lafin-aug labelling (no {MARKER_NAME}); "
                             "choose a new or empty --out")
        marker = None
    elif not resume:
        raise LabelError(f"{out}: already holds a labelling of {marker.get('identity', {}).get('images')}; "
                         "pass --resume to continue it, or choose a new --out")
    elif marker.get("identity") != identity:
        old = marker.get("identity") or {}
        changed = ", ".join(f"{key} {old.get(key)!r} -> {value!r}" for key, value in identity.items()
                            if old.get(key) != value)
        raise LabelError(f"{out}: was labelled with other settings ({changed}); resume with the same settings "
                         "or choose a new --out")
    write_json(out / MARKER_NAME, {"format": MARKER_FORMAT, "version": MARKER_VERSION, "identity": identity,
                                   "config": config.to_dict(), "complete": False,
                                   **({"summary": marker["summary"]} if marker and "summary" in marker else {})})
    return read_label_csv(out / CSV_NAME)


def _output_box(row: Row) -> list[float]:
    """The detector box of a kept row in its written image, clipped to it, as COCO [x, y, w, h]."""
    affine = np.array([float(v) for v in row["affine"].split()]).reshape(2, 3)
    corners = apply_affine(np.array([[float(row["x0"]), float(row["y0"])], [float(row["x1"]), float(row["y1"])]]),
                           affine)
    limit = np.array([float(row["width"]) - 1, float(row["height"]) - 1])
    low, high = np.clip(corners.min(axis=0), 0, limit), np.clip(corners.max(axis=0), 0, limit)
    return [round(float(v), 2) for v in (*low, *(high - low))]


def write_coco(out: Path, rows: Iterable[Row], description: str) -> int:
    """`out/labels.json` from the kept rows and their .pts files; the number of faces in it."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for row in rows:
        if row["status"] != "kept":
            continue
        landmarks = read_pts(out / Path(row["file"]).with_suffix(".pts"), 68)
        number = len(images) + 1
        images.append({"file_name": row["file"], "width": int(row["width"]), "height": int(row["height"]),
                       "id": number})
        bbox = _output_box(row)
        keypoints = [value for x, y in landmarks for value in (float(decimal(x)), float(decimal(y)), 2)]
        annotations.append({"id": number, "image_id": number, "category_id": 1, "keypoints": keypoints,
                            "num_keypoints": len(landmarks), "bbox": bbox, "area": round(bbox[2] * bbox[3], 4),
                            "iscrowd": 0, "score": float(row["score"]), "source_image": row["image"],
                            "face": int(row["face"])})
    document = {"info": {"description": description}, "images": images, "annotations": annotations,
                "categories": [coco_category(68)]}
    write_bytes(out / COCO_NAME, json.dumps(document, separators=(",", ":")).encode() + b"\n")
    return len(annotations)


def _tally(summary: LabelSummary, rows: Iterable[Row]) -> None:
    for row in rows:
        if row["status"] == "kept":
            summary.kept += 1
        elif row["status"] == "rejected":
            summary.rejected[row["reason"]] += 1
        elif row["status"] == "no_face":
            summary.no_face += 1
        elif row["status"] == "bad_image":
            summary.bad.append((row["image"], row["reason"]))


# ---------------------------------------------------------------------------------------------
# the entry point


def label_images(images: str | Path, out: str | Path, config: LabelConfig | None = None, *, resume: bool = False,
                 progress: bool = True) -> LabelSummary:
    """Label every image under `images` into the folder `out` (see the module docstring); resumable.

    LabelError (a ValueError) for missing packages or weights, or an `out` that holds something
    else; FileNotFoundError when `images` is not a folder. Bad images are recorded, never raised.
    """
    config = config or LabelConfig()
    root, out = Path(images), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"images folder {root} {'is not a folder' if root.exists() else 'does not exist'}")
    preflight(config)
    started = time.perf_counter()
    done = _claim(out, root, config, resume)
    found = find_images(root, exclude=out)
    todo = [relative for relative in found if relative not in done]
    summary = LabelSummary(out, images=len(found), already_done=len(found) - len(todo))
    threads = max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else None
    jobs = (delayed(label_image)(root, relative, out, config, threads) for relative in todo)
    bar = tqdm(total=len(todo), desc=f"label ({config.labeler})", unit="img", disable=not progress)
    with open(out / CSV_NAME, "a", encoding="utf-8", newline="") as handle:
        for rows in Parallel(n_jobs=config.workers, return_as="generator")(jobs):
            handle.write(_csv_text(rows))
            handle.flush()
            summary.labelled += 1
            summary.kept_now += sum(row["status"] == "kept" for row in rows)
            bar.update(1)
            bar.set_postfix(kept=summary.kept_now)
    bar.close()
    everything = [row for rows in read_label_csv(out / CSV_NAME).values() for row in rows]
    _tally(summary, everything)
    write_coco(out, everything, f"lafin-aug label of {root.resolve()} ({config.labeler}, {config.face_detector})")
    summary.seconds = time.perf_counter() - started
    write_json(out / MARKER_NAME, {"format": MARKER_FORMAT, "version": MARKER_VERSION,
                                   "identity": {"images": str(root.resolve()), **config.identity()},
                                   "config": config.to_dict(), "complete": True, "summary": summary.to_dict()})
    return summary
