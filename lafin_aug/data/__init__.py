"""Dataset readers behind one interface; `open_dataset(kind, root, split)` picks one by name."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lafin_aug.data.base import DatasetError, Face, FaceReader, OnError, Record

#: kind -> "module:Class" of its reader
READERS: dict[str, str] = {
    "wflw": "lafin_aug.data.wflw:WFLWReader",
    "300w": "lafin_aug.data.w300:W300Reader",
    "pts": "lafin_aug.data.pts:PtsReader",
    "coco": "lafin_aug.data.coco:CocoReader",
    "synthetic": "lafin_aug.data.synthetic:SyntheticReader",
}


def reader_class(kind: str) -> type[FaceReader]:
    """The reader class registered under `kind`."""
    try:
        module_name, class_name = READERS[kind].split(":")
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r} (known: {', '.join(READERS)})") from None
    return getattr(importlib.import_module(module_name), class_name)


def open_dataset(kind: str, root: str | Path | None = None, split: str = "train",
                 on_error: OnError = "skip", **options: Any) -> FaceReader:
    """A reader of `kind` over `root`/`split`; `options` go to the reader (e.g. count for synthetic)."""
    return reader_class(kind)(root, split=split, on_error=on_error, **options)


__all__ = ["DatasetError", "Face", "FaceReader", "OnError", "Record", "READERS", "open_dataset", "reader_class"]
