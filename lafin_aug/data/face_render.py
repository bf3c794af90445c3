"""Synthetic faces drawn on a posable 3D model of the 68 iBUG points.

The landmarks returned with an image are the projected model points, and every drawn feature
(the jaw silhouette, eyelids, lips, brows, nostrils) passes through them: the labels are exact.
Model frame: x toward the image right, y down, z toward the camera; one unit is half the jaw
width (points 0 and 16 are 2 units apart).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property, lru_cache
from typing import Any

import cv2
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


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------

def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Model-to-camera rotation for angles in degrees (signs as documented on Pose)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def identity_shape(identity: Identity) -> np.ndarray:
    """The mean shape deformed to one person's proportions, [68,3]."""
    shape = MEAN_SHAPE.copy()
    lower = np.clip(shape[:, 1] - 0.3, 0, 1)  # 0 above the nose tip, 1 at the chin
    shape[JAW, 0] *= 1 + (identity.jaw_width - 1) * lower[JAW]
    shape[:, 1] = np.where(shape[:, 1] > 0, shape[:, 1] * identity.face_length, shape[:, 1])
    for eye in EYES:
        centre = shape[eye].mean(0)
        shape[eye] = centre + (shape[eye] - centre) * identity.eye_size
        shape[eye, 0] += math.copysign(identity.eye_spacing, centre[0])
    nose = np.arange(28, 36)
    shape[nose, 1] = shape[27, 1] + (shape[nose, 1] - shape[27, 1]) * identity.nose_length
    shape[nose, 2] *= 0.8 + 0.2 * identity.nose_length
    shape[NOSE_BOTTOM, 0] *= identity.nose_width
    _scale_lips(shape, identity.mouth_width, identity.lip_thickness)
    brows = np.arange(17, 27)
    shape[brows, 1] -= identity.brow_height
    shape[:, 0] *= identity.face_width
    return shape


def _scale_lips(shape: np.ndarray, width: float, thickness: float) -> None:
    line_y = shape[62, 1]
    shape[48:68, 0] *= width
    outer = np.arange(48, 60)
    shape[outer, 1] = line_y + (shape[outer, 1] - line_y) * thickness


def apply_expression(shape: np.ndarray, expression: Expression) -> np.ndarray:
    """`shape` [68,3] with the mouth, smile, eyelid and brow deformations applied."""
    shape = shape.copy()
    _smile(shape, expression.smile)
    _open_mouth(shape, expression.mouth_open)
    for eye, closing in enumerate((expression.eye_close_left, expression.eye_close_right)):
        _close_eye(shape, eye, closing)
    _raise_brows(shape, expression.brow_raise)
    return shape


def _smile(shape: np.ndarray, smile: float) -> None:
    weight = np.zeros(68)
    weight[[48, 54, 60, 64]] = 1.0
    weight[[49, 53, 59, 55]] = 0.55
    weight[[50, 52, 58, 56, 61, 63, 65, 67]] = 0.2
    shape[:, 0] *= 1 + 0.14 * smile * weight
    shape[:, 1] -= 0.09 * smile * weight
    shape[:, 2] -= 0.05 * smile * weight
    cheeks = np.array([2, 3, 4, 12, 13, 14])
    shape[cheeks, 0] *= 1 + 0.025 * max(smile, 0)
    for lower in EYELID_LOWER:  # cheeks push the lower lids up
        shape[list(lower), 1] -= 0.012 * max(smile, 0)


def _open_mouth(shape: np.ndarray, amount: float) -> None:
    drop = 0.34 * amount
    lower_lip = np.array([55, 56, 57, 58, 59, 65, 66, 67])
    shape[lower_lip, 1] += drop
    shape[[61, 62, 63], 1] -= 0.1 * drop
    shape[[60, 64], 1] += 0.35 * drop
    shape[[48, 54], 1] += 0.3 * drop
    shape[lower_lip, 0] *= 1 - 0.12 * amount
    jaw_weight = np.clip((shape[JAW, 1] - 0.4) / 1.1, 0, 1) ** 1.5
    shape[JAW, 1] += 0.9 * drop * jaw_weight
    shape[JAW, 0] *= 1 - 0.06 * amount * jaw_weight


def _close_eye(shape: np.ndarray, eye: int, closing: float) -> None:
    if closing <= 0:
        return
    upper, lower = list(EYELID_UPPER[eye]), list(EYELID_LOWER[eye])
    line = shape[lower] + (shape[upper] - shape[lower]) * 0.25
    shape[upper] += (line - shape[upper]) * closing
    shape[lower] += (line - shape[lower]) * closing


def _raise_brows(shape: np.ndarray, raise_: float) -> None:
    for brow in BROWS:
        inner_weight = np.linspace(1.0, 0.6, len(brow))
        if raise_ >= 0:
            shape[brow, 1] -= 0.09 * raise_ * inner_weight
        else:  # frown: inner ends down and toward each other
            shape[brow, 1] -= 0.06 * raise_ * inner_weight
            shape[brow, 0] *= 1 + 0.06 * raise_ * inner_weight


