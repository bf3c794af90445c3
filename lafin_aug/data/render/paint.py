"""The drawing primitives: colours, ellipse outlines, the anti-aliasing :class:`Painter` and the :class:`Palette`.

Holds the colour helpers (:func:`mix`, :func:`tint`), (super)ellipse outlines, the Painter that
fills and strokes in output-pixel coordinates on a double-size canvas while keeping the mask
and light map that shading uses, and the palette of colours one face is painted with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from lafin_aug.data.render.spec import Appearance

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
    local = unit_superellipse(count, exponent) * axes
    c, s = math.cos(angle), math.sin(angle)
    return centre + local @ np.array([[c, s], [-s, c]])


@lru_cache(maxsize=64)
def unit_superellipse(count: int, exponent: float) -> np.ndarray:
    """`count` points (x, y) of the unit superellipse |x|^(e/2) + |y|^(e/2) = 1 (e = `exponent`; 2 is the
    circle), counter-clockwise from (1, 0)."""
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

