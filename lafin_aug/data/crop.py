"""LaFIn's square face crop and horizontal flip, keeping image and landmarks exactly in step.

Coordinates are pixel-index coordinates (pixel i has its centre at i and covers [i-0.5, i+0.5]).
An affine is a float64 2x3 matrix ``A`` mapping a point ``p`` to ``A[:, :2] @ p + A[:, 2]``.

The crop box follows LaFIn's preprocessing (YaN9-Y/lafin ``scripts/preprocess_wflw.py``): the
landmark bounding box, expanded by ``expand`` of its width/height on each side and shifted up by
``shift`` of its height, with the shorter side padded equally to make it square. Unlike LaFIn, the
box is not rounded to whole pixels: the continuous square ``[x0, x0+side] x [y0, y0+side]`` maps
onto the crop's full extent ``[-0.5, S-0.5]^2``, so the crop centre is the box centre.
"""
from __future__ import annotations

import math
from typing import NamedTuple, overload

import cv2
import numpy as np

from lafin_aug.data.base import Face
from lafin_aug.landmarks import LandmarkSchema, flip_landmarks

#: LaFIn's expansion of the landmark box on each side, as a fraction of its width/height.
EXPAND = 0.3
#: LaFIn's upward shift of the box, as a fraction of the landmark box height.
SHIFT = 0.2


class CroppedFace(NamedTuple):
    """A square crop, its landmarks and the affine that maps source coordinates into it."""

    image: np.ndarray
    landmarks: np.ndarray
    affine: np.ndarray


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """[P,2] points mapped by a 2x3 affine, as float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The 2x3 affine that undoes `affine`."""
    linear = np.linalg.inv(affine[:, :2])
    return np.hstack([linear, -linear @ affine[:, 2:]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine applying `inner` first, then `outer`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]])


def crop_box(landmarks: np.ndarray, expand: float = EXPAND, shift: float = SHIFT) -> tuple[float, float, float]:
    """LaFIn's square crop box (x0, y0, side) around [P,2] landmarks, in source pixel-index coordinates."""
    low = landmarks.min(axis=0).astype(np.float64)
    high = landmarks.max(axis=0).astype(np.float64)
    width, height = high - low
    side = (1 + 2 * expand) * max(width, height)
    if not side > 0:
        raise ValueError(f"cannot crop around landmarks with an empty bounding box ({width}x{height})")
    centre_x = (low[0] + high[0]) / 2
    centre_y = (low[1] + high[1]) / 2 - shift * height
    return float(centre_x - side / 2), float(centre_y - side / 2), float(side)


def crop_affine(landmarks: np.ndarray, size: int = 256, expand: float = EXPAND,
                shift: float = SHIFT) -> np.ndarray:
    """The affine from source coordinates to the size x size crop around these landmarks."""
    x0, y0, side = crop_box(landmarks, expand, shift)
    scale = size / side
    return np.array([[scale, 0.0, -x0 * scale - 0.5], [0.0, scale, -y0 * scale - 0.5]])


def warp_image(image: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` warped by `affine` into a (width, height) canvas, zero outside the source, anti-aliased.

    Where the affine shrinks the image, the source region it needs is first shrunk with area
    averaging to about the output resolution; that resize is folded into the affine exactly.
    """
    width, height = size
    zoom_x = math.hypot(affine[0, 0], affine[1, 0])
    zoom_y = math.hypot(affine[0, 1], affine[1, 1])
    source, matrix = image, affine
    if zoom_x < 1 or zoom_y < 1:
        corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
        box = apply_affine(corners, invert_affine(affine))
        margin_x, margin_y = math.ceil(2 / min(zoom_x, 1)) + 1, math.ceil(2 / min(zoom_y, 1)) + 1
        rx0 = max(0, math.floor(box[:, 0].min()) - margin_x)
        ry0 = max(0, math.floor(box[:, 1].min()) - margin_y)
        rx1 = min(image.shape[1], math.ceil(box[:, 0].max()) + margin_x + 1)
        ry1 = min(image.shape[0], math.ceil(box[:, 1].max()) + margin_y + 1)
        if rx1 <= rx0 or ry1 <= ry0:
            return np.zeros((height, width) + image.shape[2:], image.dtype)
        region = image[ry0:ry1, rx0:rx1]
        new_w = max(1, round((rx1 - rx0) * min(zoom_x, 1)))
        new_h = max(1, round((ry1 - ry0) * min(zoom_y, 1)))
        source = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
        step_x, step_y = (rx1 - rx0) / new_w, (ry1 - ry0) / new_h
        # shrunk pixel u covers region edges [u*step, (u+1)*step): its centre is source x = rx0 + (u+0.5)*step - 0.5
        shrunk_to_source = np.array([[step_x, 0.0, rx0 + 0.5 * step_x - 0.5],
                                     [0.0, step_y, ry0 + 0.5 * step_y - 0.5]])
        matrix = compose_affine(affine, shrunk_to_source)
    return cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@overload
def crop_face(image: Face, landmarks: None = None, size: int = 256) -> Face: ...


@overload
def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int = 256) -> CroppedFace: ...


def crop_face(image: np.ndarray | Face, landmarks: np.ndarray | None = None,
              size: int = 256) -> CroppedFace | Face:
    """LaFIn's size x size face crop of an image and its landmarks (or of a Face).

    For a Face the result is a Face whose meta["crop_affine"] maps the original image's
    coordinates into the crop (composed with any crop_affine the face already had).
    """
    if isinstance(image, Face):
        cropped = crop_face(image.image, image.landmarks, size)
        affine = cropped.affine
        if "crop_affine" in image.meta:
            affine = compose_affine(affine, np.asarray(image.meta["crop_affine"], dtype=np.float64))
        return Face(cropped.image, cropped.landmarks, dict(image.meta, crop_affine=affine))
    if landmarks is None:
        raise TypeError("crop_face needs landmarks with an image array")
    affine = crop_affine(landmarks, size)
    return CroppedFace(warp_image(image, affine, (size, size)), apply_affine(landmarks, affine), affine)


def flip_face(face: Face, schema: LandmarkSchema | str | None = None) -> Face:
    """The face mirrored left-right: image columns reversed, landmarks mirrored and re-labelled by
    `schema` (or its name; None: the registered schema with the face's point count).

    meta["flipped"] is toggled, and a meta["crop_affine"] is composed with the mirror.
    """
    width = face.image.shape[1]
    meta = dict(face.meta, flipped=not face.meta.get("flipped", False))
    if "crop_affine" in meta:
        mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])
        meta["crop_affine"] = compose_affine(mirror, np.asarray(meta["crop_affine"], dtype=np.float64))
    return Face(np.ascontiguousarray(face.image[:, ::-1]), flip_landmarks(face.landmarks, width, schema), meta)
