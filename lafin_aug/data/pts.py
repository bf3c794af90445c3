"""300-W-style `.pts` landmark files: the parser and a reader for any folder of images with `.pts` beside them.

`read_pts` returns the numbers as written; where they count from is the reader's `origin`, since
the format does not say and its producers differ. iBUG's releases (300-W, 300-VW; iBUG's menpo
reads them) count from 1, the top-left pixel being (1, 1). Tools that write pixel indices count
from 0: dlib, which labelled the shared wild set, and this project's `export --to pts` and `label`.
The `pts` reader defaults to origin 0, the convention of the folders this project makes and reads
(so an export reads back exactly and the README's figures stand); an iBUG release read through it
takes origin=1 (`--origin 1`), and `--dataset 300w` defaults to 1. mmpose's COCO conversions of
300-W/300-VW keep the `.pts` numbers unchanged, so they count from 1 as well.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, outside_root, parse_points, register_reader
from lafin_aug.landmarks import get_schema

#: Image file suffixes (compared lower-case) that may carry a `.pts` file.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_pts(path: str | Path, expected: int | None = None) -> np.ndarray:
    """The float32 [P,2] landmarks of one `.pts` file (`version:`, `n_points:`, `{`, P lines `x y`, `}`).

    DatasetError names the file and line for an unreadable or truncated file, a missing or
    non-integer `n_points`, a line that is not two numbers, NaN, a point count that differs
    from `n_points`, or an `n_points` other than `expected` (when given).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read .pts file ({exc})", None, "unreadable_annotation") from None
    n_points, n_points_line, start = _read_header(lines, path)
    if expected is not None and n_points != expected:
        raise DatasetError(path, f"expected {expected} points, n_points is {n_points}", n_points_line,
                           "point_count")
    rows: list[np.ndarray] = []
    for number in range(start + 1, len(lines) + 1):
        fields = lines[number - 1].split()
        if fields == ["}"]:
            if len(rows) != n_points:
                raise DatasetError(path, f"n_points is {n_points} but {len(rows)} points are listed", number,
                                   "point_count")
            return np.concatenate(rows) if rows else np.zeros((0, 2), np.float32)
        if len(fields) != 2:
            raise DatasetError(path, f"expected 'x y', found {lines[number - 1]!r}", number, "malformed")
        rows.append(parse_points(fields, 1, path, number))
    raise DatasetError(path, f"truncated: no closing '}}' after {len(rows)} of {n_points} points", len(lines),
                       "truncated")


def _read_header(lines: list[str], path: str | Path) -> tuple[int, int, int]:
    """(n_points, its line number, line number of `{`) from the `key: value` lines before `{`."""
    n_points: int | None = None
    n_points_line = 0
    for number, text in enumerate(lines, 1):
        if text.strip() == "{":
            if n_points is None:
                raise DatasetError(path, "no 'n_points:' line before '{'", number, "malformed")
            return n_points, n_points_line, number
        key, _, value = text.partition(":")
        if key.strip() == "n_points":
            try:
                n_points, n_points_line = int(value), number
            except ValueError:
                raise DatasetError(path, f"n_points is not an integer: {value.strip()!r}", number,
                                   "non_numeric") from None
    raise DatasetError(path, "truncated: no '{' line", len(lines), "truncated")


def pts_records(folder: Path, points: int) -> Iterator[Record | DatasetError]:
    """A Record per `.pts` file under `folder` (recursively, sorted by relative path) and its same-stem image.

    Images without a `.pts` are ignored; a `.pts` without an image, with several candidate
    images, or with bad contents yields a DatasetError, as does one that (or whose image) is a
    link to a file outside `folder` (reason "path_escape"; links within `folder` are fine).
    """
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"dataset folder {folder} {problem} (--root is the folder of images and .pts files)")
    files = sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    images: dict[Path, list[Path]] = {}
    for file in files:
        if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
            images.setdefault(file.with_suffix(""), []).append(file)
    for pts in (file for file in files if file.suffix.lower() == ".pts"):
        candidates = images.get(pts.with_suffix(""), [])
        if len(candidates) != 1:
            problem = (f"no image {pts.stem}{{{','.join(IMAGE_SUFFIXES)}}} beside it" if not candidates
                       else f"several images share its name: {', '.join(p.name for p in candidates)}")
            yield DatasetError(pts, problem, None, "missing_image" if not candidates else "ambiguous_image")
            continue
        escape = next(((file, real) for file in (pts, candidates[0])
                       if (real := outside_root(folder, file)) is not None), None)
        if escape is not None:
            yield DatasetError(pts, f"{escape[0].name} is a link to {escape[1]}, outside the dataset folder {folder}",
                               None, "path_escape")
            continue
        try:
            landmarks = read_pts(pts, points)
        except DatasetError as error:
            yield error
            continue
        yield Record(candidates[0], landmarks, {"name": pts.relative_to(folder).with_suffix("").as_posix()},
                     str(pts))


@register_reader
class PtsReader(FaceReader):
    """Every image under `root` (jpg/jpeg/png/bmp) that has a same-stem `.pts` file, in sorted path order.

    `schema` names the landmark schema (its count is the points per face); `points` alone sets the
    count (the schema is then the one registered with it, if any); neither: iBUG 68. `origin`
    (default 0, see the module docstring): where the files count pixels from.
    """

    kind = "pts"

    def __init__(self, root: str | Path | None, split: str = "train", on_error: OnError = "skip",
                 points: int | None = None, schema: str | None = None, origin: int | None = None):
        if root is None:
            raise ValueError("the pts reader needs a root folder (--root)")
        self.schema_name = "ibug68" if schema is None and points is None else schema
        self._points = get_schema(self.schema_name).num_points if self.schema_name is not None else points
        if points is not None and points != self._points:
            raise ValueError(f"pts: schema {self.schema_name!r} has {self._points} points, not {points}")
        super().__init__(root, split, on_error, origin)

    @property
    def points(self) -> int:
        """Landmarks per face."""
        return self._points

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        return pts_records(self.root, self._points)
