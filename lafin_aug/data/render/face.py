"""The drawn scene: the background and the person, back to front, and :func:`render_face`.

Holds the background, the body, neck, hair (long hair behind, the hair's outline, the front
edge and strands), ears, head, eyes, brows, nose and mouth, :func:`draw_person` which paints
them in order, and :func:`render_face`, which adds light, occluder and camera finish to give
an image and its landmarks.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from lafin_aug.data.render.geometry import (
    FaceGeometry,
    arc_over_top,
    ellipsoid_outline,
    face_geometry,
    outward_normals,
    silhouette,
    spline,
)
from lafin_aug.data.render.occluders import draw_occluder
from lafin_aug.data.render.paint import Painter, Palette, ellipse_points, mix, palette, tint
from lafin_aug.data.render.shading import channel_gains, finish, light_map
from lafin_aug.data.render.spec import ARC_LIMITS, BROWS, EYES, JAW, JAW_ARC_RADIUS, NOSE_BOTTOM, SKULL, FaceSpec


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
    normals = outward_normals(edge[:, :2], np.array([0.0, 0.3]))
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
    down = -outward_normals(curve, eye_centre)
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
