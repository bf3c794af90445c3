import numpy as np

from lafin_aug.data.crop import apply_affine
from lafin_aug.data.transforms import TransformConfig, rotation_affine, transform_face


def _dots(size, points):
    image = np.zeros((size, size, 3), np.uint8)
    for x, y in np.round(points).astype(int):
        image[y - 1:y + 2, x - 1:x + 2] = 255
    return image


def test_rotation_about_centre_keeps_centre_fixed():
    affine = rotation_affine(64, 30.0, 1.1, (0.0, 0.0))
    assert np.allclose(apply_affine(np.array([[31.5, 31.5]]), affine), [[31.5, 31.5]], atol=1e-5)


def test_augment_moves_image_and_landmarks_together():
    size = 96
    points = np.array([[30, 30], [60, 40], [45, 70]] * 23, np.float32)[:68]
    image = _dots(size, points)
    config = TransformConfig(brightness=0, contrast=0, saturation=0)
    for seed in range(5):
        out, moved = transform_face(image, points, np.random.default_rng(seed), config)
        assert moved.shape == points.shape and moved.dtype == np.float32
        for x, y in moved:
            xi, yi = int(round(x)), int(round(y))
            assert out[yi, xi].max() > 100, (seed, x, y)


def test_augment_is_deterministic_for_a_seed():
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    points = np.random.default_rng(2).uniform(10, 50, (68, 2)).astype(np.float32)
    a = transform_face(image, points, np.random.default_rng(7))
    b = transform_face(image, points, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
