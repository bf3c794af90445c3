"""What one synthetic face is made of: the 3D model of the 68 iBUG points and the spec dataclasses.

Holds the mean shape and its named point groups, the fixed head proportions (pivot, skull,
shading ellipsoid, jaw silhouette arcs), the hair styles and occluders a face may have, and
the frozen dataclasses (Pose, Identity, Expression, Appearance, Camera) that make up a
:class:`FaceSpec`. Model frame: x toward the image right, y down, z toward the camera; one unit
is half the jaw width (points 0 and 16 are 2 units apart).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

#: Mean 3D shape of the 68 iBUG points (x, y, z) in model units; x/y follow the mean of near-frontal
#: 300-W style markups, z (depth) is hand-set from typical head anthropometry.
MEAN_SHAPE = np.array([
    (-1.000, 0.000, -0.950), (-0.980, 0.270, -0.900), (-0.950, 0.530, -0.820), (-0.900, 0.780, -0.700),
    (-0.810, 1.030, -0.550), (-0.660, 1.230, -0.360), (-0.470, 1.410, -0.170), (-0.250, 1.550, -0.010),
    (0.000, 1.590, 0.050), (0.250, 1.550, -0.010), (0.470, 1.410, -0.170), (0.660, 1.230, -0.360),
    (0.810, 1.030, -0.550), (0.900, 0.780, -0.700), (0.950, 0.530, -0.820), (0.980, 0.270, -0.900),
    (1.000, 0.000, -0.950),  # 0-16 jaw
    (-0.830, -0.180, -0.300), (-0.700, -0.290, -0.120), (-0.520, -0.320, 0.000), (-0.340, -0.300, 0.080),
    (-0.170, -0.230, 0.120),  # 17-21 brow (image left)
    (0.170, -0.230, 0.120), (0.340, -0.300, 0.080), (0.520, -0.320, 0.000), (0.700, -0.290, -0.120),
    (0.830, -0.180, -0.300),  # 22-26 brow (image right)
    (0.000, -0.040, 0.080), (0.000, 0.130, 0.170), (0.000, 0.300, 0.260), (0.000, 0.480, 0.360),  # 27-30
    (-0.200, 0.590, 0.120), (-0.105, 0.620, 0.180), (0.000, 0.660, 0.220), (0.105, 0.620, 0.180),
    (0.200, 0.590, 0.120),  # 31-35 nose bottom
    (-0.620, -0.010, -0.220), (-0.510, -0.085, -0.060), (-0.380, -0.080, -0.020), (-0.260, 0.010, 0.000),
    (-0.390, 0.040, -0.020), (-0.520, 0.035, -0.070),  # 36-41 eye (image left)
    (0.260, 0.010, 0.000), (0.380, -0.080, -0.020), (0.510, -0.085, -0.060), (0.620, -0.010, -0.220),
    (0.520, 0.035, -0.070), (0.390, 0.040, -0.020),  # 42-47 eye (image right)
    (-0.410, 0.885, 0.050), (-0.260, 0.830, 0.160), (-0.110, 0.800, 0.230), (0.000, 0.825, 0.250),
    (0.110, 0.800, 0.230), (0.260, 0.830, 0.160), (0.410, 0.885, 0.050),  # 48-54 upper lip top
    (0.270, 1.035, 0.140), (0.120, 1.100, 0.200), (0.000, 1.115, 0.210), (-0.120, 1.100, 0.200),
    (-0.270, 1.035, 0.140),  # 55-59 lower lip bottom
    (-0.360, 0.895, 0.070), (-0.110, 0.915, 0.200), (0.000, 0.925, 0.220), (0.110, 0.915, 0.200),
    (0.360, 0.895, 0.070), (0.110, 0.915, 0.200), (0.000, 0.925, 0.220), (-0.110, 0.915, 0.200),  # 60-67
])

JAW = np.arange(0, 17)
BROWS = (np.arange(21, 16, -1), np.arange(22, 27))  # inner end first
NOSE_BOTTOM = np.arange(31, 36)
EYES = (np.arange(36, 42), np.arange(42, 48))
UPPER_LIP_TOP = np.arange(48, 55)
LOWER_LIP_BOTTOM = np.array([54, 55, 56, 57, 58, 59, 48])
INNER_UPPER = np.arange(60, 65)
INNER_LOWER = np.array([60, 67, 66, 65, 64])
EYELID_UPPER = ((37, 38), (43, 44))
EYELID_LOWER = ((41, 40), (47, 46))

#: Head rotations and the body's are about this point (the top of the neck).
PIVOT = np.array([0.0, 1.0, -0.9])
#: Cranium ellipsoid (centre, semi-axes): the head's outline above the jaw.
SKULL = (np.array([0.0, -0.35, -1.0]), np.array([1.06, 1.38, 1.32]))
#: Ellipsoid whose normals shade the head.
SHADING_HEAD = (np.array([0.0, 0.15, -0.75]), np.array([1.0, 1.65, 1.0]))
#: Silhouette arcs of the jaw: inward radius, depth toward the face front and toward the neck.
JAW_ARC_RADIUS, JAW_FRONT_Z, JAW_BACK_DEPTH = 0.6, 0.08, 0.45
ARC_LIMITS = (-0.6, 1.35)

HAIR_STYLES = ("bald", "buzz", "hairline", "bangs", "swept", "parted")
OCCLUDERS = ("none", "glasses", "sunglasses", "hand", "hat", "microphone", "object")


@dataclass(frozen=True)
class Pose:
    """Head rotation (degrees) and where the landmark box sits in the image."""

    yaw: float = 0.0  # + turns the face toward the image right
    pitch: float = 0.0  # + tilts the face up
    roll: float = 0.0  # + turns the face clockwise in the image
    scale: float = 0.55  # the landmark box's longer side as a fraction of the image side
    shift_x: float = 0.0  # -1..1: position of the box within the free room
    shift_y: float = 0.0


@dataclass(frozen=True)
class Identity:
    """Proportions of one person: multipliers (1 = mean) and offsets in model units (0 = mean)."""

    face_width: float = 1.0
    face_length: float = 1.0
    jaw_width: float = 1.0
    eye_size: float = 1.0
    eye_spacing: float = 0.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    brow_height: float = 0.0


@dataclass(frozen=True)
class Expression:
    """Facial expression; 0 everywhere is a neutral face looking ahead."""

    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    smile: float = 0.0  # -0.3 (mouth corners down) .. 1 (broad smile)
    brow_raise: float = 0.0  # -1 frown .. 1 raised
    eye_close_left: float = 0.0  # image-left eye (points 36-41): 0 open .. 1 shut
    eye_close_right: float = 0.0
    gaze_x: float = 0.0  # -1 .. 1, image right positive
    gaze_y: float = 0.0  # -1 .. 1, down positive


@dataclass(frozen=True)
class Appearance:
    """Colours (RGB 0-255), hair, clothing and what, if anything, covers part of the face."""

    skin: tuple[int, int, int] = (224, 172, 135)
    lips: tuple[int, int, int] = (180, 95, 95)
    iris: tuple[int, int, int] = (90, 60, 40)
    hair: tuple[int, int, int] = (50, 35, 25)
    hair_style: str = "hairline"  # one of HAIR_STYLES
    hair_long: bool = False
    hair_volume: float = 0.08  # hair thickness over the skull, model units
    hairline: float = -1.05  # y of the hairline (or fringe) at the face centre
    brow_density: float = 0.7  # 0 (faint) .. 1 (dark, full)
    brow_thickness: float = 1.0
    shirt: tuple[int, int, int] = (60, 80, 120)
    occluder: str = "none"  # one of OCCLUDERS


@dataclass(frozen=True)
class Camera:
    """Light and the camera's rendition: exposure, colour cast, blur, noise, JPEG."""

    light_azimuth: float = 200.0  # degrees in the image plane, 270 = light from above
    light_elevation: float = 55.0  # degrees above the image plane toward the camera
    ambient: float = 0.45
    shine: float = 0.1
    exposure: float = 1.0
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: float = 0.0  # Gaussian sigma in output pixels
    noise: float = 2.0  # Gaussian sigma in grey levels
    jpeg_quality: int = 0  # 0 = no JPEG round trip


@dataclass(frozen=True)
class FaceSpec:
    """Everything that decides one synthetic face; `detail_seed` drives the small random details."""

    size: int = 256
    pose: Pose = Pose()
    identity: Identity = Identity()
    expression: Expression = Expression()
    appearance: Appearance = Appearance()
    camera: Camera = Camera()
    detail_seed: int = 0

    def to_meta(self) -> dict[str, Any]:
        """A flat dict of plain values (the record metadata); `from_meta` inverts it."""
        meta: dict[str, Any] = {"size": self.size, "detail_seed": self.detail_seed}
        for part in (self.pose, self.identity, self.expression, self.appearance, self.camera):
            meta.update(asdict(part))
        return meta

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> FaceSpec:
        """The spec a `to_meta` dict describes (extra keys are ignored; lists become tuples)."""
        def build(kind: type) -> Any:
            return kind(**{f.name: _plain(meta[f.name]) for f in fields(kind)})
        return cls(size=int(meta["size"]), pose=build(Pose), identity=build(Identity),
                   expression=build(Expression), appearance=build(Appearance), camera=build(Camera),
                   detail_seed=int(meta["detail_seed"]))


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
