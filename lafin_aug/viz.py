"""Pictures for people: landmarks on faces, mask overlays, labelled grids, shard previews.

All images are uint8 HxWx3 RGB (grayscale HxW tiles are accepted by :func:`image_grid`);
colours are RGB tuples. Functions return new arrays and never modify their inputs.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from lafin_aug.images import save_image
from lafin_aug.shards import open_shard, read_manifest, shard_errors

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PREVIEW_MIN_TILE = 128  # preview tiles smaller than this are enlarged (nearest neighbour)


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color: tuple[int, int, int] = (0, 255, 0),
                   radius: int | None = None) -> np.ndarray:
    """A copy of `image` with a filled dot at each finite (x, y) pixel-index landmark.

    `radius` defaults to max(1, min(H, W) // 128) pixels.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if radius is None:
        radius = max(1, min(out.shape[:2]) // 128)
    shift = 4  # sub-pixel centres: coordinates in 1/16 pixel
    for x, y in np.asarray(landmarks, dtype=np.float64):
        if np.isfinite(x) and np.isfinite(y):
            centre = (int(round(x * (1 << shift))), int(round(y * (1 << shift))))
            cv2.circle(out, centre, radius << shift, color, -1, cv2.LINE_AA, shift)
    return out


def mask_overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 64),
                 alpha: float = 0.5) -> np.ndarray:
    """A copy of `image` with the hole (mask != 0; HxW or HxWx1) tinted towards `color` by `alpha`."""
    hole = np.asarray(mask).reshape(image.shape[:2]) != 0
    out = np.array(image, dtype=np.uint8)
    tint = np.asarray(color, dtype=np.float32)
    out[hole] = np.round(out[hole] * (1.0 - alpha) + tint * alpha).astype(np.uint8)
    return out


def _font_scale(width: int) -> float:
    """Text scale for a tile `width` pixels wide."""
    return float(np.clip(width / 320.0, 0.3, 1.0))


def _put_text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float,
              color: tuple[int, int, int], outline: tuple[int, int, int] | None = None) -> None:
    """Draw `text` in place with its baseline-left at `origin`, optionally outlined."""
    if outline is not None:
        cv2.putText(canvas, text, origin, _FONT, scale, outline, 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, _FONT, scale, color, 1, cv2.LINE_AA)


def label_height(tile_width: int) -> int:
    """Height in pixels of the header band :func:`image_grid` adds for labels over tiles this wide."""
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, _font_scale(tile_width), 1)
    return text_h + baseline + 4


def image_grid(rows: list[list[np.ndarray]], labels: list[str] | None = None, pad: int = 2,
               background: int = 255) -> np.ndarray:
    """Tiles of one size laid out in rows, `pad` pixels apart and around, on `background`.

    Shorter rows are filled with background. The result is
    (label band + R*h + (R+1)*pad) x (C*w + (C+1)*pad) x 3, where C is the longest row and the
    label band, present only with `labels` (one per column), is :func:`label_height` (w) + pad.
    """
    tiles = [tile for row in rows for tile in row]
    if not tiles:
        raise ValueError("image_grid needs at least one tile")
    h, w = tiles[0].shape[:2]
    if any(tile.shape[:2] != (h, w) for tile in tiles):
        raise ValueError(f"tiles differ in size: {sorted({t.shape[:2] for t in tiles})}")
    columns = max(len(row) for row in rows)
    if labels is not None and len(labels) != columns:
        raise ValueError(f"{len(labels)} labels for {columns} columns")
    band = label_height(w) + pad if labels is not None else 0
    grid = np.full((band + len(rows) * h + (len(rows) + 1) * pad, columns * w + (columns + 1) * pad, 3),
                   background, np.uint8)
    (_, text_h), _ = cv2.getTextSize("Ag", _FONT, _font_scale(w), 1)
    for c, text in enumerate(labels or []):
        _put_text(grid, text, (pad + c * (w + pad) + 2, pad + 2 + text_h), _font_scale(w), (0, 0, 0))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            top, left = band + pad + r * (h + pad), pad + c * (w + pad)
            grid[top:top + h, left:left + w] = tile[..., None] if tile.ndim == 2 else tile
    return grid


def save_png(path: str | Path, image_rgb: np.ndarray) -> None:
    """Write an RGB (or grayscale) uint8 image as PNG, atomically."""
    save_image(path, np.asarray(image_rgb, dtype=np.uint8), suffix=".png")


