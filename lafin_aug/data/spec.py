"""Which faces a stage reads: a dataset kind, root and split as one value, and the reader it opens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lafin_aug.config import Config
from lafin_aug.data.base import READERS, FaceReader, OnError


@dataclass(frozen=True)
class DatasetSpec(Config):
    """Dataset kind, root and split; `count`/`seed` size the synthetic set."""

    dataset: str = "synthetic"
    root: str | None = None
    split: str = "train"
    count: int = 512
    seed: int = 0

    def options(self) -> dict[str, Any]:
        """Reader options beyond root and split."""
        return {"count": self.count, "seed": self.seed} if self.dataset == "synthetic" else {}


def open_reader(spec: DatasetSpec, on_error: OnError = "skip") -> FaceReader:
    """The reader `spec` names."""
    return READERS.get(spec.dataset)(spec.root, split=spec.split, on_error=on_error, **spec.options())
