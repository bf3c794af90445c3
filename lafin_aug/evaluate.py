"""Inpainting evaluation: the model against OpenCV Telea and Navier-Stokes, per hole-ratio bucket.

Every method fills the same fixed masks (drawn from (seed, bucket, face)); PSNR, SSIM and L1 are
computed on the full composited 8-bit image against the real crop, as published tables do. With a
landmark predictor, its NME on the masked faces (hole filled with zeros, as G_L is trained) is
reported per bucket and on the unmasked faces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from lafin_aug.config import Config
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.fill import fill_holes
from lafin_aug.data.masks import BUCKETS, CENTRE, MaskConfig, make_mask
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import load_detector, predict_images
from lafin_aug.generate import inpaint_records
from lafin_aug.inpainters import FAMILIES, load_inpainter
from lafin_aug.io import write_json
from lafin_aug.metrics import l1, landmark_scores, psnr, ssim
from lafin_aug.runtime import resolve_device, resolve_precision
from lafin_aug.viz import draw_landmarks, image_grid, mask_overlay, save_png

EVAL_BUCKETS: tuple[str, ...] = (*BUCKETS, CENTRE)
#: the classical baselines every model is compared with (`lafin_aug.data.fill`)
CLASSICAL = ("telea", "ns")


@dataclass(frozen=True)
class InpaintEvalConfig(Config):
    """What `lafin-aug eval-inpaint` measures (precision: auto, fp32 or bf16)."""

    data: DatasetSpec = field(default_factory=lambda: DatasetSpec(split="test"))
    size: int = 256
    buckets: tuple[str, ...] = EVAL_BUCKETS
    seed: int = 0
    batch: int = 8
    device: str = "auto"
    precision: str = "auto"
    examples: int = 6


def eval_masks(bank: FaceCrops, bucket: str, bucket_id: int, seed: int) -> np.ndarray:
    """The fixed masks [N,S,S] of one bucket: the same for every method and every run."""
    config = MaskConfig(kind="centre" if bucket == CENTRE else "mixed", buckets=(bucket,))
    return np.stack([make_mask(bank.size, seed, bucket_id, int(i), config) for i in bank.source_index])


def image_scores(filled: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean PSNR, SSIM and L1 over the faces."""
    return {"psnr": float(np.mean([psnr(a, b) for a, b in zip(filled, truth)])),
            "ssim": float(np.mean([ssim(a, b) for a, b in zip(filled, truth)])),
            "l1": float(np.mean([l1(a, b) for a, b in zip(filled, truth)]))}


def evaluate_inpainting(inpainter: str | Path, config: InpaintEvalConfig, out: str | Path,
                        landmarks: str | Path | None = None, bank: FaceCrops | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """Score the inpainter and the classical baselines per bucket; writes table.md/.csv, results.json, examples.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    model, header = load_inpainter(inpainter, device)
    family = FAMILIES.get(header.family)
    predictor = load_detector(landmarks, device)[0] if landmarks else None
    bank = bank if bank is not None else load_crops(config.data, config.size, progress)
    rows: list[dict[str, Any]] = []
    example_rows: list[list[np.ndarray]] = []
    if predictor is not None:
        scores = landmark_scores(predict_images(predictor, bank.images, precision=precision), bank.landmarks)
        rows.append({"method": "landmarks", "bucket": "unmasked", **_nme_columns(scores)})
    for bucket_id, bucket in enumerate(tqdm(config.buckets, desc="eval buckets", disable=not progress)):
        masks = eval_masks(bank, bucket, bucket_id, config.seed)
        hole = float(masks.mean())
        fills = {"model": inpaint_records(model, family, bank.images, bank.landmarks, masks, config.batch, device,
                                          precision)}
        fills.update({name: fill_holes(bank.images, masks, name) for name in CLASSICAL})
        for method, filled in fills.items():
            rows.append({"method": method, "bucket": bucket, "hole": hole, "n": len(bank),
                         **image_scores(filled, bank.images)})
        if predictor is not None:
            masked = fill_holes(bank.images, masks, "zero")
            scores = landmark_scores(predict_images(predictor, masked, precision=precision), bank.landmarks)
            rows.append({"method": "landmarks", "bucket": bucket, "hole": hole, **_nme_columns(scores)})
        k = bucket_id % len(bank)
        example_rows.append([mask_overlay(bank.images[k], masks[k]),
                             draw_landmarks(np.zeros_like(bank.images[k]), bank.landmarks[k]),
                             fills["model"][k], fills["telea"][k], fills["ns"][k], bank.images[k]])
    table = pd.DataFrame(rows)
    table.to_csv(out / "table.csv", index=False)
    (out / "table.md").write_text(markdown_table(table))
    write_json(out / "results.json", {"inpainter": str(inpainter), "landmarks": str(landmarks or ""),
                                      "inpainter_header": header.to_dict(), "precision": precision,
                                      "config": config.to_dict(), "rows": rows})
    save_png(out / "examples.png", image_grid(example_rows[: max(config.examples, 1)],
                                              labels=["mask", "landmarks", "model", "telea", "ns", "real"]))
    return table


def _nme_columns(scores: Any) -> dict[str, float]:
    return {"nme": scores.nme, "fr10": scores.fr10, "auc10": scores.auc10, "n": scores.n}


def markdown_table(table: pd.DataFrame) -> str:
    """PSNR/SSIM/L1 per bucket (rows) and method (columns), plus the predictor's NME when present."""
    lines = []
    image_rows = table[table["method"] != "landmarks"]
    methods = list(dict.fromkeys(image_rows["method"]))
    header = "| bucket | hole | " + " | ".join(f"{m} PSNR | {m} SSIM | {m} L1" for m in methods) + " |"
    lines += [header, "|" + "---|" * (2 + 3 * len(methods))]
    for bucket, group in image_rows.groupby("bucket", sort=False):
        cells = [bucket, f"{group['hole'].iloc[0]:.3f}"]
        for method in methods:
            row = group[group["method"] == method].iloc[0]
            cells += [f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", f"{row['l1']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    nme_rows = table[table["method"] == "landmarks"]
    if len(nme_rows):
        lines += ["", "| landmark predictor input | NME | FR@0.10 | AUC@0.10 | n |", "|---|---|---|---|---|"]
        for _, row in nme_rows.iterrows():
            lines.append(f"| {row['bucket']} | {row['nme']:.4f} | {row['fr10']:.3f} | {row['auc10']:.3f} | "
                         f"{int(row['n'])} |")
    return "\n".join(lines) + "\n"