def _outward_normals(curve: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Unit normals [N,2] of a 2D polyline, each pointing away from `centre`."""
    ahead = np.concatenate([curve[1:], curve[-1:]])
    behind = np.concatenate([curve[:1], curve[:-1]])
    tangent = ahead - behind
    normal = tangent[:, ::-1] * (1.0, -1.0)
    normal /= np.sqrt(np.sum(normal * normal, axis=1, keepdims=True)) + 1e-12
    flip = np.sum(normal * (curve - centre), axis=1) < 0
    normal[flip] *= -1
    return normal


def silhouette(points: np.ndarray, normals: np.ndarray, rot: np.ndarray, depth_front: np.ndarray,
               depth_back: float, radius: float, limits: tuple[float, float]) -> np.ndarray:
    """Move contour points [N,3] along their surface arcs to where the head's outline is seen.

    Each point sits on a quarter ellipse that runs from it (the outline seen from the front)
    inward to the face front (`depth_front` ahead) and back toward the neck or ear (`depth_back`
    behind); the outline seen under `rot` is where that arc's normal is perpendicular to the view.
    """
    n3 = np.concatenate([normals, np.zeros((len(normals), 1))], axis=1)
    towards_camera = n3 @ rot[2]
    depth = np.where(towards_camera < 0, depth_front, depth_back)
    t = np.arctan(-towards_camera * depth / (radius * rot[2, 2]))
    t = np.clip(t, *limits)[:, None]
    z = np.array([0.0, 0.0, 1.0])
    return points - n3 * radius * (1 - np.cos(t)) + z * depth[:, None] * np.sin(t)


@dataclass
class Projection:
    """Weak perspective: image = scale * (R (X - pivot) + pivot)[:2] + offset, in output pixels."""

    rot: np.ndarray
    body_rot: np.ndarray
    scale: float
    offset: np.ndarray

    def head(self, points: np.ndarray) -> np.ndarray:
        """Image positions [N,2] of model points [N,3] on the head."""
        return self._project(points, self.rot)

    def body(self, points: np.ndarray) -> np.ndarray:
        """Image positions [N,2] of points [N,3] on the neck and shoulders (which turn less)."""
        return self._project(points, self.body_rot)

    def _project(self, points: np.ndarray, rot: np.ndarray) -> np.ndarray:
        posed = (np.atleast_2d(points) - PIVOT) @ rot.T + PIVOT
        return self.scale * posed[:, :2] + self.offset


@dataclass
class FaceGeometry:
    """A posed face: the model points, their projection and the 68 landmarks in output pixels."""

    spec: FaceSpec
    shape: np.ndarray  # [68,3] model points, jaw moved onto the seen silhouette
    projection: Projection
    landmarks: np.ndarray  # [68,2] float32, pixel-index coordinates of the output image

    def point(self, *model_xyz: float) -> np.ndarray:
        """Image position of one head point given in model units."""
        return self.projection.head(np.array([model_xyz], dtype=float))[0]

    @cached_property
    def lips(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Smooth image curves through the lip points: outer top, inner top, inner bottom, outer bottom."""
        lm = self.landmarks.astype(float)
        return (spline(lm[UPPER_LIP_TOP]), spline(lm[INNER_UPPER]), spline(lm[INNER_LOWER]),
                spline(lm[LOWER_LIP_BOTTOM]))

    @cached_property
    def nose_wings(self) -> tuple[np.ndarray, np.ndarray]:
        """Image curves of the left and right nostril wings, from points 31 and 35 upward."""
        wings = []
        for base, side in ((31, -1.0), (35, 1.0)):
            outer = self.shape[base] + (side * 0.055, -0.07, -0.03)
            top = self.shape[base] + (side * 0.01, -0.16, 0.0)
            wings.append(spline(self.projection.head(np.stack([self.shape[base], outer, top])), samples=5))
        return wings[0], wings[1]


def face_geometry(spec: FaceSpec) -> FaceGeometry:
    """Pose, silhouette and placement of the face that `spec` describes."""
    pose = spec.pose
    rot = rotation(pose.yaw, pose.pitch, pose.roll)
    body_rot = rotation(0.3 * pose.yaw, 0.0, 0.3 * pose.roll)
    shape = apply_expression(identity_shape(spec.identity), spec.expression)
    jaw = shape[JAW]
    normals = _outward_normals(jaw[:, :2], np.array([0.0, 0.3]))
    depth_front = np.maximum(JAW_FRONT_Z - jaw[:, 2], 0.05)
    shape[JAW] = silhouette(jaw, normals, rot, depth_front, JAW_BACK_DEPTH, JAW_ARC_RADIUS, ARC_LIMITS)
    unit = Projection(rot, body_rot, 1.0, np.zeros(2))
    raw = unit.head(shape)
    low, high = raw.min(0), raw.max(0)
    size = spec.size
    scale = pose.scale * size / float(np.max(high - low))
    margin = 0.04 * size
    room = np.maximum((size - 1 - 2 * margin) - scale * (high - low), 0.0)
    centre = size / 2 - 0.5 + np.array([pose.shift_x, pose.shift_y]) * room / 2
    offset = centre - scale * (low + high) / 2
    projection = Projection(rot, body_rot, scale, offset)
    landmarks = projection.head(shape).astype(np.float32)
    return FaceGeometry(spec, shape, projection, landmarks)


def ellipsoid_outline(projection: Projection, centre: np.ndarray, axes: np.ndarray,
                      angles: np.ndarray) -> np.ndarray:
    """Image points of a head-frame ellipsoid's projected outline in directions `angles` (radians)."""
    quadric = projection.rot @ np.diag(1 / np.square(axes)) @ projection.rot.T
    flat = quadric[:2, :2] - np.outer(quadric[:2, 2], quadric[2, :2]) / quadric[2, 2]
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    radius = 1 / np.sqrt(np.einsum("ni,ij,nj->n", direction, flat, direction))
    return projection.head(centre[None])[0] + projection.scale * radius[:, None] * direction


def arc_over_top(start: np.ndarray, end: np.ndarray, centre: np.ndarray, count: int) -> np.ndarray:
    """`count` angles from the direction of `start` over the top (image up) to that of `end`."""
    a = math.atan2(start[1] - centre[1], start[0] - centre[0])
    b = math.atan2(end[1] - centre[1], end[0] - centre[0])
    if b > a:
        b -= 2 * math.pi
    return np.linspace(a, b, count)


def spline(points: np.ndarray, closed: bool = False, samples: int = 6) -> np.ndarray:
    """A Catmull-Rom curve [M,2] through `points` [N,2] (it passes through every point)."""
    p = np.asarray(points, dtype=float)
    if len(p) < 3:
        return p
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
        segments = len(p)
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
        segments = len(p) - 1
    controls = ext[np.arange(segments)[:, None] + np.arange(4)]  # [segments, 4, 2]
    curve = (_catmull_rom_basis(samples) @ controls).reshape(-1, 2)
    return curve if closed else np.concatenate([curve, p[-1:]])


@lru_cache(maxsize=16)
def _catmull_rom_basis(samples: int) -> np.ndarray:
    """Weights [samples, 4] of the four control points at `samples` steps along one segment."""
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    return 0.5 * np.hstack([-t + 2 * t ** 2 - t ** 3, 2 - 5 * t ** 2 + 3 * t ** 3,
                            t + 4 * t ** 2 - 3 * t ** 3, -t ** 2 + t ** 3])


# ----------------------------------------------------------------------------------------------
# Painting
# ----------------------------------------------------------------------------------------------

Colour = tuple[float, float, float]


def mix(a: Colour, b: Colour, t: float) -> Colour:
    """The colour a fraction `t` of the way from `a` to `b`."""
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))


def tint(colour: Colour, factor: float) -> Colour:
    """`colour` scaled by `factor` (clipped to 255)."""
    return tuple(float(min(255.0, x * factor)) for x in colour)


def ellipse_points(centre: np.ndarray, axes: tuple[float, float], angle: float, count: int = 24,
                   exponent: float = 2.0) -> np.ndarray:
    """Outline [count,2] of an ellipse (a superellipse for exponent > 2) turned by `angle` radians."""
    local = _unit_superellipse(count, exponent) * axes
    c, s = math.cos(angle), math.sin(angle)
    return centre + local @ np.array([[c, s], [-s, c]])


@lru_cache(maxsize=64)
def _unit_superellipse(count: int, exponent: float) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, count, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    power = 2.0 / exponent
    return np.stack([np.sign(c) * np.abs(c) ** power, np.sign(s) * np.abs(s) ** power], 1)


