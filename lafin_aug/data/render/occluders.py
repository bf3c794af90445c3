"""Occluders: drawn over the face; the landmarks keep their true positions underneath.

Holds :func:`draw_occluder`, which draws the one an Appearance names, and each kind: glasses
and sunglasses, a raised hand, a hat, a microphone and a held object.
"""
from __future__ import annotations

import math

import numpy as np

from lafin_aug.data.render.geometry import (
    FaceGeometry,
    arc_over_top,
    ellipsoid_outline,
    outward_normals,
    silhouette,
    spline,
)
from lafin_aug.data.render.paint import Painter, Palette, ellipse_points, tint, unit_superellipse
from lafin_aug.data.render.spec import ARC_LIMITS, EYES, JAW_ARC_RADIUS


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
    local = np.column_stack([unit_superellipse(32, roundness) * (half_width, half_height), np.zeros(32)])
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
    normals = outward_normals(band[:, [0, 2]], np.array([0.0, -1.0]))
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
