"""Paired per-face NME differences pooled over seeds, against numbers worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from lafin_aug.metrics import paired_difference

# eighths, so every difference below is exact in floating point
BASELINE = np.full((2, 3), 5 / 8)
# differences [[-1, 1, 4], [-3, -1, 2]] / 8: seed-averaged per face [-2, 0, 3] / 8
VARIANT = BASELINE + np.array([[-1, 1, 4], [-3, -1, 2]]) / 8


def test_faces_are_averaged_over_seeds_before_the_standard_error():
    result = paired_difference(VARIANT, BASELINE)
    assert result.mean == pytest.approx((1 / 3) / 8)
    # per-face differences [-2, 0, 3]/8 around 1/3/8: sample variance (49 + 1 + 64)/9/2/64 = 57/9/64, SE = sqrt(19)/3/8
    assert result.se == pytest.approx(np.sqrt(19) / 3 / 8)
    # six differences treated as independent would give a smaller, wrong SE
    assert result.se > np.std((VARIANT - BASELINE).ravel(), ddof=1) / np.sqrt(6)
    assert result.improved == pytest.approx(1 / 3)  # face 0 only: face 1's zero difference is a tie
    # seed 0's mean difference is +4/24, seed 1's is -2/24
    assert (result.seeds_better, result.seeds, result.n) == (1, 2, 3)


def test_one_face_has_no_standard_error_and_one_seed_is_its_own_average():
    result = paired_difference(np.array([[0.25]]), np.array([[0.5]]))
    assert result.mean == -0.25 and np.isnan(result.se)
    assert (result.improved, result.seeds_better, result.seeds, result.n) == (1.0, 1, 1, 1)


@pytest.mark.parametrize("variant, baseline", [(np.zeros((2, 3)), np.zeros((2, 4))), (np.zeros(3), np.zeros(3)),
                                               (np.zeros((1, 0)), np.zeros((1, 0)))])
def test_faces_that_do_not_pair_up_are_refused(variant, baseline):
    with pytest.raises(ValueError, match=r"shape \[seeds, faces\]"):
        paired_difference(variant, baseline)


def test_non_finite_nmes_are_refused():
    with pytest.raises(ValueError, match="finite"):
        paired_difference(np.array([[np.nan, 0.1]]), np.array([[0.1, 0.1]]))
