"""Pictures: landmarks, mask overlays, grids, PNG writing and shard previews."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lafin_aug.io import write_json
from lafin_aug.shards import ShardHeader, shard_name, write_manifest, write_shard
from lafin_aug.viz import draw_landmarks, image_grid, label_height, mask_overlay, preview_shards, save_png


def smooth_image(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (h, w, 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 3).clip(0, 255).astype(np.uint8)


def test_draw_landmarks_changes_pixels_only_near_landmarks():
    image = np.full((64, 64, 3), 40, np.uint8)
    points = np.array([[10.0, 12.0], [50.5, 30.25], [np.nan, 5.0]], np.float32)
    out = draw_landmarks(image, points, color=(0, 255, 0), radius=2)
    assert out is not image and (image == 40).all()
    changed = np.argwhere((out != image).any(axis=2))
    assert len(changed)
    distance = np.min(np.linalg.norm(changed[:, None, ::-1] - points[None, :2], axis=2), axis=1)
    assert distance.max() <= 2 + 2  # radius plus the antialiased rim
    for x, y in points[:2]:
        assert out[int(round(y)), int(round(x)), 1] > 200


def test_mask_overlay_tints_only_the_hole():
    image = smooth_image()
    mask = np.zeros((32, 32), np.uint8)
    mask[4:10, 6:20] = 1
    out = mask_overlay(image, mask)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask == 1] != image[mask == 1]).any(axis=1).all()
    assert np.array_equal(mask_overlay(image, mask[..., None]), out)


def test_grid_shape_arithmetic_and_placement():
    h, w, pad = 10, 14, 3
    tiles = [[np.full((h, w, 3), 10 * (r * 3 + c), np.uint8) for c in range(3)] for r in range(2)]
    tiles.append([np.full((h, w), 7, np.uint8)])  # shorter row, grayscale tile
    grid = image_grid(tiles, pad=pad)
    assert grid.shape == (3 * h + 4 * pad, 3 * w + 4 * pad, 3) and grid.dtype == np.uint8
    top, left = pad + 1 * (h + pad), pad + 2 * (w + pad)
    assert (grid[top:top + h, left:left + w] == 50).all()
    assert (grid[pad + 2 * (h + pad):, pad + w + pad:] == 255).all()  # empty cells of the short row
    labelled = image_grid(tiles, labels=["a", "b", "c"], pad=pad)
    assert labelled.shape == (grid.shape[0] + label_height(w) + pad, grid.shape[1], 3)
    assert (labelled[:label_height(w)] < 128).any()  # the text is drawn in the band


def test_grid_rejects_mismatched_tiles_and_labels():
    with pytest.raises(ValueError, match="differ in size"):
        image_grid([[np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)]])
    with pytest.raises(ValueError, match="2 labels for 1 columns"):
        image_grid([[np.zeros((4, 4, 3), np.uint8)]], labels=["a", "b"])


def test_save_png_round_trip_keeps_rgb(tmp_path: Path):
    image = smooth_image(20, 30)
    image[0, 0] = (255, 0, 0)
    save_png(tmp_path / "out" / "x.png", image)
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "x.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, image)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.png"]


def test_preview_shards_lays_out_triplets(tmp_path: Path):
    s, p = 32, 68
    header = ShardHeader(points=p, size=s, dataset="synthetic", split="train", seed=0, inpainter_sha256="")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(2):
        n = 6  # sources 3k..3k+2, epochs -1 and 0 (source 5 has no real crop)
        epoch = np.array([-1, 0] * 3, np.int32)
        epoch[4] = 1 if k == 1 else -1
        mask = np.zeros((n, s, s), np.uint8)
        mask[epoch >= 0, 8:20, 6:26] = 1
        rows.append(write_shard(
            tmp_path / shard_name(k), header, image=np.stack([smooth_image(s, s, k * n + i) for i in range(n)]),
            landmarks=rng.uniform(0, s - 1, (n, p, 2)), mask=mask,
            source_index=np.repeat(np.arange(3 * k, 3 * k + 3), 2), epoch=epoch, edited=np.zeros(n, np.uint8)))
    write_manifest(tmp_path, rows)
    write_json(tmp_path / "run.json", {})
    out = tmp_path / "preview.png"
    grid = preview_shards(tmp_path, out, n=5, seed=1)
    tile = 128  # 32-pixel crops are enlarged 4x
    per_row = 3  # ceil(sqrt(5))
    assert grid.shape == (label_height(tile) + 2 + 2 * tile + 3 * 2, 3 * per_row * tile + (3 * per_row + 1) * 2, 3)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB), grid)
    assert np.array_equal(preview_shards(tmp_path, out, n=5, seed=1), grid)
    assert not np.array_equal(preview_shards(tmp_path, out, n=5, seed=2), grid)
