"""Landmark schemas as registered data: points, flip pairs, eye corners, groups, boundaries, names, map to 68.

A schema is registered by name (:func:`register_schema`, looked up with :func:`get_schema`); a
reader declares the name of its faces' schema, and flipping, the NME normaliser, crops and maps to
iBUG 68 read that table instead of branching on a point count. Functions that get bare arrays take
an optional `schema` (a schema or its name); without one they use :func:`schema_for`, the one
registered schema with that many points.

"Left" and "right" in names below mean the image's left and right (the viewer's), which is
the iBUG/WFLW markup convention: iBUG points 36-41 are the eye on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lafin_aug.registry import Registry


def _chain(start: int, stop: int) -> tuple[int, ...]:
    """Indices start..stop inclusive."""
    return tuple(range(start, stop + 1))


@dataclass(frozen=True)
class LandmarkSchema:
    """Everything the toolkit needs to know about one landmark markup.

    flip_pairs: the (image-left, image-right) point pairs a mirror swaps; eye_corners: the two
    ground-truth points whose distance normalises the NME (the outer eye corners); groups: face
    parts as point sets; boundaries: polylines (LAB's boundary heatmaps, parsing maps); names: one
    per point (empty: unnamed); ibug68: the indices that give iBUG's 68 points in iBUG order (None:
    no such map). ValueError on an index outside 0..num_points-1.
    """

    name: str
    num_points: int
    flip_pairs: tuple[tuple[int, int], ...]
    eye_corners: tuple[int, int]
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    boundaries: dict[str, tuple[int, ...]] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    ibug68: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        indices = [i for pair in self.flip_pairs for i in pair] + list(self.eye_corners)
        indices += [i for table in (self.groups, self.boundaries) for line in table.values() for i in line]
        indices += list(self.ibug68 or ())
        bad = sorted({i for i in indices if not 0 <= i < self.num_points})
        if bad:
            raise ValueError(f"landmark schema {self.name!r}: indices {bad} outside 0..{self.num_points - 1}")
        if self.names and len(self.names) != self.num_points:
            raise ValueError(f"landmark schema {self.name!r}: {len(self.names)} names for {self.num_points} points")
        if self.ibug68 is not None and len(self.ibug68) != 68:
            raise ValueError(f"landmark schema {self.name!r}: its iBUG-68 map has {len(self.ibug68)} indices, not 68")

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
    return LandmarkSchema("ibug68", 68, tuple(pairs), (36, 45), groups, boundaries, ibug68=_chain(0, 67))


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
    return LandmarkSchema("wflw98", 98, tuple(pairs), (60, 72), groups, boundaries, ibug68=WFLW98_TO_IBUG68)


#: Community mapping from WFLW's 98 points to iBUG's 68 (maps 36->60 and 45->72).
WFLW98_TO_IBUG68: tuple[int, ...] = (
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 42, 43, 44,
    45, 46, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75, 76,
    77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
)

#: schema name -> schema; a reader names its faces' schema (`FaceReader.schema_name`)
SCHEMAS: Registry[LandmarkSchema] = Registry("landmark schema")


def register_schema(schema: LandmarkSchema) -> LandmarkSchema:
    """Make `schema` known by its name (and, when its point count is unique, by that count)."""
    return SCHEMAS.add(schema.name, schema)


def get_schema(name: str) -> LandmarkSchema:
    """The schema registered as `name`; ValueError listing the registered names otherwise."""
    return SCHEMAS.get(name)


IBUG68 = register_schema(_ibug68())
WFLW98 = register_schema(_wflw98())


def schema_for(num_points: int) -> LandmarkSchema:
    """The one registered schema with this many points; ValueError when none or several have it."""
    schemas = [SCHEMAS.get(name) for name in SCHEMAS]
    found = [schema for schema in schemas if schema.num_points == num_points]
    if len(found) != 1:
        known = ", ".join(f"{schema.name} ({schema.num_points})" for schema in schemas)
        problem = "no" if not found else "more than one"
        raise ValueError(f"{problem} landmark schema with {num_points} points (registered: {known})"
                         + ("; name the schema" if found else ""))
    return found[0]


def resolve_schema(schema: LandmarkSchema | str | None, num_points: int) -> LandmarkSchema:
    """`schema` (or the one registered under that name) for landmarks of `num_points` points, or
    :func:`schema_for` of the count when None; ValueError when the counts differ."""
    found = schema_for(num_points) if schema is None else get_schema(schema) if isinstance(schema, str) else schema
    if found.num_points != num_points:
        raise ValueError(f"landmark schema {found.name!r} has {found.num_points} points, the landmarks {num_points}")
    return found


def flip_landmarks(landmarks: np.ndarray, width: int, schema: LandmarkSchema | str | None = None) -> np.ndarray:
    """Mirror [P,2] pixel-index landmarks of an image `width` pixels wide: x' = W-1-x, then swap sides."""
    permutation = resolve_schema(schema, len(landmarks)).flip_permutation
    mirrored = landmarks.astype(np.float32, copy=True)
    mirrored[:, 0] = (width - 1) - mirrored[:, 0]
    return mirrored[permutation]


def to_ibug68(landmarks: np.ndarray, schema: LandmarkSchema | str | None = None) -> np.ndarray:
    """The [68,2] iBUG points of one face's landmarks; ValueError when its schema has no iBUG-68 map."""
    found = resolve_schema(schema, len(landmarks))
    if found.ibug68 is None:
        raise ValueError(f"cannot map {len(landmarks)} points to iBUG 68: schema {found.name!r} has no iBUG-68 map")
    return landmarks[list(found.ibug68)]


def inter_ocular(landmarks: np.ndarray, schema: LandmarkSchema | str | None = None) -> float:
    """Distance between the outer eye corners of one face's [P,2] landmarks."""
    a, b = resolve_schema(schema, len(landmarks)).eye_corners
    return float(np.linalg.norm(landmarks[a] - landmarks[b]))