#: line colours (RGB) for curves, in order
CURVE_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, x_label: str, y_label: str,
                x_max: float, size: tuple[int, int] = (720, 480)) -> np.ndarray:
    """A line chart (uint8 RGB) of named (x, y) curves with y in [0, 1] and x in [0, x_max], with a legend."""
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    canvas = np.full((height, width, 3), 255, np.uint8)
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + np.clip(x / x_max, 0, 1) * plot_w
        py = top + (1 - np.clip(y, 0, 1)) * plot_h
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for k in range(6):
        y = top + k * plot_h // 5
        x = left + k * plot_w // 5
        cv2.line(canvas, (left, y), (left + plot_w, y), (225, 225, 225), 1)
        cv2.line(canvas, (x, top), (x, top + plot_h), (225, 225, 225), 1)
        _put_text(canvas, f"{1 - k / 5:.1f}", (left - 40, y + 5), 0.45, (0, 0, 0))
        _put_text(canvas, f"{k * x_max / 5:.3g}", (x - 12, top + plot_h + 20), 0.45, (0, 0, 0))
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    _put_text(canvas, title, (left + plot_w // 2 - 5 * len(title), 25), 0.6, (0, 0, 0))
    _put_text(canvas, x_label, (left + plot_w // 2 - 60, height - 12), 0.5, (0, 0, 0))
    _put_text(canvas, y_label, (5, top - 10), 0.45, (0, 0, 0))
    for k, (name, (x, y)) in enumerate(curves.items()):
        colour = CURVE_COLOURS[k % len(CURVE_COLOURS)]
        cv2.polylines(canvas, [to_px(np.asarray(x, float), np.asarray(y, float))], False, colour, 2, cv2.LINE_AA)
        legend_y = top + plot_h - 15 - 22 * (len(curves) - 1 - k)
        cv2.line(canvas, (left + plot_w - 200, legend_y - 5), (left + plot_w - 170, legend_y - 5), colour, 3)
        _put_text(canvas, name, (left + plot_w - 160, legend_y), 0.5, (0, 0, 0))
    return canvas


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """`image` scaled up by an integer factor, nearest neighbour."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def preview_shards(directory: str | Path, out_png: str | Path, n: int = 16, seed: int = 0) -> np.ndarray:
    """Save and return a picture of `n` augmented records of a shard directory, picked by `seed`.

    Each record is a triplet of tiles: the real crop of the same face (its epoch -1 record, or a
    grey tile when the shards hold none), the augmented image with its mask tinted, and the
    augmented image with its landmarks and a "source eEPOCH" caption (``*`` = edited landmarks).
    Triplets are laid out ceil(sqrt(n)) to a row. Tiles under 128 pixels are enlarged.
    """
    directory = Path(directory)
    rows = read_manifest(directory)
    augmented: list[tuple[str, int]] = []
    real: dict[int, tuple[str, int]] = {}
    for row in rows:
        with open_shard(directory / row.name) as handle, shard_errors(directory / row.name):
            epoch, source = handle["epoch"][:], handle["source_index"][:]
        augmented += [(row.name, int(i)) for i in np.flatnonzero(epoch != -1)]
        for i in np.flatnonzero(epoch == -1):
            real.setdefault(int(source[i]), (row.name, int(i)))
    if not augmented:
        raise ValueError(f"{directory}: no augmented (epoch >= 0) records to preview")
    picks = np.sort(np.random.default_rng(seed).choice(len(augmented), min(n, len(augmented)), replace=False))

    triplets = []
    for pick in picks:
        name, i = augmented[pick]
        with open_shard(directory / name) as handle, shard_errors(directory / name):
            image, mask, landmarks = handle["image"][i], handle["mask"][i], handle["landmarks"][i]
            source, epoch, edited = int(handle["source_index"][i]), int(handle["epoch"][i]), bool(handle["edited"][i])
        factor = max(1, math.ceil(_PREVIEW_MIN_TILE / image.shape[0]))
        if source in real:
            real_name, j = real[source]
            with open_shard(directory / real_name) as handle, shard_errors(directory / real_name):
                real_tile = _enlarge(handle["image"][j], factor)
        else:
            real_tile = np.full_like(_enlarge(image, factor), 128)
        augmented_tile = draw_landmarks(_enlarge(image, factor), landmarks * factor + (factor - 1) / 2)
        size = augmented_tile.shape[1]
        _put_text(augmented_tile, f"{source} e{epoch}{'*' if edited else ''}", (3, size - 5),
                  _font_scale(size), (255, 255, 255), (0, 0, 0))
        triplets.append([real_tile, mask_overlay(_enlarge(image, factor), _enlarge(mask, factor)), augmented_tile])

    per_row = math.ceil(math.sqrt(len(triplets)))
    grid_rows = [sum(triplets[r:r + per_row], []) for r in range(0, len(triplets), per_row)]
    grid = image_grid(grid_rows, labels=["real", "mask", "augmented"] * per_row)
    save_png(out_png, grid)
    return grid
