"""COCO-keypoint JSON as written by mmpose's face converters: one face per annotation.

`images[].file_name` is relative to the JSON's folder; `annotations[].keypoints` are flat
x, y, v triples. A point with v == 0 (not labelled) rejects the annotation, since its coordinates
are placeholders. x, y count from the reader's `origin`, 0 by default; mmpose's converters keep each
dataset's numbers as written, so its WFLW files are 0-based but its 300-W and 300-VW files count
from 1 like the `.pts` they come from (read them with origin=1).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, parse_points, register_reader, resolve_inside
from lafin_aug.landmarks import get_schema


@register_reader
class CocoReader(FaceReader):
    """The annotated faces of a COCO-keypoint JSON file (root is the file), in annotation order.

    Points per face: `points` if given (or the count of the named `schema`), else the most common count
    of the file's annotations, an annotation's count being its `num_keypoints` (mmpose: the labelled
    points) when that is a positive integer and its keypoints array's length / 3 otherwise (e.g. when
    `num_keypoints` is absent). Every annotation's array must then hold exactly that many x, y, v
    triples of numbers. The schema is the named one, else the one registered with that count.
    `origin` (default 0, see the module docstring): where the coordinates count from.
    Meta: image_id, annotation_id, bbox (None when absent), file_name.
    """

    kind = "coco"

    def __init__(self, root: str | Path | None, split: str = "train", on_error: OnError = "skip",
                 points: int | None = None, schema: str | None = None, origin: int | None = None):
        if root is None:
            raise ValueError("the coco reader needs the JSON file as root (--root)")
        self.schema_name = schema
        self._points = get_schema(schema).num_points if schema is not None else points or 0
        if schema is not None and points and points != self._points:
            raise ValueError(f"coco: schema {schema!r} has {self._points} points, not {points}")
        self._points_from = ""
        super().__init__(root, split, on_error, origin)

    @property
    def points(self) -> int:
        """Landmarks per face."""
        return self._points

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        source = self.root
        images, annotations = load_coco(source)
        if self._points:
            self._points_from = "as given" if self.schema_name is None else f"schema {self.schema_name}"
        else:
            counts = Counter(_point_count(ann) for ann in annotations if isinstance(ann, dict))
            self._points = next((n for n, _ in counts.most_common() if n), 0)
            self._points_from = "the file's most common count"
        for annotation in annotations:
            if not isinstance(annotation, dict):
                yield DatasetError(source, f"annotation is not an object: {annotation!r:.40}", None, "malformed")
                continue
            try:
                yield self._record(annotation, images, source)
            except DatasetError as error:
                yield error

    def _record(self, annotation: dict[str, Any], images: dict[Any, str], source: Path) -> Record:
        """The record of one annotation; errors name "<json file>: annotation <id>" as their source."""
        label = f"{source}: annotation {annotation.get('id')!s:.40}"
        image_id = annotation.get("image_id")
        if not _is_id(image_id) or image_id not in images:
            raise DatasetError(label, f"unknown image_id {image_id!r:.40}", None, "unknown_image")
        values = annotation.get("keypoints")
        if not isinstance(values, list) or len(values) % 3:
            found = f"{len(values)} values, not a multiple of 3" if isinstance(values, list) else _json_kind(values)
            raise DatasetError(label, f"keypoints must be a list of x, y, v triples, found {found}", None,
                               "point_count")
        bad = next((i for i, v in enumerate(values) if not _is_number(v)), None)
        if bad is not None:
            raise DatasetError(label, f"keypoint value {bad} is {_json_kind(values[bad])} {values[bad]!r:.40}, "
                                      "not a number", None, "non_numeric")
        if len(values) != 3 * self._points:
            said = (f"; its num_keypoints is {annotation['num_keypoints']!r:.40}" if "num_keypoints" in annotation
                    else "")
            raise DatasetError(label, f"expected {self._points} x,y,v keypoints ({3 * self._points} values, "
                                      f"{self._points_from}), found {len(values)} values{said}", None, "point_count")
        landmarks = parse_points([v for i, v in enumerate(values) if i % 3 != 2], self._points, label)
        if any(v == 0 for v in values[2::3]):
            raise DatasetError(label, "a keypoint has visibility 0 (not labelled)", None, "unlabelled_point")
        file_name = images[image_id]
        meta = {"image_id": image_id, "annotation_id": annotation.get("id"),
                "bbox": annotation.get("bbox"), "file_name": file_name}
        return Record(resolve_inside(source.parent, file_name, label), landmarks, meta, label)


def load_coco(source: Path) -> tuple[dict[Any, Any], list[Any]]:
    """(image id -> file_name, annotations) of a COCO keypoint file.

    FileNotFoundError when it does not exist; one DatasetError (a ValueError) whose message starts
    with the file's path when it is unreadable, not JSON (e.g. truncated), not an object, or lacks
    the "images" / "annotations" lists or an image's "id" / "file_name".
    """
    if source.is_dir():
        raise DatasetError(source, "is a folder, not a COCO keypoint JSON file (--root is the JSON file itself)",
                           None, "malformed")
    try:
        text = source.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"COCO keypoint file {source} not found (--root is the JSON file)") from None
    except OSError as exc:
        raise DatasetError(source, f"cannot read the file ({exc.strerror or exc})", None, "malformed") from None
    if not text.strip():
        raise DatasetError(source, "the file is empty, not COCO keypoint JSON", None, "malformed")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(source, f"not valid JSON, truncated or damaged ({exc.msg} at column {exc.colno})",
                           exc.lineno, "malformed") from None
    except UnicodeDecodeError:
        raise DatasetError(source, "not JSON text (not UTF-8, UTF-16 or UTF-32)", None, "malformed") from None
    except RecursionError:
        raise DatasetError(source, "JSON nested too deeply", None, "malformed") from None
    if not isinstance(document, dict):
        raise DatasetError(source, f"not a COCO keypoint file: the JSON is {_json_kind(document)}, not an object "
                                   'with "images" and "annotations"', None, "malformed")
    for key in ("images", "annotations"):
        if not isinstance(document.get(key), list):
            found = "missing" if key not in document else f"{_json_kind(document[key])}, not a list"
            raise DatasetError(source, f'not a COCO keypoint file: "{key}" is {found}', None, "malformed")
    images: dict[Any, Any] = {}
    for number, image in enumerate(document["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")) or "file_name" not in image:
            raise DatasetError(source, f'images[{number}] is not an object with an integer or string "id" and a '
                                       f'"file_name": {image!r:.60}', None, "malformed")
        if image["id"] in images:
            raise DatasetError(source, f"images[{number}] repeats image id {image['id']!r:.40}", None, "malformed")
        images[image["id"]] = image["file_name"]
    return images, document["annotations"]


def _point_count(annotation: dict[str, Any]) -> int:
    """Points of one annotation for the file's count: its num_keypoints when a positive integer, else
    its keypoints array's length / 3 (0 when neither tells)."""
    number = annotation.get("num_keypoints")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    values = annotation.get("keypoints")
    return len(values) // 3 if isinstance(values, list) and not len(values) % 3 else 0


def _is_id(value: Any) -> bool:
    """An image id as COCO writes them: an integer (not a boolean) or a string."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, not a boolean (a Python bool is an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    """How JSON would name the type of a parsed value."""
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"),
             (dict, "an object"))
    return "null" if value is None else next((name for kind, name in kinds if isinstance(value, kind)), "?")
