"""Geometry of a posed face: the model deformed, rotated, placed and projected to image pixels.

Holds the identity and expression deformations of the mean shape, the head rotation, the
silhouette of contours seen from the side, the weak-perspective :class:`Projection`, the posed
:class:`FaceGeometry` with its 68 landmarks (:func:`face_geometry`), and the image-space curve
helpers (projected ellipsoid outlines, Catmull-Rom splines) the drawing code builds on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from lafin_aug.data.render.spec import (
    ARC_LIMITS,
    BROWS,
    EYELID_LOWER,
    EYELID_UPPER,
    EYES,
    INNER_LOWER,
    INNER_UPPER,
    JAW,
    JAW_ARC_RADIUS,
    JAW_BACK_DEPTH,
    JAW_FRONT_Z,
    LOWER_LIP_BOTTOM,
    MEAN_SHAPE,
    NOSE_BOTTOM,
    PIVOT,
    UPPER_LIP_TOP,
    Expression,
    FaceSpec,
    Identity,
)


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


def outward_normals(curve: np.ndarray, centre: np.ndarray) -> np.ndarray:
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
    normals = outward_normals(jaw[:, :2], np.array([0.0, 0.3]))
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
