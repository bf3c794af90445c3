"""Classical hole fills: what a masked face looks like without a learned inpainter.

zero (the masked input M̄∘I that LaFIn's landmark predictor is trained on), noise (random erase
with uniform noise), and OpenCV's Telea and Navier-Stokes inpainting (radius 3), the baselines
of the inpainting evaluation and the "classic" benchmark variant.
"""
from __future__ import annotations

import cv2
import numpy as np

FILLS = ("zero", "noise", "telea", "ns")
_OPENCV = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def fill_hole(image: np.ndarray, mask: np.ndarray, fill: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """uint8 [H,W,3] `image` with its mask==1 pixels replaced by `fill` (one of FILLS; noise needs `rng`)."""
    hole = mask.astype(bool)
    if fill == "zero":
        out = image.copy()
        out[hole] = 0
        return out
    if fill == "noise":
        if rng is None:
            raise ValueError("the noise fill needs a random generator")
        out = image.copy()
        out[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
        return out
    if fill in _OPENCV:
        return cv2.inpaint(image, mask.astype(np.uint8), 3, _OPENCV[fill])
    raise ValueError(f"unknown hole fill {fill!r} (one of {', '.join(FILLS)})")


def fill_holes(images: np.ndarray, masks: np.ndarray, fill: str) -> np.ndarray:
    """`fill_hole` of each image [N,H,W,3] with its mask [N,H,W] (deterministic fills only)."""
    return np.stack([fill_hole(image, mask, fill) for image, mask in zip(images, masks)])
