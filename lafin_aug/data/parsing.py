"""Face-parsing (semantic segmentation) maps drawn from a face crop's landmarks.

Where no face parser is at hand, a parsing map for an inpainter's semantic conditioning (e.g.
MDRNets' semantic memory) can be drawn from the 68-point (iBUG/300-W) or 98-point (WFLW)
landmarks alone. Landmarks are float32 [P,2] (x, y) in pixel-index coordinates of the image
(the centre of column x is at x); every region is filled with OpenCV at 1/16 px precision, so
the maps are deterministic. "Left" and "right" are the image's (the viewer's), as in
:mod:`lafin_aug.landmarks`, and every point list comes from the schema's boundaries there.

Sizes derived from the face use two scales: the inter-ocular distance (outer eye corners,
``iod``) and the "middle third" (the height of the brows' centre above the nose's bottom line,
the brows' centre being the mean of their upper-edge points, which both markups have).
Directions are the face's own: "across" runs from the image-left eye centre to the image-right
one and "up" is perpendicular to it, so a rolled face gets a rolled map.

Classes, in id order (:data:`PARSING_CLASSES`), and how each is drawn:

0. ``background``: whatever no other class covers.
1. ``skin``: the face region. The jaw contour, closed over the top by an arc: half an ellipse
   on the segment between the contour's two ends, just tall enough to pass FOREHEAD middle
   thirds above the brows' centre and BROW_CLEARANCE iod above every brow upper-edge point
   (points beyond EDGE_COSINE of its half-width, e.g. a far brow tail sticking out of a turned
   face, do not count). The forehead's extent is an estimate: landmarks do not mark the hairline.
2. ``brow_left`` and 3. ``brow_right``: a brow the schema outlines (WFLW's closed ring of 9
   points) is that polygon filled; a brow marked by one line (iBUG's 5 points along its upper
   edge) is that polyline drawn BROW_THICKNESS iod thick and lowered by half its thickness, so
   that its upper edge passes through the points.
4. ``eye_left`` and 5. ``eye_right``: the eyelid ring (upper lid, then lower lid) filled; a
   closed eye is a line.
6. ``nose``: the convex hull of the nose points and of two points NOSE_BRIDGE iod either side
   of the top of the bridge, so the hull is a narrow bridge widening to the nostrils.
7. ``upper_lip``: the ring of the upper lip's outer (top) and inner (bottom) lines, filled.
8. ``lower_lip``: likewise the ring of the lower lip's inner (top) and outer (bottom) lines.
9. ``mouth``: the inner-lip ring filled (the mouth's interior); a closed mouth is a line.
10. ``hair``: an estimated band over the skin's top arc: the same half ellipse widened by
    HAIR_WIDEN of its width and raised by HAIR_HEIGHT middle thirds, down to the jaw
    contour's ends. It marks where hair usually is, not where this person's hair is.
11. ``neck``: an estimated band below the jaw, NECK_WIDTH of the jaw width (the distance
    between the contour's ends) wide, centred under them, reaching NECK_LENGTH face heights
    (brows' centre to chin) below the chin.

Drawing order (later classes cover earlier ones): hair, neck, skin, nose, brows, eyes, upper
lip, lower lip, mouth. So the skin covers the hair band and neck where they overlap it, and the
features cover the skin.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch

from lafin_aug.landmarks import inter_ocular, schema_for

#: Class names in id order; "left"/"right" are the image's.
PARSING_CLASSES: tuple[str, ...] = (
    "background", "skin", "brow_left", "brow_right", "eye_left", "eye_right", "nose",
    "upper_lip", "lower_lip", "mouth", "hair", "neck",
)


def _swap_sides(name: str) -> str:
    """The class name with "left" and "right" exchanged."""
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


#: Class-id permutation of a left-right mirror: flipped id = FLIP_CLASSES[id].
FLIP_CLASSES: np.ndarray = np.array([PARSING_CLASSES.index(_swap_sides(name)) for name in PARSING_CLASSES],
                                    dtype=np.uint8)

_CLASS = {name: index for index, name in enumerate(PARSING_CLASSES)}

#: Height of the forehead above the brows' centre, in middle thirds (brows' centre to nose bottom).
FOREHEAD = 0.8
#: Least height of the skin's top arc above any point of the brows' upper edges, in iod.
BROW_CLEARANCE = 0.12
#: Thickness of a brow drawn from its upper-edge polyline, in iod (WFLW brow rings measure 0.05-0.09 across
#: their middle and taper to the tail; 0.06 matches their areas best).
BROW_THICKNESS = 0.06
#: Half the width of the nose bridge at its top, in iod.
NOSE_BRIDGE = 0.06
#: Hair band: extra width of its ellipse (fraction of the skin arc's width) and extra height (middle thirds).
HAIR_WIDEN = 0.12
HAIR_HEIGHT = 0.45
#: Neck band: width as a fraction of the jaw width, length below the chin in face heights.
NECK_WIDTH = 0.7
NECK_LENGTH = 0.8
#: Points on each half-ellipse arc.
ARC_POINTS = 48
#: Points nearer the jaw's ends than this (|cos| of the arc angle above it) do not raise the arc: a brow
#: reaching past the face's silhouette in a turned face would otherwise make the forehead absurdly tall.
EDGE_COSINE = 0.9
#: Sub-pixel bits for OpenCV's drawing (coordinates in 1/16 px).
SHIFT = 4


@dataclass(frozen=True)
class _Parts:
    """A schema's point lists for each drawn part (indices into the landmarks)."""

    contour: tuple[int, ...]
    chin: int
    brows: dict[str, tuple[int, ...]]
    brow_closed: bool
    brow_tops: tuple[int, ...]
    eyes: dict[str, tuple[int, ...]]
    nose: tuple[int, ...]
    bridge_top: int
    nose_bottom: tuple[int, ...]
    upper_lip: tuple[int, ...]
    lower_lip: tuple[int, ...]
    mouth: tuple[int, ...]


