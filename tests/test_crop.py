from pathlib import Path

import cv2
import numpy as np
import pytest

from lafin_aug.data.base import Face
from lafin_aug.data.crop import apply_affine, compose_affine, crop_box, crop_face, flip_face, invert_affine, warp_image
from lafin_aug.landmarks import IBUG68


def _grid_landmarks(centre: tuple[float, float], extent: float, rng: np.random.Generator) -> np.ndarray:
    """68 integer points on a jittered 9x8 grid, `extent` pixels wide, spread well apart."""
    gx, gy = np.meshgrid(np.linspace(-0.5, 0.5, 9), np.linspace(-0.5, 0.5, 8))
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)[:68] * extent + centre
    return np.rint(points + rng.uniform(-2, 2, points.shape)).astype(np.float32)


def _centroid(image: np.ndarray, point: np.ndarray, radius: int = 4) -> np.ndarray:
    """Intensity-weighted centre of the window around `point`."""
    x, y = np.rint(point).astype(int)
    window = image[y - radius:y + radius + 1, x - radius:x + radius + 1].astype(np.float64)
    ys, xs = np.mgrid[y - radius:y + radius + 1, x - radius:x + radius + 1]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def _peak(image: np.ndarray, point: np.ndarray, radius: int = 4) -> np.ndarray:
    """(x, y) of the brightest pixel in the window around `point`."""
    x, y = np.rint(point).astype(int)
    window = image[y - radius:y + radius + 1, x - radius:x + radius + 1]
    row, col = np.unravel_index(window.argmax(), window.shape)
    return np.array([x - radius + col, y - radius + row], np.float64)


def test_crop_box_follows_lafin_rule():
    # landmark box x 100..300 (W_b 200), y 200..350 (H_b 150)
    points = np.array([[100, 200], [300, 200], [100, 350], [300, 350], [180, 260]], np.float32)
    # LaFIn: x 100-60..300+60 = 40..360; y 200-45-30..350+45-30 = 125..365, padded by 40 -> 85..405
    assert crop_box(points) == pytest.approx((40.0, 85.0, 320.0))
    # a tall box (x 200..350, y 100..300) is padded in x instead: x 155..395 -> 115..435, y 0..320
    assert crop_box(points[:, ::-1].copy()) == pytest.approx((115.0, 0.0, 320.0))
    with pytest.raises(ValueError, match="empty"):
        crop_box(np.zeros((68, 2), np.float32))


def test_box_maps_onto_the_whole_crop():
    points = np.array([[100, 200], [300, 350]], np.float32)
    crop = crop_face(np.zeros((500, 500, 3), np.uint8), points, size=64)
    x0, y0, side = crop_box(points)
    corners = apply_affine(np.array([[x0, y0], [x0 + side, y0 + side]]), crop.affine)
    assert np.allclose(corners, [[-0.5, -0.5], [63.5, 63.5]], atol=1e-4)
    assert crop.image.shape == (64, 64, 3) and crop.image.dtype == np.uint8
    assert crop.landmarks.dtype == np.float32


