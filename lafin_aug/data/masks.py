"""Inpainting masks (uint8 [S,S], 1 = hole), reproducible from (seed, epoch, index).

Shape generators (free-form strokes, rectangles) are small configurable dataclasses; a mixer
(:func:`draw_mask`) picks one per mask and fills a square until its hole ratio lies in a bucket
drawn from the configuration. The buckets are LaFIn's: hole ratios 10-20% ... 50-60%, plus
LaFIn's "centre" mask (the central square of half the side), and MDRNets' 1-20%, 20-40%, 40-60%. Sizes are fractions of the side,
so a configuration works at any size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import cv2
import numpy as np

from lafin_aug.config import Config

#: Hole-ratio buckets: name -> [low, high).
BUCKETS: dict[str, tuple[float, float]] = {
    "10-20": (0.1, 0.2),
    "20-30": (0.2, 0.3),
    "30-40": (0.3, 0.4),
    "40-50": (0.4, 0.5),
    "50+": (0.5, 0.6),
}
#: The MDRNets paper's irregular-mask buckets (its Table 1): name -> [low, high).
MDR_BUCKETS: dict[str, tuple[float, float]] = {
    "1-20": (0.01, 0.2),
    "20-40": (0.2, 0.4),
    "40-60": (0.4, 0.6),
}
#: Every bucket a mask can be drawn for.
ALL_BUCKETS: dict[str, tuple[float, float]] = {**BUCKETS, **MDR_BUCKETS}
#: The bucket name of LaFIn's centre mask (hole ratio exactly 25% for sides divisible by 4).
CENTRE = "centre"

MaskKind = Literal["mixed", "irregular", "block", "centre"]

#: Shapes tried per mask before the deterministic fill takes over.
MAX_SHAPES = 300


class ShapeGenerator(Protocol):
    """Draws random shapes into a mask."""

    def add_shape(self, mask: np.ndarray, rng: np.random.Generator, budget: int) -> bool:
        """Draw one shape covering at most `budget` pixels into `mask`; False if none fits."""


@dataclass(frozen=True)
class IrregularMasks(Config):
    """Free-form strokes: random walks of thick line segments of varying width.

    Segments have round caps, so each joint is a disc. Lengths and widths are fractions of the mask side; turn is the largest change of
    direction between segments, in radians.
    """

    vertices: tuple[int, int] = (4, 10)
    length: tuple[float, float] = (0.04, 0.12)
    width: tuple[float, float] = (0.03, 0.14)
    width_jitter: float = 0.4
    turn: float = 0.45 * math.pi

    def add_shape(self, mask: np.ndarray, rng: np.random.Generator, budget: int) -> bool:
        """Draw one stroke of at most `budget` pixels; False if not even one segment fits."""
        size = mask.shape[0]
        segments = int(rng.integers(self.vertices[0], self.vertices[1] + 1))
        draws = rng.random(4 + 3 * segments)
        start_width, start_x, start_y, heading = draws[:4].tolist()
        jitter, steps, turns = draws[4:4 + segments], draws[4 + segments:4 + 2 * segments], draws[4 + 2 * segments:]
        width = size * (self.width[0] + (self.width[1] - self.width[0]) * start_width)
        widths = np.rint(np.maximum(1.0, width * (1 + self.width_jitter * (2 * jitter - 1))))
        lengths = size * (self.length[0] + (self.length[1] - self.length[0]) * steps)
        # a rasterised thick segment with round caps covers fewer than (length + width + 3) * (width + 3) pixels
        kept = int(np.searchsorted(np.cumsum((lengths + widths + 3) * (widths + 3)), budget, side="right"))
        if kept == 0:
            return False
        angles = 2 * math.pi * heading + np.cumsum(self.turn * (2 * turns[:kept] - 1))
        steps_xy = lengths[:kept, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        walk = np.cumsum(np.vstack([[start_x * (size - 1), start_y * (size - 1)], steps_xy]), axis=0)
        points = np.rint(walk.clip(0, size - 1)).astype(np.int32).tolist()
        for start, end, thickness in zip(points, points[1:], widths[:kept].astype(int).tolist()):
            cv2.line(mask, start, end, 1, thickness)
        return True


@dataclass(frozen=True)
class BlockMasks(Config):
    """Axis-aligned rectangles with sides drawn as fractions of the mask side."""

    side: tuple[float, float] = (0.15, 0.5)

    def add_shape(self, mask: np.ndarray, rng: np.random.Generator, budget: int) -> bool:
        """Draw one rectangle of at most `budget` pixels; False if not even one pixel fits."""
        size = mask.shape[0]
        low, high = self.side
        width, height = (size * (low + (high - low) * rng.random(2))).clip(1, size)
        if width * height > budget:
            shrink = math.sqrt(budget / (width * height))
            width, height = width * shrink, height * shrink
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            return False
        x = int(rng.integers(0, size - width + 1))
        y = int(rng.integers(0, size - height + 1))
        mask[y:y + height, x:x + width] = 1
        return True


@dataclass(frozen=True)
class MaskConfig(Config):
    """Which masks to draw.

    kind: "irregular" or "block" shapes, "mixed" (irregular with probability irregular_share,
    else block; LaFIn's training masks) or "centre" (always the centre square). buckets: the
    hole-ratio buckets (BUCKETS keys or "centre"), one drawn uniformly per mask.
    """

    kind: MaskKind = "mixed"
    buckets: tuple[str, ...] = tuple(BUCKETS)
    irregular_share: float = 0.5
    irregular: IrregularMasks = field(default_factory=IrregularMasks)
    block: BlockMasks = field(default_factory=BlockMasks)

    def __post_init__(self) -> None:
        if self.kind not in ("mixed", "irregular", "block", "centre"):
            raise ValueError(f"unknown mask kind {self.kind!r} (known: mixed, irregular, block, centre)")
        unknown = [b for b in self.buckets if b not in ALL_BUCKETS and b != CENTRE]
        if unknown or not self.buckets:
            raise ValueError(f"unknown or no mask buckets {unknown} (known: {', '.join(ALL_BUCKETS)}, {CENTRE})")
        if not 0 <= self.irregular_share <= 1:
            raise ValueError(f"irregular_share must lie in [0, 1], not {self.irregular_share}")


class MaskDraw(NamedTuple):
    """One drawn mask with the generator kind ("irregular", "block", "centre") and bucket it came from."""

    mask: np.ndarray
    kind: str
    bucket: str


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of mask pixels that are holes."""
    return np.count_nonzero(mask) / mask.size


def bucket_of(ratio: float) -> str | None:
    """The BUCKETS name whose [low, high) holds this hole ratio; None outside them all."""
    for name, (low, high) in BUCKETS.items():
        if low <= ratio < high:
            return name
    return None


def centre_mask(size: int) -> np.ndarray:
    """LaFIn's centre mask: the central square from size//4 to size - size//4."""
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4:size - size // 4, size // 4:size - size // 4] = 1
    return mask


def _pixel_range(bucket: str, pixels: int) -> tuple[int, int]:
    """The fewest and most hole pixels whose ratio lies in the bucket."""
    low, high = (round(100 * bound) for bound in ALL_BUCKETS[bucket])
    return -(-low * pixels // 100), -(-high * pixels // 100) - 1


def _grow(mask: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Turn the `count` non-hole pixels nearest to the holes (or to a random pixel) into holes."""
    if not mask.any():
        mask.ravel()[rng.integers(mask.size)] = 1
        count -= 1
    distance = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    distance += 0.01 * rng.random(distance.shape, dtype=np.float32)  # break ties at random
    distance[mask == 1] = np.inf
    nearest = np.argpartition(distance.ravel(), count - 1)[:count]
    mask.ravel()[nearest] = 1


def fill_to_bucket(generator: ShapeGenerator, size: int, bucket: str, rng: np.random.Generator) -> np.ndarray:
    """A size x size mask of the generator's shapes whose hole ratio lies in the bucket.

    Shapes are added, each within the pixels left below the bucket's top, until a target drawn
    inside the bucket is reached; if shapes stop fitting, the holes grow outwards pixel by pixel.
    """
    fewest, most = _pixel_range(bucket, size * size)
    if fewest > most:
        raise ValueError(f"no {size}x{size} mask has a hole ratio in bucket {bucket!r}")
    target = int(rng.integers(fewest, most + 1))
    mask = np.zeros((size, size), np.uint8)
    holes = 0
    for _ in range(MAX_SHAPES):
        if holes >= target or not generator.add_shape(mask, rng, most - holes):
            break
        holes = cv2.countNonZero(mask)
    if holes < target:
        _grow(mask, target - holes, rng)
    return mask


def draw_mask(size: int, seed: int, epoch: int, index: int, config: MaskConfig = MaskConfig()) -> MaskDraw:
    """The mask of sample `index` in `epoch` of the run seeded `seed`, with its kind and bucket."""
    rng = np.random.default_rng((seed, epoch, index))
    bucket = config.buckets[int(rng.integers(len(config.buckets)))]
    if config.kind == "centre" or bucket == CENTRE:
        return MaskDraw(centre_mask(size), "centre", CENTRE)
    kind = config.kind
    if kind == "mixed":
        kind = "irregular" if rng.random() < config.irregular_share else "block"
    generator = config.irregular if kind == "irregular" else config.block
    return MaskDraw(fill_to_bucket(generator, size, bucket, rng), kind, bucket)


def make_mask(size: int, seed: int, epoch: int, index: int, config: MaskConfig = MaskConfig()) -> np.ndarray:
    """The uint8 [size, size] mask (1 = hole) of sample `index` in `epoch` of the run seeded `seed`."""
    return draw_mask(size, seed, epoch, index, config).mask
