"""Open the crops a trainer or benchmark works on, from a dataset kind/root/split."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from lafin_aug.data import FaceReader, OnError, open_dataset
from lafin_aug.data.samples import CropBank, crop_bank

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """Which faces: dataset kind, root, split; `count`/`seed` size the synthetic set."""

    dataset: str = "synthetic"
    root: str | None = None
    split: str = "train"
    count: int = 512
    seed: int = 0

    def options(self) -> dict:
        return {"count": self.count, "seed": self.seed} if self.dataset == "synthetic" else {}


def open_reader(spec: DataSpec, on_error: OnError = "skip") -> FaceReader:
    """The reader `spec` names."""
    return open_dataset(spec.dataset, spec.root, spec.split, on_error=on_error, **spec.options())


def load_crops(spec: DataSpec, size: int, progress: bool = True) -> CropBank:
    """Every usable face of `spec` cropped to size×size (bad records skipped and reported)."""
    reader = open_reader(spec)
    bank = crop_bank(reader, size, progress=progress)
    if reader.skipped.total:
        log.warning("%s %s: skipped %d bad records %s", spec.dataset, spec.root, reader.skipped.total,
                    dict(reader.skipped.reasons))
    return bank
