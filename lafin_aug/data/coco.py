"""COCO-keypoint JSON as written by mmpose's face converters: one face per annotation.

`images[].file_name` is relative to the JSON's folder; `annotations[].keypoints` are flat
x, y, v triples whose x, y are used as given (0-based pixels). A point with v == 0 (not
labelled) rejects the annotation, since its coordinates are placeholders.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, parse_points, register_reader, resolve_inside


@register_reader
class CocoReader(FaceReader):
    """The annotated faces of a COCO-keypoint JSON file (root is the file), in annotation order.

    Points per face: `points` if given, else the most common `num_keypoints` of the file.
    Meta: image_id, annotation_id, bbox (None when absent), file_name.
    """

    kind = "coco"

    def __init__(self, root: str | Path | None, split: str = "train", on_error: OnError = "skip",
                 points: int | None = None):
        if root is None:
            raise ValueError("the coco reader needs the JSON file as root (--root)")
        self._points = points or 0
        super().__init__(root, split, on_error)

    @property
    def points(self) -> int:
        """Landmarks per face."""
        return self._points

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        source = self.root
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
            images = {image["id"]: image["file_name"] for image in document["images"]}
            annotations = list(document["annotations"])
        except FileNotFoundError:
            raise FileNotFoundError(f"COCO keypoint file {source} not found (--root is the JSON file)") from None
        except json.JSONDecodeError as exc:
            raise DatasetError(source, f"invalid JSON ({exc.msg})", exc.lineno, "malformed") from None
        except (KeyError, TypeError) as exc:
            raise DatasetError(source, f"not a COCO keypoint file (missing or bad {exc})", None,
                               "malformed") from None
        if not self._points:
            counts = Counter(ann.get("num_keypoints") for ann in annotations if isinstance(ann, dict))
            self._points = next((n for n, _ in counts.most_common() if isinstance(n, int) and n > 0), 0)
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
        label = f"{source}: annotation {annotation.get('id')}"
        if annotation.get("image_id") not in images:
            raise DatasetError(label, f"unknown image_id {annotation.get('image_id')!r}", None, "unknown_image")
        values = annotation.get("keypoints")
        if not isinstance(values, list) or len(values) != 3 * self._points:
            found = len(values) if isinstance(values, list) else type(values).__name__
            raise DatasetError(label, f"expected {self._points} x,y,v keypoints ({3 * self._points} values), "
                                      f"found {found}", None, "point_count")
        landmarks = parse_points([v for i, v in enumerate(values) if i % 3 != 2], self._points, label)
        if any(v == 0 for v in values[2::3]):
            raise DatasetError(label, "a keypoint has visibility 0 (not labelled)", None, "unlabelled_point")
        file_name = images[annotation["image_id"]]
        meta = {"image_id": annotation["image_id"], "annotation_id": annotation.get("id"),
                "bbox": annotation.get("bbox"), "file_name": file_name}
        return Record(resolve_inside(source.parent, file_name, label), landmarks, meta, label)
