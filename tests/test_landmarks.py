import numpy as np
import pytest

from lafin_aug.landmarks import IBUG68, WFLW98, WFLW98_TO_IBUG68, flip_landmarks, inter_ocular, schema_for, to_ibug68


@pytest.mark.parametrize("schema", [IBUG68, WFLW98])
def test_flip_permutation_is_an_involution(schema):
    perm = schema.flip_permutation
    assert sorted(perm) == list(range(schema.num_points))
    assert np.array_equal(perm[perm], np.arange(schema.num_points))


@pytest.mark.parametrize("schema", [IBUG68, WFLW98])
def test_flip_round_trip_is_exact(schema):
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 99, (schema.num_points, 2)).astype(np.float32)
    back = flip_landmarks(flip_landmarks(points, 100), 100)
    assert np.allclose(back, points, atol=1e-4)


def test_flip_uses_pixel_index_mirror_and_swaps_eyes():
    points = np.zeros((68, 2), np.float32)
    points[36] = (10, 40)  # outer corner of the image-left eye
    points[45] = (80, 40)
    flipped = flip_landmarks(points, 100)
    # point 36 of the flipped face is the mirror of old point 45: x' = W - 1 - x
    assert tuple(flipped[36]) == (100 - 1 - 80, 40)
    assert tuple(flipped[45]) == (100 - 1 - 10, 40)
    # the centre column of a 100-pixel image is 49.5, which maps onto itself
    points[30] = (49.5, 60)
    assert flip_landmarks(points, 100)[30, 0] == 49.5


def test_wflw_to_ibug_mapping():
    assert len(WFLW98_TO_IBUG68) == 68
    assert WFLW98_TO_IBUG68[36] == 60 and WFLW98_TO_IBUG68[45] == 72
    points = np.arange(196, dtype=np.float32).reshape(98, 2)
    mapped = to_ibug68(points)
    assert mapped.shape == (68, 2)
    assert np.array_equal(mapped[IBUG68.eye_corners[0]], points[WFLW98.eye_corners[0]])
    assert np.array_equal(mapped[IBUG68.eye_corners[1]], points[WFLW98.eye_corners[1]])


def test_mapping_commutes_with_flip():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 255, (98, 2)).astype(np.float32)
    assert np.allclose(to_ibug68(flip_landmarks(points, 256)), flip_landmarks(to_ibug68(points), 256))


@pytest.mark.parametrize("schema", [IBUG68, WFLW98])
def test_schema_tables(schema):
    assert len(schema.boundaries) == 13
    grouped = sorted(i for group in schema.groups.values() for i in group)
    assert grouped == list(range(schema.num_points))
    for curve in schema.boundaries.values():
        assert all(0 <= i < schema.num_points for i in curve)


def test_inter_ocular_and_unknown_schema():
    points = np.zeros((68, 2), np.float32)
    points[36], points[45] = (0, 0), (3, 4)
    assert inter_ocular(points) == 5.0
    with pytest.raises(ValueError, match="no landmark schema with 5 points"):
        schema_for(5)
