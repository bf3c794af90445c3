"""WFLW in its official layout: 98 points, a face box and six attribute flags per annotation line.

Layout under the root::

    WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt
    WFLW_images/<event>/<image>.jpg

A line holds 196 coordinates (x0 y0 ... x97 y97, 0-based pixels: origin 0 by default), the box
x1 y1 x2 y2, the flags pose expression illumination make-up occlusion blur (0/1), and the image
name relative to WFLW_images.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, parse_points, register_reader, resolve_inside

#: Root used when none is given and the environment variable is unset.
DEFAULT_ROOT = "data/WFLW"
ROOT_ENV = "LAFIN_AUG_WFLW_ROOT"
#: The six attribute flags, in line order.
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
LIST_DIR = Path("WFLW_annotations", "list_98pt_rect_attr_train_test")
TOKENS_PER_LINE = 98 * 2 + 4 + len(ATTRIBUTES) + 1


def list_file(root: Path, split: str) -> Path:
    """The annotation list that holds `split` (every test_* subset lives in the test list)."""
    return root / LIST_DIR / f"list_98pt_rect_attr_{split.partition('_')[0]}.txt"


def _flags(tokens: list[str], source: Path, line: int) -> dict[str, int]:
    """The attribute flags as {name: 0 or 1}."""
    if any(token not in ("0", "1") for token in tokens):
        raise DatasetError(source, f"attribute flags must be 0 or 1, found {' '.join(tokens)}", line,
                           "bad_attribute")
    return {name: int(token) for name, token in zip(ATTRIBUTES, tokens)}


def _parse_line(tokens: list[str], images: Path, source: Path, line: int, attribute: str | None) -> Record | None:
    """The record of one list line, or None when it is outside the attribute subset."""
    if len(tokens) != TOKENS_PER_LINE:
        raise DatasetError(source, f"expected {TOKENS_PER_LINE} fields (196 coordinates, 4 box values, "
                                   f"6 flags, image name), found {len(tokens)}", line, "point_count")
    landmarks = parse_points(tokens[:196], 98, source, line)
    box = parse_points(tokens[196:200], 2, source, line).reshape(-1).tolist()
    attributes = _flags(tokens[200:206], source, line)
    if attribute is not None and not attributes[attribute]:
        return None
    image = resolve_inside(images, tokens[206], source, line)
    return Record(image, landmarks, {"box": box, "attributes": attributes, "image": tokens[206]},
                  str(source), line)


@register_reader
class WFLWReader(FaceReader):
    """WFLW faces of one split: train, test, or a test subset test_<attribute> (lines whose flag is 1).

    The root defaults to $LAFIN_AUG_WFLW_ROOT, else `data/WFLW`. Meta: box [x1, y1, x2, y2],
    attributes {name: 0/1}, image (name relative to WFLW_images). `origin` (default 0): where the
    list's coordinates count from.
    """

    kind = "wflw"
    splits = ("train", "test") + tuple(f"test_{name}" for name in ATTRIBUTES)
    test_splits = splits[1:]
    schema_name = "wflw98"

    def __init__(self, root: str | Path | None = None, split: str = "train", on_error: OnError = "skip",
                 origin: int | None = None):
        super().__init__(root if root is not None else os.environ.get(ROOT_ENV) or DEFAULT_ROOT, split, on_error,
                         origin)

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        source = list_file(self.root, self.split)
        if not source.is_file():
            raise FileNotFoundError(
                f"WFLW annotation list {source} not found; pass the folder holding WFLW_annotations/ and "
                f"WFLW_images/ as root (--root) or set ${ROOT_ENV}")
        attribute = self.split.partition("_")[2] or None
        for number, text in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                record = _parse_line(text.split(), self.root / "WFLW_images", source, number, attribute)
            except DatasetError as error:
                yield error
                continue
            if record is not None:
                yield record
