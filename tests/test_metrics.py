import math

import numpy as np
import pytest

from lafin_aug.metrics import auc, ced_curve, failure_rate, l1, landmark_scores, nme_per_face, psnr, ssim


def _face(points: int, left: int, right: int, rng: np.random.Generator) -> np.ndarray:
    """Random [1,P,2] landmarks whose outer eye corners are exactly 100 px apart."""
    face = rng.uniform(0, 200, (1, points, 2))
    face[0, left] = (50, 80)
    face[0, right] = (150, 80)
    return face


def test_nme_hand_computed_68():
    gt = _face(68, 36, 45, np.random.default_rng(0))
    pred = gt + np.array([3.0, 4.0])  # every point 5 px off, eyes 100 px apart
    assert nme_per_face(pred, gt) == pytest.approx([0.05])


def test_nme_98_point_normaliser_uses_60_and_72():
    gt = _face(98, 60, 72, np.random.default_rng(1))
    # corners of a 68-point markup mis-read as 98-point indices would give another distance
    gt[0, 36] = (0, 0)
    gt[0, 45] = (0, 1)
    pred = gt + np.array([3.0, 4.0])
    assert nme_per_face(pred, gt) == pytest.approx([0.05])


def test_predicted_eye_corner_changes_only_the_error_term():
    gt = _face(68, 36, 45, np.random.default_rng(2))
    pred = gt.copy()
    pred[0, 45] += (30.0, 40.0)  # one point 50 px off; a mixed normaliser would change too
    assert nme_per_face(pred, gt) == pytest.approx([50.0 / 68 / 100])


def test_nme_is_per_face_and_rejects_bad_input():
    rng = np.random.default_rng(3)
    gt = np.concatenate([_face(68, 36, 45, rng), _face(68, 36, 45, rng)])
    pred = gt.copy()
    pred[1] += (6.0, 8.0)
    assert nme_per_face(pred, gt) == pytest.approx([0.0, 0.1])
    with pytest.raises(ValueError, match="shape"):
        nme_per_face(pred[:, :60], gt)
    gt[1, 45] = gt[1, 36]
    with pytest.raises(ValueError, match=r"\[1\]"):
        nme_per_face(pred, gt)


def test_failure_rate_counts_strictly_greater():
    assert failure_rate([0.10, 0.10, 0.05, 0.2]) == 0.25  # 0.10 exactly is not a failure
    assert failure_rate([0.10 + 1e-12]) == 1.0
    assert failure_rate([0.07, 0.09], threshold=0.08) == 0.5


def test_auc_edges_and_hand_computed_case():
    assert auc([0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert auc([0.10, 0.2, 5.0]) == pytest.approx(0.0)
    # (1 - 0.2) + (1 - 0.5) + 0 + 0, over 4 faces
    assert auc([0.02, 0.05, 0.10, 0.3]) == pytest.approx(1.3 / 4)


def test_auc_equals_numerical_integral_of_ced():
    nmes = np.random.default_rng(4).gamma(2.0, 0.03, 500)
    x, y = ced_curve(nmes, steps=200_001)
    numeric = np.trapezoid(y, x) / 0.10
    assert auc(nmes) == pytest.approx(numeric, abs=1e-4)


def test_ced_is_monotone_in_unit_interval():
    nmes = np.random.default_rng(5).gamma(2.0, 0.04, 300)
    x, y = ced_curve(nmes, steps=101)
    assert len(x) == len(y) == 101 and x[0] == 0 and x[-1] == pytest.approx(0.10)
    assert np.all(np.diff(y) >= 0) and 0 <= y[0] and y[-1] <= 1
    assert y[-1] == pytest.approx(1 - failure_rate(nmes))


def test_landmark_scores_summary():
    rng = np.random.default_rng(6)
    gt = np.concatenate([_face(68, 36, 45, rng) for _ in range(4)])
    pred = gt + np.array([[[0.0, 0.0]], [[3.0, 4.0]], [[6.0, 8.0]], [[12.0, 16.0]]])
    scores = landmark_scores(pred, gt)
    assert scores.n == 4
    assert scores.nme == pytest.approx((0 + 0.05 + 0.1 + 0.2) / 4)
    assert scores.fr10 == pytest.approx(0.25)
    assert scores.auc10 == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert scores.to_dict()["n"] == 4


def test_psnr_identical_and_known_mse():
    a = np.random.default_rng(7).integers(0, 250, (16, 16, 3), dtype=np.uint8)
    assert psnr(a, a) == math.inf
    b = a + np.uint8(5)  # MSE = 25 exactly
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))


def test_l1_on_unit_scale():
    a = np.zeros((8, 8, 3), np.uint8)
    assert l1(a, a + np.uint8(51)) == pytest.approx(0.2)


def test_image_metrics_reject_float_images():
    a = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(TypeError, match="uint8"):
        psnr(a, a)


@pytest.mark.parametrize("shape", [(48, 40, 3), (32, 32)])
def test_ssim_matches_skimage(shape):
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = a.astype(np.int16) + rng.integers(-40, 41, shape)
    b = np.clip(noisy, 0, 255).astype(np.uint8)
    expected = structural_similarity(a, b, channel_axis=-1 if len(shape) == 3 else None,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)  # same definition, not just close
    assert ssim(a, a) == pytest.approx(1.0)
