"""lafin-aug: landmark-guided face inpainting as training-data augmentation for landmark detectors.

The streaming API for other training loops: `AugmentedShards` (records of `lafin-aug generate`
shards) and `OnTheFlyAugment` (fresh pairs in memory). Both are imported on first use, so
`import lafin_aug.data` (or any other submodule) loads no models.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_LAZY = {"AugmentedShards": "lafin_aug.shards", "OnTheFlyAugment": "lafin_aug.generate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lafin_aug' has no attribute {name!r}")


__all__ = ["AugmentedShards", "OnTheFlyAugment", "__version__"]