class Painter:
    """Draws in output-pixel coordinates on a canvas twice the output size (for anti-aliasing).

    Besides the RGB canvas it keeps `shaded`, the mask of what the light map shades (the person:
    fills mark it, and while `occluding` fills and strokes clear it), and `light`, a half-size map
    of shading offsets (feature shadows) added to the head's shading.
    """

    SHIFT = 4  # fixed-point fraction bits for OpenCV drawing

    def __init__(self, size: int):
        self.size = size
        self.canvas = np.zeros((2 * size, 2 * size, 3), np.uint8)
        self.shaded = np.zeros((2 * size, 2 * size), np.uint8)
        self.light = np.zeros((size // 2, size // 2), np.float32)
        self.occluding = False

    @staticmethod
    def _fixed(points: np.ndarray) -> np.ndarray:
        """Output pixels -> fixed-point canvas pixels (pixel-index centres: x2 = 2x + 0.5)."""
        return np.rint(np.asarray(points, dtype=float) * 32 + 8).astype(np.int32)

    def fill(self, points: np.ndarray, colour: Colour) -> None:
        """Fill a polygon."""
        fixed = [self._fixed(points)]
        cv2.fillPoly(self.canvas, fixed, colour, cv2.LINE_AA, self.SHIFT)
        cv2.fillPoly(self.shaded, fixed, 0 if self.occluding else 255, cv2.LINE_8, self.SHIFT)

    def stroke(self, points: np.ndarray, colour: Colour, width: float, closed: bool = False) -> None:
        """A polyline `width` output pixels wide."""
        self.strokes([points], colour, width, closed)

    def strokes(self, lines: list[np.ndarray] | np.ndarray, colour: Colour, width: float,
                closed: bool = False) -> None:
        """Several polylines of one colour and width (a list, or an array [lines, points, 2])."""
        thickness = max(1, int(round(2 * width)))
        fixed = list(self._fixed(lines)) if isinstance(lines, np.ndarray) else [self._fixed(line) for line in lines]
        cv2.polylines(self.canvas, fixed, closed, colour, thickness, cv2.LINE_AA, self.SHIFT)
        if self.occluding:
            cv2.polylines(self.shaded, fixed, closed, 0, thickness, cv2.LINE_8, self.SHIFT)

    def fill_inside(self, clip: np.ndarray, shapes: list[tuple[np.ndarray, Colour]],
                    opacity: float = 1.0) -> None:
        """Fill polygons (points, colour) only where they fall inside polygon `clip`, blended by `opacity`."""
        fixed = self._fixed(clip)
        low = np.maximum(fixed.min(0) // 16 - 2, 0)
        high = np.minimum(fixed.max(0) // 16 + 3, 2 * self.size)
        if np.any(high <= low):
            return
        roi = self.canvas[low[1]:high[1], low[0]:high[0]]
        layer = roi.copy()
        origin = low * 16
        for points, colour in shapes:
            cv2.fillPoly(layer, [self._fixed(points) - origin], colour, cv2.LINE_AA, self.SHIFT)
        if opacity < 1:
            layer = cv2.addWeighted(layer, opacity, roi, 1 - opacity, 0.0)
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(mask, [fixed - origin], 255, cv2.LINE_8, self.SHIFT)
        cv2.copyTo(layer, mask, roi)

    @staticmethod
    def _fixed_half(points: np.ndarray) -> np.ndarray:
        """Output pixels -> fixed-point pixels of the half-size light map: x_half = (x + 0.5) / 2 - 0.5."""
        return np.rint(np.asarray(points, dtype=float) * 8 - 4).astype(np.int32)

    def shade(self, points: np.ndarray, value: float) -> None:
        """Set the light-map offset inside a polygon (negative darkens)."""
        cv2.fillPoly(self.light, [self._fixed_half(points)], float(value), cv2.LINE_8, self.SHIFT)

    def shade_stroke(self, points: np.ndarray, value: float, width: float) -> None:
        """A light-map polyline `width` output pixels wide."""
        cv2.polylines(self.light, [self._fixed_half(points)], False, float(value), max(1, int(round(width / 2))),
                      cv2.LINE_8, self.SHIFT)


@dataclass(frozen=True)
class Palette:
    """The colours one face is painted with, derived from its Appearance."""

    skin: Colour
    shadow: Colour
    lips: Colour
    brow: Colour
    lash: Colour
    sclera: Colour
    mouth: Colour
    teeth: Colour
    hair: Colour
    iris: Colour
    shirt: Colour


def palette(look: Appearance) -> Palette:
    """Colours for skin, features and hair from one Appearance."""
    skin = tuple(float(c) for c in look.skin)
    hair = tuple(float(c) for c in look.hair)
    if look.hair_style == "buzz":
        hair = mix(skin, hair, 0.55)
    dark_hair = mix(hair, (25.0, 20.0, 18.0), 0.45)
    return Palette(
        skin=skin,
        shadow=tint(skin, 0.86),
        lips=tuple(float(c) for c in look.lips),
        brow=mix(skin, dark_hair, 0.35 + 0.55 * look.brow_density),
        lash=mix(dark_hair, (20.0, 15.0, 15.0), 0.6),
        sclera=mix((238.0, 234.0, 226.0), skin, 0.12),
        mouth=mix((70.0, 22.0, 28.0), skin, 0.15),
        teeth=(215.0, 208.0, 190.0),
        hair=hair,
        iris=tuple(float(c) for c in look.iris),
        shirt=tuple(float(c) for c in look.shirt),
    )


def draw_background(painter: Painter, rng: np.random.Generator) -> None:
    """A gradient, blurred random shapes and blotchy texture, with a few sharp shapes on top."""
    low = 48
    ends = rng.uniform(15, 240, (2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    grid = np.linspace(-0.5, 0.5, low)
    ramp = np.clip(np.add.outer(grid * math.sin(angle), grid * math.cos(angle)) + 0.5, 0, 1)
    image = ends[0] + (ends[1] - ends[0]) * ramp[..., None]
    image += rng.normal(0, rng.uniform(0, 14), (low, low, 1)) * rng.uniform(0.5, 1.0, 3)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 8)):
        _random_shape(image, rng, low, filled=True)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 2.5))
    side = 2 * painter.size
    painter.canvas[:] = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
    for _ in range(rng.integers(0, 4)):
        _random_shape(painter.canvas, rng, side, filled=bool(rng.random() < 0.5))


def _random_shape(image: np.ndarray, rng: np.random.Generator, side: int, filled: bool) -> None:
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    centre = rng.uniform(0, side, 2)
    axes = rng.uniform(0.05, 0.4, 2) * side
    thickness = -1 if filled else max(1, int(rng.uniform(0.004, 0.03) * side))
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(image, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])),
                    float(rng.uniform(0, 180)), 0, 360, colour, thickness, cv2.LINE_AA)
    elif kind == 1:
        corners = ellipse_points(centre, tuple(axes), rng.uniform(0, math.pi), 4).astype(np.int32)
        if filled:
            cv2.fillPoly(image, [corners], colour, cv2.LINE_AA)
        else:
            cv2.polylines(image, [corners], True, colour, thickness, cv2.LINE_AA)
    else:
        ends = rng.uniform(0, side, (2, 2)).astype(np.int32)
        cv2.line(image, tuple(map(int, ends[0])), tuple(map(int, ends[1])), colour, max(thickness, 1),
                 cv2.LINE_AA)


