import cv2
import numpy as np
import pytest

from lafin_aug.data.masks import (
    BUCKETS,
    CENTRE,
    IrregularMasks,
    MaskConfig,
    bucket_of,
    centre_mask,
    draw_mask,
    hole_ratio,
    make_mask,
)


def test_masks_are_reproducible_and_change_with_epoch_index_and_seed():
    first = make_mask(128, seed=7, epoch=3, index=11)
    assert np.array_equal(first, make_mask(128, seed=7, epoch=3, index=11))
    assert not np.array_equal(first, make_mask(128, seed=7, epoch=4, index=11))
    assert not np.array_equal(first, make_mask(128, seed=7, epoch=3, index=12))
    assert not np.array_equal(first, make_mask(128, seed=8, epoch=3, index=11))


@pytest.mark.parametrize("kind", ["mixed", "irregular", "block", "centre"])
@pytest.mark.parametrize("size", [64, 100, 256])
def test_mask_dtype_shape_and_values(kind, size):
    mask = make_mask(size, 0, 0, 0, MaskConfig(kind=kind))
    assert mask.dtype == np.uint8 and mask.shape == (size, size)
    assert set(np.unique(mask)) == {0, 1}


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("bucket", list(BUCKETS))
def test_every_bucket_lands_in_its_ratio_range(size, bucket):
    low, high = BUCKETS[bucket]
    for kind in ("irregular", "block"):
        config = MaskConfig(kind=kind, buckets=(bucket,))
        ratios = [hole_ratio(make_mask(size, 1, 0, index, config)) for index in range(50)]
        assert all(low <= ratio < high for ratio in ratios), (kind, min(ratios), max(ratios))
        assert {bucket_of(ratio) for ratio in ratios} == {bucket}
        assert max(ratios) - min(ratios) > 0.3 * (high - low), "ratios should spread over the bucket"


def test_bucket_is_reached_even_when_no_shape_fits():
    config = MaskConfig(kind="irregular", buckets=("30-40",), irregular=IrregularMasks(width=(0.9, 0.9)))
    for index in range(5):
        assert bucket_of(hole_ratio(make_mask(64, 0, 0, index, config))) == "30-40"


def test_centre_mask_is_the_central_half():
    mask = centre_mask(256)
    expected = np.zeros((256, 256), np.uint8)
    expected[64:192, 64:192] = 1
    assert np.array_equal(mask, expected)
    assert hole_ratio(mask) == 0.25
    assert np.array_equal(make_mask(256, 3, 1, 2, MaskConfig(kind="centre")), expected)
    draw = draw_mask(64, 3, 1, 2, MaskConfig(kind="irregular", buckets=(CENTRE,)))
    assert draw.kind == "centre" and draw.bucket == CENTRE and np.array_equal(draw.mask, centre_mask(64))


def test_mixed_mode_draws_both_kinds_across_buckets():
    draws = [draw_mask(64, 0, 0, index) for index in range(60)]
    kinds = [draw.kind for draw in draws]
    assert 15 <= kinds.count("irregular") <= 45 and kinds.count("block") == 60 - kinds.count("irregular")
    assert {draw.bucket for draw in draws} == set(BUCKETS)
    assert all(bucket_of(hole_ratio(draw.mask)) == draw.bucket for draw in draws)


def _mean_thickness(mask: np.ndarray) -> float:
    """Twice the hole area over the hole boundary length: the width of a long stroke."""
    boundary = mask - cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return 2 * mask.sum() / boundary.sum()


@pytest.mark.parametrize("kind", ["irregular", "block"])
def test_shapes_scale_with_mask_size(kind):
    config = MaskConfig(kind=kind, buckets=("30-40",))
    small = np.mean([_mean_thickness(make_mask(64, 0, 0, index, config)) for index in range(20)])
    large = np.mean([_mean_thickness(make_mask(256, 0, 0, index, config)) for index in range(20)])
    assert 3 < large / small < 5


def test_bucket_of_boundaries():
    assert bucket_of(0.1) == "10-20" and bucket_of(0.2) == "20-30" and bucket_of(0.5999) == "50+"
    assert bucket_of(0.05) is None and bucket_of(0.6) is None


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="kind"):
        MaskConfig(kind="stripes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket"):
        MaskConfig(buckets=("60-70",))
    with pytest.raises(ValueError, match="bucket"):
        make_mask(2, 0, 0, 0, MaskConfig(buckets=("10-20",)))
