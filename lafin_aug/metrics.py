"""Evaluation metrics: landmark NME / failure rate / CED / AUC, paired NME differences, and PSNR / SSIM / L1.

Landmark metrics follow the inter-ocular protocol of 300W and WFLW: each face's mean point-to-point
error is divided by the distance between the outer eye corners of its *ground-truth* landmarks
(the schema's `eye_corners`; iBUG 68: points 36 and 45, WFLW 98: points 60 and 72). No predicted point
enters the normaliser.

Image metrics take uint8 images (HxW or HxWxC) and compute on the 0..255 scale, as published
inpainting tables do; L1 is reported on the 0..1 scale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from lafin_aug.landmarks import LandmarkSchema, resolve_schema

#: Default NME threshold for failure rate and AUC (the "@0.10" of 300W/WFLW tables).
THRESHOLD = 0.10


# --------------------------------------------------------------------------- landmark metrics


def _as_faces(points: np.ndarray, name: str) -> np.ndarray:
    """`points` as float64 [N,P,2]; ValueError naming the argument otherwise."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 2:
        raise ValueError(f"{name}: expected landmarks of shape [N,P,2], got {array.shape}")
    return array


def nme_per_face(pred: np.ndarray, gt: np.ndarray, schema: LandmarkSchema | str | None = None) -> np.ndarray:
    """Per-face inter-ocular NME [N] of predicted vs ground-truth [N,P,2] landmarks (pixel units).

    `schema` (or its name) gives the eye corners; None: the registered schema with P points.

    NME = mean_p ||pred_p - gt_p|| / ||gt[left outer eye corner] - gt[right outer eye corner]||.
    """
    pred, gt = _as_faces(pred, "pred"), _as_faces(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    left, right = resolve_schema(schema, gt.shape[1]).eye_corners
    inter_ocular = np.linalg.norm(gt[:, left] - gt[:, right], axis=-1)
    degenerate = np.flatnonzero(inter_ocular <= 0)
    if degenerate.size:
        raise ValueError(f"gt faces {degenerate.tolist()} have zero inter-ocular distance")
    error = np.linalg.norm(pred - gt, axis=-1).mean(axis=1)
    return error / inter_ocular


def _as_nmes(nmes: np.ndarray) -> np.ndarray:
    """`nmes` as a non-empty float64 vector; ValueError otherwise."""
    array = np.asarray(nmes, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("no NME values to summarise")
    return array


def failure_rate(nmes: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Fraction of faces whose NME is strictly greater than `threshold` (nme == threshold passes)."""
    return float(np.mean(_as_nmes(nmes) > threshold))


def ced_curve(
    nmes: np.ndarray, threshold: float = THRESHOLD, steps: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: x = `steps` NMEs spanning [0, threshold], y = fraction with nme <= x."""
    nmes = np.sort(_as_nmes(nmes))
    x = np.linspace(0.0, threshold, steps)
    y = np.searchsorted(nmes, x, side="right") / len(nmes)
    return x, y


def auc(nmes: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Area under the CED curve on [0, threshold] divided by threshold: 1 is perfect, 0 is all failures.

    Exact: the CED is a step function, so its integral is mean_i max(0, threshold - nme_i).
    """
    return float(np.mean(np.clip(threshold - _as_nmes(nmes), 0.0, None)) / threshold)


@dataclass(frozen=True)
class LandmarkScores:
    """Summary of one evaluation: mean NME, failure rate and AUC at 0.10, number of faces."""

    nme: float
    fr10: float
    auc10: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON and tables."""
        return asdict(self)


def landmark_scores(pred: np.ndarray, gt: np.ndarray, schema: LandmarkSchema | str | None = None) -> LandmarkScores:
    """NME mean, FR@0.10 and AUC@0.10 of predicted vs ground-truth [N,P,2] landmarks (`schema` as for nme_per_face)."""
    nmes = nme_per_face(pred, gt, schema)
    return LandmarkScores(
        nme=float(nmes.mean()), fr10=failure_rate(nmes), auc10=auc(nmes), n=len(nmes)
    )


@dataclass(frozen=True)
class PairedDifference:
    """Per-face NME of a variant minus a baseline's over the same test faces and seeds, pooled over seeds.

    mean: the mean difference (negative: the variant is better); se: its standard error over faces;
    improved: share of faces whose seed-averaged difference is negative (ties are not improvements);
    seeds_better: seeds in which the variant's mean NME is lower than the baseline's, of `seeds`;
    n: test faces.
    """

    mean: float
    se: float
    improved: float
    seeds_better: int
    seeds: int
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON and tables."""
        return asdict(self)


def paired_difference(variant: np.ndarray, baseline: np.ndarray) -> PairedDifference:
    """Paired per-face NME difference `variant - baseline` of [S,N] arrays (row s: seed s of both; column i: face i).

    Pooling: each face's difference is averaged over the S seeds first, then the mean, the standard
    error (sample standard deviation / sqrt(N); nan for one face) and the share improved are taken
    over the N faces. A face recurs in every seed, so its S differences are not S independent
    samples: the SE counts faces, not runs. The variation of the trained detectors themselves from
    seed to seed shows in `seeds_better`, not in `se`.
    """
    variant, baseline = np.asarray(variant, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if variant.ndim != 2 or variant.size == 0 or variant.shape != baseline.shape:
        raise ValueError(f"expected per-face NMEs of one non-empty shape [seeds, faces], got variant "
                         f"{variant.shape} and baseline {baseline.shape}")
    if not (np.isfinite(variant).all() and np.isfinite(baseline).all()):
        raise ValueError("per-face NMEs must be finite")
    per_face = (variant - baseline).mean(axis=0)
    n = per_face.size
    se = float(per_face.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return PairedDifference(mean=float(per_face.mean()), se=se, improved=float(np.mean(per_face < 0)),
                            seeds_better=int(np.sum(variant.mean(axis=1) < baseline.mean(axis=1))),
                            seeds=variant.shape[0], n=n)


# --------------------------------------------------------------------------- image metrics

#: SSIM constants of Wang et al. (2004) for 8-bit images.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def _as_image_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both uint8 images as float64 arrays of one shape; TypeError/ValueError otherwise."""
    for name, image in (("a", a), ("b", b)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            kind = getattr(image, "dtype", type(image))
            raise TypeError(f"{name}: expected a uint8 numpy image, got {kind}")
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (peak 255); inf for identical images."""
    a, b = _as_image_pair(a, b)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_valid(channel: np.ndarray) -> np.ndarray:
    """Channel filtered by the normalised 11x11, sigma 1.5 Gaussian, only where the window fits."""
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, ktype=cv2.CV_64F)
    filtered = cv2.sepFilter2D(channel, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    pad = SSIM_WINDOW // 2
    return filtered[pad:-pad, pad:-pad]


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of one float64 channel pair on the 0..255 scale."""
    mu_x, mu_y = _gaussian_valid(x), _gaussian_valid(y)
    var_x = _gaussian_valid(x * x) - mu_x**2
    var_y = _gaussian_valid(y * y) - mu_y**2
    cov = _gaussian_valid(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return float(np.mean(numerator / denominator))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two uint8 images (Wang et al. 2004), averaged over channels.

    Per channel: Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, population
    (not sample) statistics, SSIM map averaged over the pixels where the whole window fits inside
    the image (MATLAB's 'valid'). Equals skimage's structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1).
    """
    a, b = _as_image_pair(a, b)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"images of shape {a.shape} are smaller than the {SSIM_WINDOW}-pixel SSIM window")
    if a.ndim == 2:
        return _ssim_channel(a, b)
    a, b = np.moveaxis(a, -1, 0).copy(), np.moveaxis(b, -1, 0).copy()
    return float(np.mean([_ssim_channel(x, y) for x, y in zip(a, b)]))


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images on the 0..1 scale."""
    a, b = _as_image_pair(a, b)
    return float(np.mean(np.abs(a - b)) / 255.0)
