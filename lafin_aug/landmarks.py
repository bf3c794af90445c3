"""Landmark schemas as data: point counts, flip permutations, eye corners, groups, boundaries.

"Left" and "right" in names below mean the image's left and right (the viewer's), which is
the iBUG/WFLW markup convention: iBUG points 36-41 are the eye on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _chain(start: int, stop: int) -> tuple[int, ...]:
    """Indices start..stop inclusive."""
    return tuple(range(start, stop + 1))


@dataclass(frozen=True)
class LandmarkSchema:
    """Everything the toolkit needs to know about one landmark markup."""

    name: str
    num_points: int
    flip_pairs: tuple[tuple[int, int], ...]
    eye_corners: tuple[int, int]
    groups: dict[str, tuple[int, ...]]
    boundaries: dict[str, tuple[int, ...]]

    @property
    def flip_permutation(self) -> np.ndarray:
        """perm such that flipped[i] = mirrored(original[perm[i]])."""
        perm = np.arange(self.num_points)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _ibug68() -> LandmarkSchema:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    groups = {
        "jaw": _chain(0, 16),
        "brow_left": _chain(17, 21),
        "brow_right": _chain(22, 26),
        "nose": _chain(27, 35),
        "eye_left": _chain(36, 41),
        "eye_right": _chain(42, 47),
        "lips": _chain(48, 67),
    }
    boundaries = {
        "contour": _chain(0, 16),
        "brow_left": _chain(17, 21),
        "brow_right": _chain(22, 26),
        "nose_bridge": _chain(27, 30),
        "nose_bottom": _chain(31, 35),
        "eyelid_left_upper": _chain(36, 39),
        "eyelid_left_lower": (39, 40, 41, 36),
        "eyelid_right_upper": _chain(42, 45),
        "eyelid_right_lower": (45, 46, 47, 42),
        "upper_lip_top": _chain(48, 54),
        "upper_lip_bottom": (48, 60, 61, 62, 63, 64, 54),
        "lower_lip_top": (48, 60, 67, 66, 65, 64, 54),
        "lower_lip_bottom": (54, 55, 56, 57, 58, 59, 48),
    }
    return LandmarkSchema("ibug68", 68, tuple(pairs), (36, 45), groups, boundaries)


def _wflw98() -> LandmarkSchema:
    pairs = [(i, 32 - i) for i in range(16)]  # jaw
    pairs += [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42)]  # brow tops
    pairs += [(38, 50), (39, 49), (40, 48), (41, 47)]  # brow bottoms
    pairs += [(55, 59), (56, 58)]  # nostrils
    pairs += [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
    pairs += [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86)]  # outer lips
    pairs += [(88, 92), (89, 91), (93, 95), (96, 97)]  # inner lips, pupils
    groups = {
        "jaw": _chain(0, 32),
        "brow_left": _chain(33, 41),
        "brow_right": _chain(42, 50),
        "nose": _chain(51, 59),
        "eye_left": _chain(60, 67) + (96,),
        "eye_right": _chain(68, 75) + (97,),
        "lips": _chain(76, 95),
    }
    boundaries = {
        "contour": _chain(0, 32),
        "brow_left": _chain(33, 41) + (33,),
        "brow_right": _chain(42, 50) + (42,),
        "nose_bridge": _chain(51, 54),
        "nose_bottom": _chain(55, 59),
        "eyelid_left_upper": _chain(60, 64),
        "eyelid_left_lower": (64, 65, 66, 67, 60),
        "eyelid_right_upper": _chain(68, 72),
        "eyelid_right_lower": (72, 73, 74, 75, 68),
        "upper_lip_top": _chain(76, 82),
        "upper_lip_bottom": (76, 88, 89, 90, 91, 92, 82),
        "lower_lip_top": (76, 88, 95, 94, 93, 92, 82),
        "lower_lip_bottom": (82, 83, 84, 85, 86, 87, 76),
    }
    return LandmarkSchema("wflw98", 98, tuple(pairs), (60, 72), groups, boundaries)


IBUG68 = _ibug68()
WFLW98 = _wflw98()
SCHEMAS: dict[int, LandmarkSchema] = {68: IBUG68, 98: WFLW98}

#: Community mapping from WFLW's 98 points to iBUG's 68 (maps 36->60 and 45->72).
WFLW98_TO_IBUG68: tuple[int, ...] = (
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 42, 43, 44,
    45, 46, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75, 76,
    77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
)


def schema_for(num_points: int) -> LandmarkSchema:
    """The schema with this many points; ValueError for an unknown count."""
    try:
        return SCHEMAS[num_points]
    except KeyError:
        raise ValueError(f"no landmark schema with {num_points} points (known: {sorted(SCHEMAS)})") from None


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Mirror [P,2] pixel-index landmarks of an image `width` pixels wide: x' = W-1-x, then swap sides."""
    schema = schema_for(len(landmarks))
    mirrored = landmarks.astype(np.float32, copy=True)
    mirrored[:, 0] = (width - 1) - mirrored[:, 0]
    return mirrored[schema.flip_permutation]


def to_ibug68(landmarks: np.ndarray) -> np.ndarray:
    """The 68-point iBUG subset of 98-point WFLW landmarks; 68-point input is returned as is."""
    if len(landmarks) == 68:
        return landmarks
    if len(landmarks) == 98:
        return landmarks[list(WFLW98_TO_IBUG68)]
    raise ValueError(f"cannot map {len(landmarks)} points to iBUG 68")


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners of one face's [P,2] landmarks."""
    a, b = schema_for(len(landmarks)).eye_corners
    return float(np.linalg.norm(landmarks[a] - landmarks[b]))
