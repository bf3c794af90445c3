"""Classic detector-training transforms of face crops: flip, rotation/scale, colour jitter.

Every transform keeps the point count and moves image and landmarks together (pixel-index
coordinates). Parameters come from a numpy Generator, so a trainer seeding it from (seed, step)
gets the same augmentation on resume.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lafin_aug.config import Config
from lafin_aug.data.crop import apply_affine
from lafin_aug.landmarks import LandmarkSchema, flip_landmarks


@dataclass(frozen=True)
class TransformConfig(Config):
    """Ranges of the standard augmentation; zeros turn a transform off."""

    flip: float = 0.5  # probability of a horizontal flip
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.05  # relative, uniform in [1 - scale, 1 + scale]
    shift: float = 0.03  # fraction of the crop size
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


def rotation_affine(size: int, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """2x3 affine rotating/scaling about the crop centre ((S-1)/2, (S-1)/2), then shifting by `shift` px."""
    centre = (size - 1) / 2
    theta = np.deg2rad(degrees)
    linear = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    offset = np.array([centre, centre]) - linear @ np.array([centre, centre]) + np.asarray(shift)
    return np.hstack([linear, offset[:, None]])


def colour_jitter(image: np.ndarray, rng: np.random.Generator, config: TransformConfig) -> np.ndarray:
    """Random brightness, contrast and saturation change of a uint8 RGB image."""
    x = image.astype(np.float32)
    x *= 1 + rng.uniform(-config.brightness, config.brightness)
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * (1 + rng.uniform(-config.saturation, config.saturation)) + grey
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def transform_face(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                 config: TransformConfig = TransformConfig(),
                 schema: LandmarkSchema | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One randomly augmented copy of a square crop and its [P,2] landmarks (`schema` re-labels a flip;
    None: the registered schema with P points)."""
    size = image.shape[0]
    if config.flip and rng.random() < config.flip:
        image = np.ascontiguousarray(image[:, ::-1])
        landmarks = flip_landmarks(landmarks, size, schema)
    if config.rotation or config.scale or config.shift:
        affine = rotation_affine(size, rng.uniform(-config.rotation, config.rotation),
                                 1 + rng.uniform(-config.scale, config.scale),
                                 tuple(rng.uniform(-config.shift, config.shift, 2) * size))
        image = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        landmarks = apply_affine(landmarks, affine)
    if config.brightness or config.contrast or config.saturation:
        image = colour_jitter(image, rng, config)
    return image, landmarks.astype(np.float32)
