"""Record transforms from array functions and albumentations: image, points and mask change together,
mirrors relabel left/right points, and DataLoader workers augment independently."""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from test_shards import S, make_shards
from torch.utils.data import DataLoader

from lafin_aug.landmarks import IBUG68, flip_landmarks
from lafin_aug.shards import ArrayTransform, AugmentedShards, albumentations_transform

needs_albumentations = pytest.mark.skipif(find_spec("albumentations") is None,
                                          reason="albumentations is not installed (pip install 'lafin-aug[clients]')")
LEFT_OUTER, RIGHT_OUTER = IBUG68.eye_corners  # 36 and 45: the outer eye corners on the image's left and right


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    """make_shards: 3 shards of 12 records (16 px, 68 points), sources 0..11, epochs -1, 0, 1."""
    directory = tmp_path_factory.mktemp("shards")
    make_shards(directory)
    return directory


def by_key(records) -> dict[tuple[int, int], dict]:
    return {(int(r["source_index"]), int(r["epoch"])): r for r in records}


def generated(shard_dir: Path, transform=None) -> dict:
    """The first generated record (epoch 0), read in file order."""
    return next(r for r in AugmentedShards(shard_dir, shuffle=False, transform=transform) if r["epoch"] == 0)


def mirrored(record: dict, original: dict) -> bool:
    """Whether `record` is `original` flipped horizontally with left/right points swapped."""
    return (torch.equal(record["mask"], original["mask"].flip(-1))
            and torch.allclose(record["image"], original["image"].flip(-1), atol=1e-6)
            and np.array_equal(record["landmarks"].numpy(), flip_landmarks(original["landmarks"].numpy(), S)))


def test_array_transform_applies_a_hand_written_function_to_all_three(shard_dir):
    def shift_right(image, points, mask):
        assert image.dtype == np.uint8 and image.shape == (S, S, 3)
        assert points.dtype == np.float32 and points.shape == (68, 2) and mask.shape == (S, S)
        return np.roll(image, 3, axis=1), points + [3, 0], np.roll(mask, 3, axis=1)

    original = generated(shard_dir)
    record = generated(shard_dir, ArrayTransform(shift_right))
    assert torch.allclose(record["image"], original["image"].roll(3, -1), atol=1e-6)
    assert torch.equal(record["mask"], original["mask"].roll(3, -1)) and record["mask"].sum() > 0
    assert torch.equal(record["landmarks"], original["landmarks"] + torch.tensor([3.0, 0.0]))
    assert record["landmarks"].dtype == torch.float32 and record["mask"].dtype == torch.uint8
    assert {k: record[k] for k in ("epoch", "source_index", "edited")} == \
           {k: original[k] for k in ("epoch", "source_index", "edited")}


def test_array_transform_refuses_a_function_that_drops_points(shard_dir):
    record = generated(shard_dir)
    with pytest.raises(ValueError, match=r"shape \(67, 2\) for \(68, 2\)"):
        ArrayTransform(lambda image, points, mask: (image, points[:-1], mask))(record)


@needs_albumentations
def test_horizontal_flip_swaps_sides_and_flips_the_mask(shard_dir):
    import albumentations as A
    original = generated(shard_dir)
    assert not torch.equal(original["mask"], original["mask"].flip(-1))  # a flip of the mask is visible
    record = generated(shard_dir, albumentations_transform([A.HorizontalFlip(p=1)]))
    assert mirrored(record, original)
    x, y = original["landmarks"][RIGHT_OUTER]
    assert record["landmarks"][LEFT_OUTER].tolist() == [(S - 1 - x).item(), y.item()]  # the mirrored right corner
    by_hand = ArrayTransform(lambda image, points, mask: (image[:, ::-1], flip_landmarks(points, S), mask[:, ::-1]))
    assert torch.equal(by_hand(original)["landmarks"], record["landmarks"])


@needs_albumentations
def test_only_mirrors_relabel_points(shard_dir):
    import albumentations as A
    original = generated(shard_dir)
    points = original["landmarks"].numpy()
    upside_down = generated(shard_dir, albumentations_transform([A.VerticalFlip(p=1), A.HorizontalFlip(p=1)]))
    assert np.array_equal(upside_down["landmarks"].numpy(), (S - 1) - points)  # a 180 degree turn: no swap
    vertical = generated(shard_dir, albumentations_transform([A.VerticalFlip(p=1)]))
    expected = np.stack([points[:, 0], (S - 1) - points[:, 1]], axis=1)[IBUG68.flip_permutation]
    assert np.array_equal(vertical["landmarks"].numpy(), expected)
    assert torch.equal(vertical["mask"], original["mask"].flip(-2))
    with pytest.raises(ValueError, match="'wflw98' has 98 points, the landmarks 68"):
        albumentations_transform([A.HorizontalFlip(p=1)], schema="wflw98")(original)


def read_with_workers(shard_dir: Path, transform, seed: int) -> dict:
    torch.manual_seed(seed)
    loader = DataLoader(AugmentedShards(shard_dir, shuffle=False, transform=transform), batch_size=4, num_workers=2)
    return by_key({key: value[i] for key, value in batch.items()}
                  for batch in loader for i in range(len(batch["epoch"])))


@needs_albumentations
def test_albumentations_in_a_dataloader_with_two_workers(shard_dir):
    import albumentations as A
    originals = by_key(AugmentedShards(shard_dir, shuffle=False))
    flipped = read_with_workers(shard_dir, albumentations_transform([A.HorizontalFlip(p=1)]), seed=0)
    assert flipped.keys() == originals.keys() and len(flipped) == 36
    assert all(mirrored(flipped[key], originals[key]) for key in originals)

    maybe = albumentations_transform([A.HorizontalFlip(p=0.5)])
    decisions = {key: mirrored(r, originals[key]) for key, r in read_with_workers(shard_dir, maybe, seed=1).items()}
    # without shuffling, worker 0 reads sources 0-5 and worker 1 sources 6-11, 18 records each
    first = [decisions[(s, e)] for s in range(6) for e in (-1, 0, 1)]
    second = [decisions[(s + 6, e)] for s in range(6) for e in (-1, 0, 1)]
    assert first != second and 0 < sum(first + second) < 36  # the workers draw independently
    again = {key: mirrored(r, originals[key]) for key, r in read_with_workers(shard_dir, maybe, seed=1).items()}
    assert again == decisions  # and reproducibly under torch.manual_seed
