"""Light and camera: the shading map of the painted person and the finished output image.

Holds the light direction, the feature shadows and head shading that make up the light map,
and :func:`finish`, which downsamples the canvas and applies shading, exposure and colour
gains, blur, sensor noise (windows of a fixed noise bank) and the JPEG round trip.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from lafin_aug.data.render.geometry import FaceGeometry, spline
from lafin_aug.data.render.paint import Painter
from lafin_aug.data.render.spec import PIVOT, SHADING_HEAD, Camera, FaceSpec


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