def test_affine_helpers_round_trip():
    rng = np.random.default_rng(0)
    affine = np.hstack([rng.normal(size=(2, 2)) + 2 * np.eye(2), rng.normal(size=(2, 1)) * 50])
    points = rng.uniform(0, 300, (68, 2))
    assert np.allclose(apply_affine(apply_affine(points, affine), invert_affine(affine)), points, atol=1e-3)
    assert np.allclose(compose_affine(invert_affine(affine), affine), [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("shape, extent, size", [
    ((420, 560), 90, 256),     # upscaling x ~1.8
    ((1500, 1800), 880, 256),  # downscaling by ~5.5
    ((700, 700), 330, 128),    # downscaling by ~4 to another size
    ((900, 1000), 330, 256),   # downscaling by ~2
])
def test_dots_at_landmarks_land_on_transformed_landmarks(shape, extent, size):
    rng = np.random.default_rng(1)
    image = np.zeros(shape + (3,), np.uint8)
    points = _grid_landmarks((shape[1] / 2 + 7.3, shape[0] / 2 - 3.1), extent, rng)
    zoom = size / crop_box(points)[2]
    radius = int(round(1 / zoom)) if zoom < 1 else 0  # a dot about two output pixels wide
    for x, y in points.astype(int):
        cv2.circle(image, (int(x), int(y)), radius, (255, 255, 255), -1)
    crop = crop_face(image, points, size)
    errors = [np.abs(_centroid(crop.image[..., 0], point) - point).max() for point in crop.landmarks]
    assert max(errors) < 0.2
    peaks = [np.abs(_peak(crop.image[..., 0], point) - point).max() for point in crop.landmarks]
    assert max(peaks) <= (0.5001 if zoom > 1 else 0.75)  # the brightest pixel is the one nearest the landmark


def test_downscaling_does_not_alias():
    stripes = np.zeros((1000, 1000, 3), np.uint8)
    stripes[:, ::2] = 255
    points = np.array([[200, 200], [800, 800]], np.float32)  # box side 960: shrink by 3.75
    crop = crop_face(stripes, points, 256)
    inside = crop.image[40:250, 10:246, 0].astype(np.float64)  # the box starts 100 px above the image
    assert abs(inside.mean() - 127.5) < 3 and inside.std() < 10
    plain = cv2.warpAffine(stripes, crop.affine, (256, 256), flags=cv2.INTER_LINEAR)
    assert plain[40:250, 10:246, 0].std() > 50  # what a plain bilinear warp would do


@pytest.mark.parametrize("extent", [60, 500])  # up- and downscaling
def test_zero_padding_where_the_box_leaves_the_image(extent):
    image = np.full((600, 700, 3), 200, np.uint8)
    points = np.array([[10, 5], [10 + extent, 5 + extent]], np.float32)  # face at the top-left corner
    crop = crop_face(image, points, 128)
    grid = np.stack(np.meshgrid(np.arange(128), np.arange(128)), axis=-1).reshape(-1, 2)
    source = apply_affine(grid, invert_affine(crop.affine)).reshape(128, 128, 2)
    margin = 1.5 * max(1.0, extent * 1.6 / 128)  # one output pixel plus one source pixel
    outside = (source < -margin).any(axis=-1)
    inside = (source > margin).all(axis=-1)
    assert outside.any() and inside.any()
    assert (crop.image[outside] == 0).all()
    assert (crop.image[inside] == 200).all()


def test_warp_of_a_box_entirely_outside_the_image_is_black():
    affine = np.array([[0.1, 0, -500.0], [0, 0.1, -500.0]])
    assert not warp_image(np.full((100, 100, 3), 255, np.uint8), affine, (32, 32)).any()


def _read_pts(path: Path) -> np.ndarray:
    text = path.read_text()
    values = text[text.index("{") + 1:text.index("}")].split()
    return np.asarray(values, np.float32).reshape(-1, 2)


def test_recropping_a_lafin_crop_changes_almost_nothing(shared_data):
    files = sorted((shared_data / "wild" / "test").glob("*.jpg"))[:20]
    if not files:
        pytest.skip("no wild crops in the shared data")
    for path in files:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        points = _read_pts(path.with_suffix(".pts"))
        x0, y0, side = crop_box(points)
        assert abs(x0) < 2.5 and abs(y0) < 2.5 and abs(side - 256) < 3, path.name
        crop = crop_face(image, points)
        assert np.abs(crop.landmarks - points).max() < 2, path.name
        difference = np.abs(crop.image.astype(int) - image.astype(int)).mean()
        shifted = np.abs(np.roll(image, 3, axis=(0, 1)).astype(int) - image.astype(int)).mean()
        assert difference < 8 and difference < shifted, path.name


def test_cropping_a_face_records_the_composed_affine():
    rng = np.random.default_rng(2)
    points = _grid_landmarks((400, 300), 200, rng)
    face = Face(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), points, {"index": 4})
    once = crop_face(face, size=256)
    twice = crop_face(once, size=128)
    assert isinstance(once, Face) and once.meta["index"] == 4
    assert once.image.shape == (256, 256, 3) and twice.image.shape == (128, 128, 3)
    assert np.allclose(apply_affine(points, twice.meta["crop_affine"]), twice.landmarks, atol=1e-3)


def _dotted_face(width: int, height: int, rng: np.random.Generator) -> Face:
    xs = rng.choice(width, 68, replace=False)
    ys = rng.integers(0, height, 68)
    image = np.zeros((height, width, 3), np.uint8)
    image[ys, xs] = (np.arange(68)[:, None] + 1) * [3, 2, 1]  # dot i carries its index
    return Face(image, np.stack([xs, ys], axis=1).astype(np.float32), {})


def test_flip_keeps_dots_on_flipped_landmarks():
    face = _dotted_face(97, 80, np.random.default_rng(3))
    flipped = flip_face(face)
    xs, ys = flipped.landmarks.astype(int).T
    values = flipped.image[ys, xs]
    # flipped point i is the mirror of original point perm[i], so it carries that point's dot
    assert np.array_equal(values, (IBUG68.flip_permutation[:, None] + 1) * [3, 2, 1])
    assert flipped.meta["flipped"] is True


def test_flip_round_trip_is_exact():
    rng = np.random.default_rng(4)
    face = _dotted_face(120, 90, rng)
    face.landmarks += rng.integers(0, 4, face.landmarks.shape) / 4  # quarter pixels stay exact
    back = flip_face(flip_face(face))
    assert np.array_equal(back.image, face.image) and np.array_equal(back.landmarks, face.landmarks)
    assert back.meta["flipped"] is False


def test_flip_after_crop_keeps_the_affine_true():
    rng = np.random.default_rng(5)
    points = _grid_landmarks((300, 250), 150, rng)
    cropped = crop_face(Face(np.zeros((500, 600, 3), np.uint8), points, {}), size=128)
    flipped = flip_face(cropped)
    mapped = apply_affine(points, flipped.meta["crop_affine"])[IBUG68.flip_permutation]
    assert np.allclose(mapped, flipped.landmarks, atol=1e-3)
