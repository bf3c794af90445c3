"""Record transforms for ``AugmentedShards(..., transform=...)`` built from array-level augmentations.

- :class:`ArrayTransform` wraps ``fn(image, landmarks, mask) -> (image, landmarks, mask)`` on numpy
  arrays (image HxWx3 uint8 RGB, landmarks float32 [P,2] pixel-index, mask HxW uint8 in {0,1}), so
  image, points and mask change together and the other record fields pass through;
- :func:`albumentations_transform` builds one from albumentations transforms: the points go in as
  ``xy`` keypoints (never dropped, so the point count stays P), the mask as ``mask=``, and after a
  mirroring transform the points are relabelled with the schema's left/right permutation.

Detecting a mirror: three probe keypoints, the corners of a right-angled triangle spanning the
middle half of the image, go through the transforms with the landmarks and are removed after.
The sign of the triangle's signed area after the transforms is the sign of the determinant of the
(locally affine) map, so it is negative exactly when the map reverses orientation: an odd number of
HorizontalFlip, VerticalFlip, Transpose or D4 reflections, whatever the transforms are called or
however they are nested in OneOf/SomeOf. Rotations, crops and resizes keep the sign. A vertically
mirrored face is a horizontally mirrored one turned by 180 degrees, so it needs the same swap.
albumentations mirrors pixel-index points as x' = W-1-x, as this project does (its Resize, though,
scales points as x' = s x rather than (x + 0.5) s - 0.5).

Random state: albumentations 2.0 draws from a generator owned by the ``Compose``, which forked
DataLoader workers would inherit identically (every worker augmenting the same way). In a worker the
Compose is reseeded from the worker's torch seed on its first record, so workers differ, a new
non-persistent worker (a new epoch) draws anew, and ``torch.manual_seed`` in the main process makes
the run reproducible. Outside a worker the Compose keeps its own state.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from lafin_aug.images import to_tensor, to_uint8
from lafin_aug.landmarks import LandmarkSchema, resolve_schema

#: fn(image HxWx3 uint8, landmarks [P,2] float32, mask HxW uint8) -> the same three, transformed
ArrayFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class ArrayTransform:
    """A record transform (``record -> record``) applying `fn` to the record's image, landmarks and
    mask as numpy arrays (see the module docstring); ValueError when `fn` changes the point count
    or returns a mask of another size than its image."""

    def __init__(self, fn: ArrayFunction):
        self.fn = fn

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        landmarks = record["landmarks"].numpy()
        image = np.ascontiguousarray(to_uint8(record["image"][None])[0])
        image, points, mask = self.fn(image, landmarks.copy(), record["mask"][0].numpy().copy())
        points = np.ascontiguousarray(points, np.float32)
        if points.shape != landmarks.shape:
            raise ValueError(f"{self.fn!r} returned landmarks of shape {points.shape} for {landmarks.shape}: "
                             f"a transform must keep every point")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{self.fn!r} returned a mask of shape {mask.shape} for an image of shape {image.shape}")
        return {**record, "image": to_tensor(image[None])[0], "landmarks": torch.from_numpy(points),
                "mask": torch.from_numpy(np.ascontiguousarray(mask, np.uint8)[None])}


def _probes(height: int, width: int) -> np.ndarray:
    """Three points spanning the middle half of an image (a right-angled triangle)."""
    return np.array([[width / 4, height / 4], [width / 4, 3 * height / 4], [3 * width / 4, height / 4]], np.float32)


def _signed_area(triangle: np.ndarray) -> float:
    """Twice the signed area of a [3,2] triangle."""
    (ax, ay), (bx, by) = triangle[1] - triangle[0], triangle[2] - triangle[0]
    return float(ax * by - ay * bx)


class _Albumentations:
    """The array function of :func:`albumentations_transform`."""

    def __init__(self, compose: Any, schema: LandmarkSchema | str | None):
        self.compose, self.schema = compose, schema
        self._seeded_worker: int | None = None  # the worker seed the Compose was reseeded with

    def __repr__(self) -> str:
        return f"albumentations_transform({self.compose.transforms!r})"

    def _reseed_in_worker(self) -> None:
        """Reseed the Compose once per DataLoader worker process, from the worker's seed."""
        info = get_worker_info()
        if info is not None and info.seed != self._seeded_worker:
            self.compose.set_random_seed(info.seed % 2**32)
            self._seeded_worker = info.seed

    def __call__(self, image: np.ndarray, landmarks: np.ndarray,
                 mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._reseed_in_worker()
        probes = _probes(*image.shape[:2])
        out = self.compose(image=image, mask=mask, keypoints=np.concatenate([landmarks, probes]))
        points = np.asarray(out["keypoints"], np.float32)[:, :2]
        points, moved = points[:len(landmarks)], points[len(landmarks):]
        if _signed_area(moved) * _signed_area(probes) < 0:  # mirrored: relabel left/right
            points = points[resolve_schema(self.schema, len(points)).flip_permutation]
        return out["image"], points, out["mask"]


def albumentations_transform(transforms: Sequence[Any], schema: LandmarkSchema | str | None = None) -> ArrayTransform:
    """A record transform applying albumentations `transforms` (a list, composed here) to image,
    landmarks and mask together, relabelling left/right points after a mirror (module docstring)
    with the flip pairs of `schema` (default: the one registered schema with the records' point count).

    ImportError saying how to install albumentations when it is missing; ValueError from a mirrored
    record whose point count has no schema, or not `schema`'s.
    """
    try:
        import albumentations as A
    except ImportError as exc:
        raise ImportError("albumentations_transform needs albumentations: pip install 'lafin-aug[clients]' "
                          "(or pip install albumentations)") from exc
    compose = A.Compose(list(transforms), keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
    return ArrayTransform(_Albumentations(compose, schema))