def _ring(*chains: tuple[int, ...]) -> tuple[int, ...]:
    """The chains joined into one closed ring, without repeated joints or a repeated start."""
    ring: list[int] = []
    for index in (i for chain in chains for i in chain):
        if not ring or ring[-1] != index:
            ring.append(index)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    return tuple(ring)


@lru_cache(maxsize=None)
def _parts(num_points: int) -> _Parts:
    """The point lists of the schema with this many points, derived from its boundaries."""
    schema = schema_for(num_points)
    bounds = schema.boundaries
    brow_closed = all(bounds[side][0] == bounds[side][-1] for side in ("brow_left", "brow_right"))
    brows = {side: _ring(bounds[side]) for side in ("brow_left", "brow_right")}
    eyes = {f"eye_{side}": _ring(bounds[f"eyelid_{side}_upper"], bounds[f"eyelid_{side}_lower"])
            for side in ("left", "right")}
    upper_top, upper_bottom = bounds["upper_lip_top"], bounds["upper_lip_bottom"]
    lower_top, lower_bottom = bounds["lower_lip_top"], bounds["lower_lip_bottom"]
    contour = bounds["contour"]
    return _Parts(
        contour=contour,
        chin=contour[len(contour) // 2],
        brows=brows,
        brow_closed=brow_closed,
        # a closed brow ring runs along the brow's upper edge first (WFLW 33-37, then 38-41 back): its first
        # half and middle point are that edge; an open chain is the upper edge itself (iBUG 17-21)
        brow_tops=tuple(i for ring in brows.values() for i in (ring[:len(ring) // 2 + 1] if brow_closed else ring)),
        eyes=eyes,
        nose=schema.groups["nose"],
        bridge_top=bounds["nose_bridge"][0],
        nose_bottom=bounds["nose_bottom"],
        upper_lip=_ring(upper_top, upper_bottom[::-1]),
        lower_lip=_ring(lower_top, lower_bottom),
        # the inner-lip ring: both inner lines without the mouth corners they share with the outer ring
        mouth=_ring(upper_bottom[1:-1], lower_top[::-1][1:-1]),
    )


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a size given as a side or as (height, width)."""
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    if height < 1 or width < 1:
        raise ValueError(f"parsing map size must be positive, not {size}")
    return int(height), int(width)


def _fixed(points: np.ndarray, limit: float) -> np.ndarray:
    """Points as OpenCV's fixed-point int32 [N,1,2], clamped to +-limit px to stay inside its range."""
    return np.rint(np.clip(points, -limit, limit) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)


class _Canvas:
    """A label map being drawn, in pixel-index coordinates."""

    def __init__(self, shape: tuple[int, int]):
        self.labels = np.zeros(shape, np.uint8)
        self.limit = 8.0 * max(shape)

    def fill(self, points: np.ndarray, name: str) -> None:
        """Fill the polygon (boundary pixels included, so a flat one is a line) with class `name`."""
        cv2.fillPoly(self.labels, [_fixed(points, self.limit)], _CLASS[name], cv2.LINE_8, SHIFT)

    def stroke(self, points: np.ndarray, name: str, thickness: int) -> None:
        """Draw the open polyline `thickness` px thick (round joints and ends) with class `name`."""
        cv2.polylines(self.labels, [_fixed(points, self.limit)], False, _CLASS[name], thickness, cv2.LINE_8, SHIFT)


class _Frame:
    """The face's own axes: origin at the middle of the jaw contour's ends, across and up unit vectors."""

    def __init__(self, points: np.ndarray, parts: _Parts):
        left, right = (points[list(parts.eyes[name])].mean(axis=0) for name in ("eye_left", "eye_right"))
        across = right - left
        length = np.hypot(*across)
        self.across = across / length if length > 1e-6 else np.array([1.0, 0.0])
        self.up = np.array([self.across[1], -self.across[0]])  # image y points down
        self.origin = (points[parts.contour[0]] + points[parts.contour[-1]]) / 2

    def local(self, points: np.ndarray) -> np.ndarray:
        """[N,2] image points as (across, up) coordinates."""
        offset = np.atleast_2d(points) - self.origin
        return np.stack([offset @ self.across, offset @ self.up], axis=1)

    def image(self, local: np.ndarray) -> np.ndarray:
        """[N,2] (across, up) coordinates as image points."""
        return self.origin + local[:, :1] * self.across + local[:, 1:] * self.up


def _dome(start: np.ndarray, end: np.ndarray, needs: np.ndarray, widen: float = 0.0,
          raise_by: float = 0.0) -> np.ndarray:
    """A half ellipse from `end` over the top to `start` (face coordinates) that clears each `needs` point.

    The ellipse stands on the segment start-end; its height is the least that puts the arc at or
    above every (across, up) point of `needs` that lies over the segment away from its ends (the
    first need always counts), plus `raise_by`. `widen` stretches it sideways by that fraction of
    its width, so that its ends lie on the segment's line, beyond start and end.
    """
    centre, half = (start[0] + end[0]) / 2, (end[0] - start[0]) / 2
    half = half if abs(half) > 1e-6 else 1e-6
    cosine = np.clip((needs[:, 0] - centre) / half, -EDGE_COSINE, EDGE_COSINE)
    counted = np.abs((needs[:, 0] - centre) / half) <= EDGE_COSINE
    counted[0] = True
    base = end[1] + (start[1] - end[1]) * (1 - cosine) / 2
    height = max(0.0, float(np.max(((needs[:, 1] - base) / np.sqrt(1 - cosine ** 2))[counted])))
    angle = np.linspace(0.0, np.pi, ARC_POINTS)
    return np.stack([centre + half * (1 + widen) * np.cos(angle),
                     end[1] + (start[1] - end[1]) * (1 - np.cos(angle)) / 2 + (height + raise_by) * np.sin(angle)],
                    axis=1)


def parsing_labels(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The uint8 [H,W] class-id map (ids index PARSING_CLASSES) of one face's [P,2] landmarks.

    `size` is the side of a square map or its (height, width); landmarks are in that map's
    pixel-index coordinates. 68- and 98-point markups are understood.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"landmarks must be [P,2], not {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks must be finite")
    parts = _parts(len(points))
    canvas = _Canvas(_shape(size))
    frame = _Frame(points, parts)
    iod = max(inter_ocular(points), 1.0)

    brow_tops = points[list(parts.brow_tops)]
    brow_centre = frame.local(brow_tops.mean(axis=0))[0]
    chin = frame.local(points[parts.chin])[0]
    middle_third = max(brow_centre[1] - frame.local(points[list(parts.nose_bottom)].mean(axis=0))[0, 1], 0.1 * iod)
    face_height = max(brow_centre[1] - chin[1], iod)
    contour = frame.local(points[list(parts.contour)])
    start, end = contour[0], contour[-1]

    needs = np.vstack([brow_centre + [0.0, FOREHEAD * middle_third],
                       frame.local(brow_tops) + [0.0, BROW_CLEARANCE * iod]])
    skin_arc = _dome(start, end, needs)
    canvas.fill(frame.image(_dome(start, end, needs, HAIR_WIDEN, HAIR_HEIGHT * middle_third)), "hair")

    neck_half = NECK_WIDTH * abs(end[0] - start[0]) / 2
    neck_centre = (start[0] + end[0]) / 2
    neck_bottom = chin[1] - NECK_LENGTH * face_height
    neck = np.array([[neck_centre - neck_half, 0.0], [neck_centre + neck_half, 0.0],
                     [neck_centre + neck_half, neck_bottom], [neck_centre - neck_half, neck_bottom]])
    canvas.fill(frame.image(neck), "neck")
    canvas.fill(frame.image(np.vstack([contour, skin_arc])), "skin")

    bridge = points[parts.bridge_top] + np.outer([-NOSE_BRIDGE * iod, NOSE_BRIDGE * iod], frame.across)
    nose = np.vstack([points[list(parts.nose)], bridge]).astype(np.float32)
    canvas.fill(cv2.convexHull(nose).reshape(-1, 2), "nose")

    thickness = max(1, round(BROW_THICKNESS * iod))
    for name, chain in parts.brows.items():
        if parts.brow_closed:
            canvas.fill(points[list(chain)], name)
        else:
            canvas.stroke(points[list(chain)] - thickness / 2 * frame.up, name, thickness)
    for name, ring in parts.eyes.items():
        canvas.fill(points[list(ring)], name)
    for name in ("upper_lip", "lower_lip", "mouth"):
        canvas.fill(points[list(getattr(parts, name))], name)
    return canvas.labels


def parsing_onehot(labels: np.ndarray) -> np.ndarray:
    """The float32 [K,H,W] one-hot planes (K = len(PARSING_CLASSES)) of a [H,W] class-id map."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H,W], not {list(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(PARSING_CLASSES)):
        raise ValueError(f"class ids must lie in 0..{len(PARSING_CLASSES) - 1}")
    return (labels[None] == np.arange(len(PARSING_CLASSES))[:, None, None]).astype(np.float32)


def parsing_maps(landmarks: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Float32 [B,K,H,W] one-hot parsing maps of a batch of [B,P,2] landmarks, on their device."""
    if landmarks.dim() != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be [B,P,2], not {list(landmarks.shape)}")
    batch = landmarks.detach().to("cpu", torch.float32).numpy()
    height, width = _shape(size)
    maps = np.empty((len(batch), len(PARSING_CLASSES), height, width), np.float32)
    for index, face in enumerate(batch):
        maps[index] = parsing_onehot(parsing_labels(face, (height, width)))
    return torch.from_numpy(maps).to(landmarks.device)


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """The [H,W] class-id map mirrored left-right, its left and right classes exchanged."""
    return FLIP_CLASSES[np.asarray(labels)[:, ::-1]]