def draw_body(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """Shoulders in a shirt with a neckline."""
    half = np.array([(0.6, 1.95), (1.15, 2.15), (1.95, 2.45), (2.55, 2.8), (2.85, 3.4), (3.0, 6.0)])
    outline = np.concatenate([half[::-1] * (-1, 1), half])
    shoulders = geo.projection.body(np.column_stack([outline, np.full(len(outline), -0.9)]))
    painter.fill(spline(shoulders, samples=4), colours.shirt)
    depth = rng.uniform(2.1, 2.7)
    width = rng.uniform(0.45, 0.75)
    neckline = np.array([(-width, 1.93, -0.9), (0.0, depth, -0.8), (width, 1.93, -0.9)])
    if rng.random() < 0.5:  # round neckline
        neckline = np.array([(-width, 1.93, -0.9), (-0.6 * width, depth - 0.2, -0.8), (0.0, depth, -0.8),
                             (0.6 * width, depth - 0.2, -0.8), (width, 1.93, -0.9)])
    neckline_image = spline(geo.projection.body(neckline), samples=5)
    painter.fill(neckline_image, colours.shadow)
    painter.stroke(neckline_image, tint(colours.shirt, 0.7), 0.012 * geo.projection.scale)


def draw_neck(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """The neck, from inside the head down to the shoulders."""
    fw = geo.spec.identity.face_width
    neck = np.array([(-0.66 * fw, 0.2, -0.8), (-0.72 * fw, 2.25, -0.9), (0.72 * fw, 2.25, -0.9),
                     (0.66 * fw, 0.2, -0.8)])
    painter.fill(geo.projection.body(neck), colours.shadow)


def draw_long_hair(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """Hair falling behind the face to the shoulders."""
    top = hair_outline(geo, np.linspace(0.25, -math.pi - 0.25, 30))
    chin = geo.landmarks[8]
    scale = geo.projection.scale
    bottom = chin[1] + rng.uniform(0.3, 1.6) * scale
    flare = rng.uniform(0.0, 0.4) * scale
    left, right = top[-1], top[0]
    ends = np.array([(left[0] - flare, bottom), ((left[0] + right[0]) / 2, bottom + rng.uniform(-0.2, 0.2) * scale),
                     (right[0] + flare, bottom)])
    painter.fill(np.concatenate([top, ends]), colours.hair)


def hair_outline(geo: FaceGeometry, angles: np.ndarray) -> np.ndarray:
    """Image points of the hair's outer outline in directions `angles`: a projected ellipsoid, made uneven."""
    centre, axes = hair_ellipsoid(geo.spec)
    outline = ellipsoid_outline(geo.projection, centre, axes, angles)
    middle = geo.projection.head(centre[None])[0]
    waves = np.random.default_rng((geo.spec.detail_seed, 1))
    frequency = np.arange(2, 7)[:, None]
    wobble = (waves.uniform(0, 0.03, (5, 1)) * np.sin(frequency * angles + waves.uniform(0, 6.3, (5, 1)))).sum(0)
    return middle + (outline - middle) * (1 + wobble[:, None])


def hair_ellipsoid(spec: FaceSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centre and semi-axes of the hair's outer surface around the skull."""
    centre, axes = SKULL
    volume = spec.appearance.hair_volume
    return centre - (0, 0.6 * volume, 0), axes * (spec.identity.face_width, 1, 1) + volume


def draw_ears(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """Both ears, behind the head outline (the head drawn next hides what it should)."""
    t = np.linspace(0, 2 * math.pi, 28, endpoint=False)
    up = np.array([0.0, 1.0, 0.0])
    width = 0.24 * (1 - 0.25 * np.sin(t))  # wider at the top
    for side in (-1.0, 1.0):
        centre = np.array([side * 1.06 * geo.spec.identity.face_width, 0.22, -1.32])
        out = np.array([side * math.sin(math.radians(35)), 0.0, -math.cos(math.radians(35))])
        rim = centre + np.outer(width * np.cos(t), out) + np.outer(0.42 * np.sin(t), up)
        bowl = centre - 0.05 * out + np.outer(0.55 * width * np.cos(t), out) + np.outer(0.2 * np.sin(t) + 0.06, up)
        painter.fill(geo.projection.head(rim), tint(colours.skin, 0.95))
        painter.fill(geo.projection.head(bowl), tint(colours.skin, 0.72))


def head_outline(geo: FaceGeometry) -> np.ndarray:
    """Image polygon [N,2] of the head's skin: the jaw silhouette through points 0-16, closed over the skull."""
    jaw = geo.landmarks[JAW].astype(float)
    centre, axes = SKULL
    angles = arc_over_top(jaw[16], jaw[0], geo.projection.head(centre[None])[0], 40)
    skull = ellipsoid_outline(geo.projection, centre, axes * (geo.spec.identity.face_width, 1, 1), angles)
    return np.concatenate([spline(jaw, samples=6), skull])


def draw_head(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """The skin of the head inside its outline."""
    painter.fill(head_outline(geo), colours.skin)


def draw_hair_back(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """The hair's whole outline, drawn before the head so it shows around and behind it."""
    painter.fill(hair_outline(geo, np.linspace(-math.pi, math.pi, 48, endpoint=False)), colours.hair)


def hair_front_edge(spec: FaceSpec, rng: np.random.Generator) -> np.ndarray:
    """Model points [N,3] along the hair's lower front edge (hairline or fringe), temple to temple."""
    look, identity = spec.appearance, spec.identity
    u = np.linspace(-1, 1, 25)
    angle = u * 1.32
    x = 1.03 * identity.face_width * np.sin(angle)
    z = -1.0 + 0.97 * np.cos(angle)
    side = rng.uniform(-0.4, -0.1)  # where the hair meets the temples, above jaw point 0
    to_side = np.clip((np.abs(u) - 0.55) / 0.45, 0, 1) ** 1.5
    if look.hair_style == "bangs":
        y = look.hairline + (side - look.hairline) * to_side
        y[1:-1:2] -= rng.uniform(0.02, 0.07)  # strand tips
    elif look.hair_style == "swept":
        direction = rng.choice([-1.0, 1.0])
        high = rng.uniform(-1.15, -0.85)
        y = high + (look.hairline - high) * (direction * u + 1) / 2
        y = y + (side - y) * to_side
    elif look.hair_style == "parted":
        high = rng.uniform(-1.2, -0.95)
        y = high + (look.hairline - high) * np.clip(np.abs(u) * 2.2, 0, 1) ** 0.7
        y = y + (side - y) * to_side
    else:
        y = look.hairline + (side - look.hairline) * np.abs(u) ** 1.8
        y += rng.uniform(0, 0.12) * np.exp(-((np.abs(u) - 0.45) / 0.15) ** 2)  # receding corners
    return np.column_stack([x, y, z])


def draw_hair_front(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """Hair over the top of the head down to its front edge, with strands."""
    edge = hair_front_edge(geo.spec, rng)
    normals = _outward_normals(edge[:, :2], np.array([0.0, 0.3]))
    depth_front = np.maximum(-edge[:, 2], 0.05)
    edge = silhouette(edge, normals, geo.projection.rot, depth_front, 0.0, JAW_ARC_RADIUS, (0.0, ARC_LIMITS[1]))
    edge_image = spline(geo.projection.head(edge), samples=3)
    centre = geo.projection.head(hair_ellipsoid(geo.spec)[0][None])[0]
    angles = arc_over_top(edge_image[-1], edge_image[0], centre, 40)
    painter.fill(np.concatenate([edge_image, hair_outline(geo, angles)]), colours.hair)
    if geo.spec.appearance.hair_style == "buzz":
        return
    crown = geo.point(0.0, -1.45, -0.75)
    count = 30
    tips = edge_image[rng.choice(len(edge_image), count)]
    roots = tips + (crown - tips) * rng.uniform(0.35, 0.85, (count, 1))
    ends = tips + (crown - tips) * rng.uniform(0.02, 0.1, (count, 1))
    middles = (roots + ends) / 2 + rng.normal(0, 0.04, (count, 2)) * geo.projection.scale
    t = np.linspace(0, 1, 8)[None, :, None]
    lines = (1 - t) ** 2 * roots[:, None] + 2 * (1 - t) * t * middles[:, None] + t ** 2 * ends[:, None]
    width = max(0.4, 0.005 * geo.projection.scale)
    painter.strokes(list(lines[: count // 2]), tint(colours.hair, 0.8), width)
    painter.strokes(list(lines[count // 2:]), tint(colours.hair, 1.18), width)


def draw_eye(painter: Painter, geo: FaceGeometry, eye: int, colours: Palette) -> None:
    """Sclera, iris and pupil inside the eye points' outline, lash line and lid crease."""
    points = geo.landmarks[EYES[eye]].astype(float)
    scale = geo.projection.scale
    expression, identity = geo.spec.expression, geo.spec.identity
    outline = spline(points, closed=True, samples=5)
    width = float(np.linalg.norm(points[3] - points[0]))
    axis = (points[3] - points[0]) / max(width, 1e-6)
    down = np.array([-axis[1], axis[0]])
    opening = float(np.linalg.norm((points[1] + points[2]) / 2 - (points[4] + points[5]) / 2))
    painter.fill(outline, colours.sclera)
    radius = 0.08 * scale * identity.eye_size
    squash = float(np.clip(width / (0.36 * scale * identity.eye_size * identity.face_width), 0.45, 1.0))
    centre = ((points[1] + points[2] + points[4] + points[5]) / 4
              + axis * expression.gaze_x * 0.17 * width + down * expression.gaze_y * 0.25 * opening)
    angle = math.atan2(axis[1], axis[0])
    iris = ellipse_points(centre, (radius * squash, radius), angle)
    ring = ellipse_points(centre, (radius * squash * 0.97, radius * 0.97), angle)
    pupil = ellipse_points(centre, (0.42 * radius * squash, 0.42 * radius), angle, 16)
    glint = ellipse_points(centre + (axis * -0.3 * squash - down * 0.35) * radius, (0.13 * radius, 0.13 * radius), 0, 8)
    painter.fill_inside(outline, [(iris, tint(colours.iris, 0.6)), (ring, colours.iris),
                                  (pupil, (12.0, 10.0, 10.0)), (glint, (250.0, 250.0, 250.0))])
    painter.stroke(spline(points[[0, 1, 2, 3]]), colours.lash, max(0.5, 0.02 * scale))
    painter.stroke(spline(points[[3, 4, 5, 0]]), tint(colours.skin, 0.68), max(0.35, 0.008 * scale))
    crease = spline(points[[0, 1, 2, 3]])[3:-2] - down * 0.065 * scale
    painter.stroke(crease, tint(colours.skin, 0.78), max(0.35, 0.007 * scale))


def draw_brow(painter: Painter, geo: FaceGeometry, brow: np.ndarray, colours: Palette,
              rng: np.random.Generator) -> None:
    """A tapered band from the inner to the outer end with the brow points along its upper part, plus hairs."""
    points = geo.landmarks[brow].astype(float)
    scale = geo.projection.scale
    curve = spline(points, samples=5)
    eye_centre = geo.landmarks[EYES[0] if brow[0] == 21 else EYES[1]].mean(0)
    down = -_outward_normals(curve, eye_centre)
    along = np.linspace(0, 1, len(curve))
    thickness = 0.085 * scale * geo.spec.appearance.brow_thickness * (1 - 0.62 * along ** 1.3)
    upper = curve - down * (0.3 * thickness)[:, None]
    lower = curve + down * (0.7 * thickness)[:, None]
    painter.fill(np.concatenate([upper, lower[::-1]]), colours.brow)
    picks = rng.integers(0, len(curve) - 1, 22)
    tangent = curve[picks + 1] - curve[picks]
    tangent /= np.sqrt(np.sum(tangent * tangent, axis=1, keepdims=True)) + 1e-9
    lift = np.radians(55 - 45 * along[picks])[:, None]
    direction = tangent * np.cos(lift) - down[picks] * np.sin(lift)
    start = curve[picks] + down[picks] * (rng.uniform(-0.1, 0.7, 22) * thickness[picks])[:, None]
    length = 0.55 * thickness.max()
    hairs = np.stack([start, start + direction * length], axis=1)
    painter.strokes(hairs, mix(colours.brow, colours.lash, 0.5), max(0.35, 0.004 * scale))


def draw_nose(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """Nostrils just above the nose-bottom points, the nose-bottom line and the nostril wings."""
    lm = geo.landmarks.astype(float)
    scale = geo.projection.scale
    up = lm[30] - lm[33]
    up /= np.linalg.norm(up) + 1e-9
    nostril = mix(colours.skin, (30.0, 12.0, 12.0), 0.75)
    for outer in (31, 35):
        span = lm[33] - lm[outer]
        length = float(np.linalg.norm(span))
        centre = lm[outer] + span * 0.5 + up * 0.2 * length
        axes = (0.32 * length, 0.13 * length)
        painter.fill(ellipse_points(centre, axes, math.atan2(span[1], span[0]), 16), nostril)
    painter.stroke(spline(lm[NOSE_BOTTOM]), tint(colours.skin, 0.82), max(0.35, 0.006 * scale))
    painter.strokes(list(geo.nose_wings), tint(colours.skin, 0.78), max(0.35, 0.007 * scale))


def _middle(curve: np.ndarray, fraction: float) -> np.ndarray:
    """The middle `fraction` of a sampled curve's points."""
    cut = int(round(len(curve) * (1 - fraction) / 2))
    return curve[cut:len(curve) - cut]


def draw_mouth(painter: Painter, geo: FaceGeometry, colours: Palette) -> None:
    """Upper and lower lips between the outer and inner lip points; mouth and teeth when open."""
    lm = geo.landmarks.astype(float)
    scale = geo.projection.scale
    top, inner_top, inner_bottom, bottom = geo.lips
    painter.fill(np.concatenate([top, inner_top[::-1]]), tint(colours.lips, 0.88))
    painter.fill(np.concatenate([bottom, inner_bottom]), colours.lips)
    gap = float(np.linalg.norm(lm[62] - lm[66]))
    if gap > 0.01 * scale:
        cavity = np.concatenate([inner_top, inner_bottom[::-1]])
        painter.fill(cavity, colours.mouth)
        axis = lm[54] - lm[48]
        down = np.array([-axis[1], axis[0]]) / (np.linalg.norm(axis) + 1e-9)
        front_top, front_bottom = _middle(inner_top, 0.7), _middle(inner_bottom, 0.6)  # the corners stay dark
        upper_teeth = np.concatenate([front_top, (front_top + down * min(0.6 * gap, 0.08 * scale))[::-1]])
        lower_teeth = np.concatenate([front_bottom, (front_bottom - down * min(0.3 * gap, 0.05 * scale))[::-1]])
        painter.fill_inside(cavity, [(lower_teeth, tint(colours.teeth, 0.7)), (upper_teeth, colours.teeth)])
    painter.stroke(inner_top, mix(colours.mouth, colours.lips, 0.3), max(0.4, 0.008 * scale))


def light_direction(camera: Camera) -> np.ndarray:
    """Unit vector toward the light in the camera frame (x right, y down, z toward the camera)."""
    azimuth, elevation = math.radians(camera.light_azimuth), math.radians(camera.light_elevation)
    return np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                     math.sin(elevation)])


def draw_feature_shading(painter: Painter, geo: FaceGeometry, camera: Camera) -> None:
    """Light-map offsets for the nose sides and underside, lips, eye sockets and the shadow under the jaw."""
    rot, light = geo.projection.rot, light_direction(camera)
    diffuse = 1 - camera.ambient
    front = max(0.0, float(rot[:, 2] @ light))

    def lit(normal: tuple[float, float, float], occlusion: float = 0.0) -> float:
        seen = rot @ (np.asarray(normal) / np.linalg.norm(normal))
        return diffuse * (max(0.0, float(seen @ light)) - front) - occlusion

    lm = geo.landmarks.astype(float)
    scale = geo.projection.scale
    jaw = spline(lm[3:14])
    painter.shade(np.concatenate([jaw, (jaw + geo.projection.rot[:2, 1] * 0.32 * scale)[::-1]]),
                  -0.3 * diffuse - 0.05)
    painter.shade(np.concatenate([lm[17:22], lm[[39, 38, 37, 36]]]), lit((0, 0.35, 0.94), 0.05))
    painter.shade(np.concatenate([lm[22:27], lm[[45, 44, 43, 42]]]), lit((0, 0.35, 0.94), 0.05))
    wing_left, wing_right = geo.nose_wings
    painter.shade(np.concatenate([lm[[27, 28, 29, 30, 32, 31]], wing_left[1:], lm[[39]]]), lit((-0.6, 0.05, 0.8)))
    painter.shade(np.concatenate([lm[[27, 28, 29, 30, 34, 35]], wing_right[1:], lm[[42]]]), lit((0.6, 0.05, 0.8)))
    painter.shade(lm[[31, 30, 35, 34, 33, 32]], lit((0, 0.75, 0.65), 0.03))
    painter.shade_stroke(lm[27:31], lit((0, -0.2, 1.0)) + 0.04, 0.04 * scale)
    top, inner_top, inner_bottom, bottom = geo.lips
    painter.shade(np.concatenate([top, inner_top[::-1]]), lit((0, 0.5, 0.87)))
    painter.shade(np.concatenate([bottom, inner_bottom]), lit((0, -0.45, 0.9)) + 0.03)
    below = bottom + geo.projection.rot[:2, 1] * 0.12 * scale
    painter.shade(np.concatenate([bottom, below[::-1]]), lit((0, 0.55, 0.83), 0.03))
    smile = geo.spec.expression.smile
    if smile > 0.15:
        shape = geo.shape
        for wing, corner, side in ((31, 48, -1.0), (35, 54, 1.0)):
            fold = np.stack([shape[wing] + (side * 0.08, -0.05, -0.05), shape[corner] + (side * 0.09, 0.07, -0.05)])
            painter.shade_stroke(geo.projection.head(fold), -0.12 * smile, 0.025 * scale)


def head_shading(geo: FaceGeometry, camera: Camera, count: int) -> np.ndarray:
    """Lambert plus a highlight on the shading ellipsoid over a count x count grid, 1 on the face front."""
    proj = geo.projection
    step = geo.spec.size / count
    coords = (np.arange(count) + 0.5) * step - 0.5
    qx = (coords - proj.offset[0]) / proj.scale
    qy = (coords - proj.offset[1]) / proj.scale
    centre, axes = SHADING_HEAD
    # a camera-frame point (qx, qy, z) in the model frame is qx * R[0] + qy * R[1] + z * R[2] + constant
    constant = -PIVOT @ proj.rot + PIVOT - centre
    base = qx[None, :, None] * proj.rot[0] + qy[:, None, None] * proj.rot[1] + constant
    u, v = base / axes, proj.rot[2] / axes
    uv, vv = u @ v, float(v @ v)
    disc = np.maximum(uv ** 2 - vv * (np.sum(u * u, axis=-1) - 1), 0)
    local = base + ((-uv + np.sqrt(disc)) / vv)[..., None] * proj.rot[2]
    normal = (local / axes ** 2) @ proj.rot.T
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[..., 2] += 0.35  # flatter than an ellipsoid; keeps the neck and shoulders lit
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = light_direction(camera)
    halfway = (light + (0, 0, 1)) / np.linalg.norm(light + (0, 0, 1))
    shade = (camera.ambient + (1 - camera.ambient) * np.clip(normal @ light, 0, 1)
             + camera.shine * np.clip(normal @ halfway, 0, 1) ** 24)
    front = float(np.clip(proj.rot[:, 2] @ light, 0.6, 1.0))  # exposed for the face front, within limits
    shade /= camera.ambient + (1 - camera.ambient) * front
    return np.minimum(shade, 1.2).astype(np.float32)


def light_map(painter: Painter, geo: FaceGeometry, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Half-size shading of the person: the head's shading, feature offsets and skin unevenness."""
    half = painter.light.shape[0]
    coarse = head_shading(geo, camera, half // 4)
    coarse += rng.normal(0, rng.uniform(0.01, 0.04), coarse.shape).astype(np.float32)
    shade = cv2.resize(coarse, (half, half), interpolation=cv2.INTER_LINEAR)
    draw_feature_shading(painter, geo, camera)
    return cv2.GaussianBlur(shade + painter.light, (0, 0), 0.6 + painter.size / 256)


NOISE_UNIT = 16  # the noise bank stores Gaussian noise of this standard deviation as int16
SHADE_UNIT = 128  # shading factors are applied as uint8 multiples of 1/SHADE_UNIT


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed field of Gaussian noise a little larger than the image; faces use shifted windows of it."""
    noise = np.random.default_rng(0x5EED).standard_normal((size + 64, size + 64, 3), dtype=np.float32)
    return np.round(noise * NOISE_UNIT).astype(np.int16)


def channel_gains(spec: FaceSpec) -> tuple[float, float, float]:
    """Per-channel gains of the camera: colour cast times exposure, held down so the lit skin stays below white."""
    gains = np.asarray(spec.camera.colour_gain) * spec.camera.exposure
    brightest = float(np.max(np.asarray(spec.appearance.skin) * gains))
    gains *= min(1.0, 210.0 / brightest)
    return float(gains[0]), float(gains[1]), float(gains[2])


def finish(painter: Painter, shade: np.ndarray, gains: tuple[float, float, float], camera: Camera,
           rng: np.random.Generator) -> np.ndarray:
    """The output image: the canvas downsampled, shaded where the person is, exposed, blurred, noised, JPEG'd."""
    size = (painter.size, painter.size)
    image = cv2.resize(painter.canvas, size, interpolation=cv2.INTER_AREA)
    coverage = cv2.resize(painter.shaded, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    shade = cv2.resize(shade, size, interpolation=cv2.INTER_LINEAR)
    factor = cv2.convertScaleAbs(1 + (shade - 1) * coverage, alpha=SHADE_UNIT)
    image = cv2.multiply(image, cv2.merge([factor, factor, factor]), scale=1 / SHADE_UNIT)
    image = cv2.transform(image, np.diag(gains))
    if camera.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), camera.blur)
    if camera.noise > 0:
        top, left = rng.integers(0, 64, 2)
        noise = _noise_bank(painter.size)[top:top + size[1], left:left + size[0]]
        image = cv2.addWeighted(image.astype(np.int16), 1.0, noise, camera.noise / NOISE_UNIT, 0.0, dtype=cv2.CV_8U)
    if camera.jpeg_quality:
        encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, camera.jpeg_quality])[1]
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image)


def draw_person(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """Body, hair, ears, head and facial features, back to front."""
    look = geo.spec.appearance
    has_hair = look.hair_style != "bald"
    if has_hair and look.hair_long:
        draw_long_hair(painter, geo, colours, rng)
    draw_neck(painter, geo, colours)
    draw_body(painter, geo, colours, rng)
    if has_hair:
        draw_hair_back(painter, geo, colours)
    draw_ears(painter, geo, colours)
    draw_head(painter, geo, colours)
    for eye in range(2):
        draw_eye(painter, geo, eye, colours)
    for brow in BROWS:
        draw_brow(painter, geo, brow, colours, rng)
    draw_nose(painter, geo, colours)
    draw_mouth(painter, geo, colours)
    if has_hair:
        draw_hair_front(painter, geo, colours, rng)


def render_face(spec: FaceSpec) -> tuple[np.ndarray, np.ndarray]:
    """The face `spec` describes: a uint8 HxWx3 RGB image and its float32 [68,2] landmarks."""
    geo = face_geometry(spec)
    rng = np.random.default_rng(spec.detail_seed)
    colours = palette(spec.appearance)
    painter = Painter(spec.size)
    draw_background(painter, rng)
    draw_person(painter, geo, colours, rng)
    shade = light_map(painter, geo, spec.camera, rng)
    painter.occluding = True
    draw_occluder(painter, geo, colours, rng)
    return finish(painter, shade, channel_gains(spec), spec.camera, rng), geo.landmarks


# ----------------------------------------------------------------------------------------------
# Occluders: drawn over the face; the landmarks keep their true positions underneath.
# ----------------------------------------------------------------------------------------------

def draw_occluder(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """The occluder the spec names, if any."""
    kind = geo.spec.appearance.occluder
    if kind in ("glasses", "sunglasses"):
        draw_glasses(painter, geo, rng, dark=kind == "sunglasses")
    elif kind == "hand":
        draw_hand(painter, geo, colours, rng)
    elif kind == "hat":
        draw_hat(painter, geo, rng)
    elif kind == "microphone":
        draw_microphone(painter, geo, rng)
    elif kind == "object":
        draw_object(painter, geo, rng)


FRAME_COLOURS = ((20, 20, 22), (70, 45, 30), (160, 160, 165), (120, 30, 35), (200, 170, 90), (30, 50, 110))


def draw_glasses(painter: Painter, geo: FaceGeometry, rng: np.random.Generator, dark: bool) -> None:
    """Two lenses in front of the eyes, a bridge over the nose and the temple arms toward the ears."""
    proj, shape = geo.projection, geo.shape
    frame = tuple(float(c) for c in FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))])
    width = rng.uniform(0.01, 0.028) * proj.scale * (1.5 if dark else 1.0)
    half_width, half_height = rng.uniform(0.22, 0.29), rng.uniform(0.13, 0.2)
    roundness = rng.uniform(2.0, 5.0)
    lens_tint = tuple(float(c) for c in rng.uniform(10, 70, 3))
    fw = geo.spec.identity.face_width
    local = np.column_stack([_unit_superellipse(32, roundness) * (half_width, half_height), np.zeros(32)])
    centres = []
    for eye, side in zip(EYES, (-1.0, 1.0)):
        centre = shape[eye].mean(0) + (side * 0.02, 0.02, 0.16)
        centres.append(centre)
        lens = proj.head(centre + local)
        if dark:
            painter.fill_inside(lens, [(lens, lens_tint)], opacity=0.88)
        painter.stroke(lens, frame, width, closed=True)
        if float(proj.rot[2] @ (side, 0.0, 0.0)) > -0.3:  # the arm on a side turned away is hidden
            arm = np.stack([centre + (side * half_width, -0.4 * half_height, 0), (side * 1.02 * fw, -0.05, -0.85)])
            painter.stroke(proj.head(arm), frame, width)
    bridge = np.stack([centres[0] + (half_width * 0.9, -0.35 * half_height, 0), (0.0, shape[27, 1] - 0.02, 0.2),
                       centres[1] + (-half_width * 0.9, -0.35 * half_height, 0)])
    painter.stroke(spline(proj.head(bridge), samples=5), frame, width)


def draw_hand(painter: Painter, geo: FaceGeometry, colours: Palette, rng: np.random.Generator) -> None:
    """A hand (palm, four fingers, thumb, forearm) raised over part of the lower face."""
    scale = geo.projection.scale * rng.uniform(0.85, 1.15)
    skin = tint(colours.skin, rng.uniform(0.9, 1.1))
    if rng.random() < 0.2:  # a glove
        skin = tuple(float(c) for c in rng.uniform(20, 230, 3))
    edge = tint(skin, 0.72)
    anchor = geo.landmarks[rng.choice([3, 5, 8, 11, 13, 48, 54, 57, 30])] + rng.normal(0, 0.12, 2) * scale
    angle = rng.uniform(-0.9 * math.pi, -0.1 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-direction[1], direction[0]])
    palm = anchor - direction * 0.3 * scale
    arm = np.stack([palm + across * 0.26 * scale, palm + across * 0.33 * scale - direction * 3 * scale,
                    palm - across * 0.33 * scale - direction * 3 * scale, palm - across * 0.26 * scale])
    painter.fill(arm, skin)
    painter.fill(ellipse_points(palm, (0.34 * scale, 0.4 * scale), angle), skin)
    fingers = []
    for offset, length, spread in zip((-0.24, -0.08, 0.08, 0.24), (0.38, 0.47, 0.45, 0.36), rng.normal(0, 0.1, 4)):
        base = palm + direction * 0.22 * scale + across * offset * scale
        bent = direction * math.cos(spread) + across * math.sin(spread)
        fingers.append(np.stack([base, base + bent * length * scale]))
    thumb_base = palm + across * rng.choice([-1.0, 1.0]) * 0.3 * scale
    fingers.append(np.stack([thumb_base, thumb_base + (direction + across * np.sign(
        (thumb_base - palm) @ across)) * 0.22 * scale]))
    for finger in fingers:
        painter.stroke(finger, edge, 0.17 * scale)
        painter.stroke(finger, skin, 0.13 * scale)


def draw_hat(painter: Painter, geo: FaceGeometry, rng: np.random.Generator) -> None:
    """A cap or beanie whose band crosses the forehead; a cap also has a peak."""
    proj, fw = geo.projection, geo.spec.identity.face_width
    colour = tuple(float(c) for c in rng.uniform(15, 240, 3))
    band_y = rng.uniform(-0.95, -0.5) - geo.spec.identity.brow_height
    angle = np.linspace(-1.5, 1.5, 25)
    band = np.column_stack([1.1 * fw * np.sin(angle), np.full_like(angle, band_y), -1.0 + 1.22 * np.cos(angle)])
    normals = _outward_normals(band[:, [0, 2]], np.array([0.0, -1.0]))
    normals = np.column_stack([normals[:, 0], np.zeros(len(band))])
    band = silhouette(band, normals, proj.rot, np.maximum(0.1 - band[:, 2], 0.05), 0.0, JAW_ARC_RADIUS,
                      (0.0, ARC_LIMITS[1]))
    band_image = spline(proj.head(band), samples=3)
    crown_centre = np.array([0.0, band_y - 0.35, -1.0])
    crown_axes = np.array([1.14 * fw, rng.uniform(0.75, 1.0), 1.3])
    angles = arc_over_top(band_image[-1], band_image[0], proj.head(crown_centre[None])[0], 32)
    painter.fill(np.concatenate([band_image, ellipsoid_outline(proj, crown_centre, crown_axes, angles)]), colour)
    painter.stroke(band_image, tint(colour, 0.7), 0.03 * proj.scale)
    if rng.random() < 0.6:
        reach = rng.uniform(0.45, 0.8)
        rim = np.linspace(-1.45, 1.45, 21)
        peak = np.column_stack([1.12 * fw * np.sin(rim), np.full_like(rim, band_y + 0.04),
                                -1.0 + (1.22 + reach * np.cos(rim) ** 2) * np.cos(rim)])
        painter.fill(spline(proj.head(peak), samples=3), tint(colour, 0.82))


def draw_microphone(painter: Painter, geo: FaceGeometry, rng: np.random.Generator) -> None:
    """A hand-held microphone head on its handle near the mouth or chin."""
    scale = geo.projection.scale
    centre = geo.landmarks[rng.choice([57, 8, 48, 54, 7, 9])] + rng.normal(0, 0.12, 2) * scale
    radius = rng.uniform(0.2, 0.3) * scale
    angle = rng.uniform(0.25 * math.pi, 0.75 * math.pi)
    handle = np.stack([centre, centre + np.array([math.cos(angle), math.sin(angle)]) * 4 * scale])
    painter.stroke(handle, (25.0, 25.0, 28.0), 0.2 * scale)
    grey = float(rng.uniform(50, 150))
    head = ellipse_points(centre, (radius, radius), 0.0, 32)
    painter.fill(head, (grey, grey, grey + 5))
    mesh = [ellipse_points(centre, (radius * k, radius), 0.0, 24) for k in (0.35, 0.7)]
    mesh += [ellipse_points(centre, (radius, radius * k), 0.0, 24) for k in (0.35, 0.7)]
    painter.strokes(mesh, tint((grey, grey, grey), 0.6), 0.012 * scale, closed=True)
    painter.fill(ellipse_points(centre - radius * 0.4, (radius * 0.22, radius * 0.15), -0.6, 12),
                 tint((grey, grey, grey), 1.5))


def draw_object(painter: Painter, geo: FaceGeometry, rng: np.random.Generator) -> None:
    """A rounded box (a phone, a cup, a book) overlapping the edge of the face."""
    scale = geo.projection.scale
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    centre = geo.landmarks[rng.choice([1, 3, 5, 8, 11, 13, 15])] + rng.normal(0, 0.15, 2) * scale
    axes = tuple(rng.uniform(0.2, 0.55, 2) * scale)
    box = ellipse_points(centre, axes, rng.uniform(0, math.pi), 32, rng.uniform(4, 10))
    painter.fill(box, colour)
    painter.stroke(box, tint(colour, 0.6), 0.015 * scale, closed=True)
    shine = ellipse_points(centre, (axes[0] * 0.6, axes[1] * 0.15), rng.uniform(0, math.pi), 16)
    painter.fill(shine, tint(colour, 1.25))
