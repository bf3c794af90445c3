"""Dataset readers behind one interface; `open_dataset(kind, root, split)` picks one by name.

Each reader module registers its class (`register_reader`); importing this package registers the
built-in ones: wflw, 300w, pts, coco, synthetic. Nothing here imports models or trainers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lafin_aug.data import coco, pts, synthetic, w300, wflw  # noqa: F401,E402 - register the built-in readers
from lafin_aug.data.base import READERS, DatasetError, Face, FaceReader, OnError, Record, register_reader


def open_dataset(kind: str, root: str | Path | None = None, split: str = "train",
                 on_error: OnError = "skip", **options: Any) -> FaceReader:
    """A reader of `kind` over `root`/`split`; `options` go to the reader (e.g. count for synthetic)."""
    return READERS.get(kind)(root, split=split, on_error=on_error, **options)


__all__ = ["DatasetError", "Face", "FaceReader", "OnError", "READERS", "Record", "open_dataset", "register_reader"]
