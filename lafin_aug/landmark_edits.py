"""Landmark-edit augmentation: new geometry inside the hole, which the inpainter then paints to match.

LaFIn's Fig. 8 shows the generator following an edited landmark template. Only facial parts whose
every point lies inside the mask hole are edited, so the unmasked pixels (kept from the real photo)
never contradict the new labels. Edits: open or close the mouth, close an eye, raise a brow, and a
small rigid jitter of a part.
"""
from __future__ import annotations

import numpy as np

from lafin_aug.landmarks import schema_for

#: how far an edit moves points, as a fraction of the inter-ocular distance
EDIT_STRENGTH = 0.12


def _inside(mask: np.ndarray, points: np.ndarray) -> bool:
    height, width = mask.shape
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    on_image = (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    return bool(on_image.all() and mask[ys, xs].all())


def _open_mouth(part: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Points below the mouth's centre line move down, those above move up (negative: close)."""
    centre = part[:, 1].mean()
    amount = rng.uniform(-0.5, 1.0) * scale
    spread = np.clip((part[:, 1] - centre) / (np.ptp(part[:, 1]) / 2 + 1e-6), -1, 1)
    moved = part.copy()
    moved[:, 1] += amount * spread
    return moved


def _close_eye(part: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid points pulled towards the eye's horizontal centre line."""
    centre = part[:, 1].mean()
    moved = part.copy()
    moved[:, 1] = centre + (part[:, 1] - centre) * rng.uniform(0.1, 0.7)
    return moved


def _shift(part: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A small rigid move and rotation of the part about its centre."""
    centre = part.mean(axis=0)
    angle = rng.uniform(-0.15, 0.15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (part - centre) @ rotation.T + centre + rng.uniform(-0.5, 0.5, 2) * scale


EDITS = {"lips": _open_mouth, "eye_left": _close_eye, "eye_right": _close_eye,
         "brow_left": _shift, "brow_right": _shift, "nose": _shift}


def edit_landmarks(landmarks: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                   strength: float = EDIT_STRENGTH) -> tuple[np.ndarray, bool]:
    """(edited [P,2] landmarks, whether anything changed): parts lying wholly in the hole are edited."""
    schema = schema_for(len(landmarks))
    a, b = schema.eye_corners
    scale = strength * float(np.linalg.norm(landmarks[a] - landmarks[b]))
    edited = landmarks.astype(np.float32, copy=True)
    changed = False
    for group, edit in EDITS.items():
        indices = np.asarray(schema.groups[group])
        moved = edit(edited[indices], scale, rng)
        if _inside(mask, edited[indices]) and _inside(mask, moved):
            edited[indices] = moved
            changed = True
    return edited, changed
