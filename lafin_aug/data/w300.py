"""300-W in its official layout: images with `.pts` files (68 points, read with `read_pts`) in subset folders.

Layout under the root: afw/, helen/{trainset,testset}/, lfpw/{trainset,testset}/, ibug/.

The official annotations count pixels from 1: iBUG's 300-W page says they are "saved in the matlab
convention of 1 being the first index, i.e. the coordinates of the top left pixel in an image are
x=1, y=1", and iBUG's own reader (menpo's PTS importer) subtracts 1. So this reader's `origin`
is 1: landmarks are the written values minus 1. A copy already shifted to 0-based takes origin=0.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from lafin_aug.data.base import DatasetError, FaceReader, OnError, Record, register_reader
from lafin_aug.data.pts import pts_records

#: Root used when none is given and the environment variable is unset.
DEFAULT_ROOT = "data/300W"
ROOT_ENV = "LAFIN_AUG_300W_ROOT"
#: split -> subset folders, in reading order (face counts of the real set in comments)
SPLIT_SUBSETS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),  # 3148
    "common": ("helen/testset", "lfpw/testset"),  # 554
    "challenging": ("ibug",),  # 135
    "full": ("helen/testset", "lfpw/testset", "ibug"),  # 689
}


@register_reader
class W300Reader(FaceReader):
    """300-W faces of one split: train, common, challenging or full (common + challenging).

    The root defaults to $LAFIN_AUG_300W_ROOT, else `data/300W`. Meta: subset (e.g. "helen/testset").
    `origin` (default 1, see the module docstring): where the `.pts` coordinates count from.
    """

    kind = "300w"
    splits = tuple(SPLIT_SUBSETS)
    test_splits = ("common", "challenging", "full")
    schema_name = "ibug68"
    origin = 1

    def __init__(self, root: str | Path | None = None, split: str = "train", on_error: OnError = "skip",
                 origin: int | None = None):
        super().__init__(root if root is not None else os.environ.get(ROOT_ENV) or DEFAULT_ROOT, split, on_error,
                         origin)

    def _scan(self) -> Iterator[Record | DatasetError]:
        assert self.root is not None
        folders = [self.root / subset for subset in SPLIT_SUBSETS[self.split]]
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"300-W folder(s) {', '.join(missing)} not found; pass the folder holding afw/, helen/, lfpw/ "
                f"and ibug/ as root (--root) or set ${ROOT_ENV}")
        for subset, folder in zip(SPLIT_SUBSETS[self.split], folders):
            for item in pts_records(folder, self.points):
                if isinstance(item, Record):
                    item.meta["subset"] = subset
                yield item
