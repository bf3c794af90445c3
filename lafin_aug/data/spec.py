"""Which faces a stage reads: a dataset kind, root and split as one value, and the reader it opens."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from lafin_aug.config import Config
from lafin_aug.data.base import READERS, FaceReader, OnError


@dataclass(frozen=True)
class DatasetSpec(Config):
    """Dataset kind, root and split; `count`/`seed` size the synthetic set; `origin` (0 or 1) is where the
    files count pixels from, None for the reader's default (300w: 1, the other file readers: 0)."""

    dataset: str = "synthetic"
    root: str | None = None
    split: str = "train"
    count: int = 512
    seed: int = 0
    origin: int | None = None

    def options(self) -> dict[str, Any]:
        """Reader options beyond root and split."""
        options: dict[str, Any] = {"count": self.count, "seed": self.seed} if self.dataset == "synthetic" else {}
        return options if self.origin is None else {**options, "origin": self.origin}


def open_reader(spec: DatasetSpec, on_error: OnError = "skip") -> FaceReader:
    """The reader `spec` names; ValueError when it takes none of an option `spec` sets (e.g. origin)."""
    reader = READERS.get(spec.dataset)
    options = spec.options()
    parameters = inspect.signature(reader).parameters
    takes_any = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values())
    unknown = [] if takes_any else sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(f"the {spec.dataset} reader takes no {', '.join(unknown)} option")
    return reader(spec.root, split=spec.split, on_error=on_error, **options)
