"""Inpainting evaluation: several inpainters against OpenCV Telea and Navier-Stokes, per hole bucket.

Every method fills the same fixed masks (drawn from (seed, bucket, face)): LaFIn's buckets (mixed
strokes and blocks, 10-20 % ... 50 %+, and the centre square) and the MDRNets paper's (irregular
strokes, 1-20 %, 20-40 %, 40-60 %). PSNR, SSIM and L1 (in %, as the MDRNets table) are computed on
the full composited 8-bit image against the real crop, as published tables do.

Two landmark measurements, each optional:
  predictor  (`landmarks`) LaFIn's G_L experiment: its NME on the masked faces (hole filled with
             zeros, as G_L is trained) per bucket, and on the unmasked faces.
  fidelity   (`fidelity`) a detector trained on real faces only, run on each method's filled
             faces: NME against the ground-truth landmarks per bucket and method, beside the real
             crop's. A fill that follows its labels scores close to the real crop; this is what
             matters when the fills become training data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from lafin_aug.checkpoint import CheckpointHeader
from lafin_aug.config import Config
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.fill import fill_holes
from lafin_aug.data.masks import BUCKETS, CENTRE, MDR_BUCKETS, MaskConfig, make_mask
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import load_detector, predict_images
from lafin_aug.generate import inpaint_records
from lafin_aug.inpainters import FAMILIES, load_inpainter
from lafin_aug.io import write_json
from lafin_aug.metrics import l1, landmark_scores, psnr, ssim
from lafin_aug.runtime import resolve_device, resolve_precision
from lafin_aug.viz import draw_landmarks, image_grid, mask_overlay, save_png

EVAL_BUCKETS: tuple[str, ...] = (*BUCKETS, CENTRE, *MDR_BUCKETS)
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
    """The fixed masks [N,S,S] of one bucket: the same for every method and every run.

    LaFIn's buckets mix strokes and blocks; the MDRNets paper's are irregular strokes only.
    """
    kind = "centre" if bucket == CENTRE else "irregular" if bucket in MDR_BUCKETS else "mixed"
    config = MaskConfig(kind=kind, buckets=(bucket,))
    return np.stack([make_mask(bank.size, seed, bucket_id, int(i), config) for i in bank.source_index])


def image_scores(filled: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """PSNR, SSIM and L1 (in %) of each face: one row per face."""
    return pd.DataFrame({"psnr": [psnr(a, b) for a, b in zip(filled, truth)],
                         "ssim": [ssim(a, b) for a, b in zip(filled, truth)],
                         "l1": [100 * l1(a, b) for a, b in zip(filled, truth)]})


def load_methods(inpainters: dict[str, str | Path] | list[str | Path],
                 device: torch.device) -> dict[str, tuple[Path, nn.Module, CheckpointHeader]]:
    """Each inpainter loaded once, as (path, model, header), under its given name or else its family's
    (numbered when repeated)."""
    items = list(inpainters.items()) if isinstance(inpainters, dict) else [(None, path) for path in inpainters]
    loaded = [(Path(path), *load_inpainter(path, device)) for _, path in items]
    families = [header.family for _, _, header in loaded]
    names = [given or (f"{family}-{families[:k + 1].count(family)}" if families.count(family) > 1 else family)
             for k, ((given, _), family) in enumerate(zip(items, families))]
    if set(names) & {*CLASSICAL, "real"}:
        raise ValueError(f"inpainter names {names} clash with the baselines {CLASSICAL} or 'real': name them NAME=PATH")
    return dict(zip(names, loaded))


def evaluate_inpainting(inpainters: dict[str, str | Path] | list[str | Path] | str | Path, config: InpaintEvalConfig,
                        out: str | Path, landmarks: str | Path | None = None, fidelity: str | Path | None = None,
                        bank: FaceCrops | None = None, progress: bool = True) -> pd.DataFrame:
    """Score the inpainters and the classical baselines per bucket; writes table.md/.csv (means over the
    faces), per_face.csv (every face's scores, for paired comparisons: the faces and masks are the same
    for every method), results.json, examples.png (one column per method)."""
    if isinstance(inpainters, (str, Path)):
        inpainters = [inpainters]
    out = Path(out)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    methods = load_methods(inpainters, device)
    predictor = load_detector(landmarks, device)[0] if landmarks else None
    judge = load_detector(fidelity, device)[0] if fidelity else None
    bank = bank if bank is not None else load_crops(config.data, config.size, progress)
    out.mkdir(parents=True, exist_ok=True)
    nme = lambda model, images: landmark_scores(predict_images(model, images, precision=precision),  # noqa: E731
                                                bank.landmarks)
    rows: list[dict[str, Any]] = []
    per_face: list[pd.DataFrame] = []
    if predictor is not None:
        rows.append({"method": "landmarks", "bucket": "unmasked", **_nme_columns(nme(predictor, bank.images))})
    if judge is not None:
        rows.append({"method": "fidelity:real", "bucket": "unmasked", **_nme_columns(nme(judge, bank.images))})
    example_rows: list[list[np.ndarray]] = []
    for bucket_id, bucket in enumerate(tqdm(config.buckets, desc="eval buckets", disable=not progress)):
        masks = eval_masks(bank, bucket, bucket_id, config.seed)
        hole = float(masks.mean())
        fills = {name: inpaint_records(model, FAMILIES.get(header.family), bank.images, bank.landmarks, masks,
                                       config.batch, device, precision) for name, (_, model, header) in methods.items()}
        fills.update({name: fill_holes(bank.images, masks, name) for name in CLASSICAL})
        for method, filled in fills.items():
            scores = image_scores(filled, bank.images)
            rows.append({"method": method, "bucket": bucket, "hole": hole, "n": len(bank), **scores.mean().to_dict()})
            per_face.append(scores.assign(method=method, bucket=bucket, face=bank.source_index))
            if judge is not None:
                rows.append({"method": f"fidelity:{method}", "bucket": bucket, "hole": hole,
                             **_nme_columns(nme(judge, filled))})
        if predictor is not None:
            rows.append({"method": "landmarks", "bucket": bucket, "hole": hole,
                         **_nme_columns(nme(predictor, fill_holes(bank.images, masks, "zero")))})
        k = bucket_id % len(bank)
        example_rows.append([mask_overlay(bank.images[k], masks[k]),
                             draw_landmarks(np.zeros_like(bank.images[k]), bank.landmarks[k]),
                             *(filled[k] for filled in fills.values()), bank.images[k]])
    table = pd.DataFrame(rows)
    table.to_csv(out / "table.csv", index=False)
    pd.concat(per_face)[["method", "bucket", "face", "psnr", "ssim", "l1"]].to_csv(out / "per_face.csv", index=False)
    (out / "table.md").write_text(markdown_table(table))
    write_json(out / "results.json", {"inpainters": {name: str(path) for name, (path, _, _) in methods.items()},
                                      "landmarks": str(landmarks or ""), "fidelity": str(fidelity or ""),
                                      "headers": {name: header.to_dict() for name, (_, _, header) in methods.items()},
                                      "precision": precision, "config": config.to_dict(), "rows": rows})
    save_png(out / "examples.png", image_grid(example_rows[: max(config.examples, 1)],
                                              labels=["mask", "landmarks", *fills, "real"]))
    return table


def _nme_columns(scores: Any) -> dict[str, float]:
    return {"nme": scores.nme, "fr10": scores.fr10, "auc10": scores.auc10, "n": scores.n}


def markdown_table(table: pd.DataFrame) -> str:
    """PSNR/SSIM/L1 % per bucket (rows) and method (columns); the predictor's NME and the fidelity
    NME per method when present."""
    lines = []
    is_image = ~table["method"].str.startswith("fidelity:") & (table["method"] != "landmarks")
    image_rows = table[is_image]
    methods = list(dict.fromkeys(image_rows["method"]))
    header = "| bucket | hole | " + " | ".join(f"{m} PSNR | {m} SSIM | {m} L1 %" for m in methods) + " |"
    lines += [header, "|" + "---|" * (2 + 3 * len(methods))]
    for bucket, group in image_rows.groupby("bucket", sort=False):
        cells = [bucket, f"{group['hole'].iloc[0]:.3f}"]
        for method in methods:
            row = group[group["method"] == method].iloc[0]
            cells += [f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", f"{row['l1']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    fidelity = table[table["method"].str.startswith("fidelity:")]
    if len(fidelity):
        names = list(dict.fromkeys(m.split(":", 1)[1] for m in fidelity["method"] if m != "fidelity:real"))
        real = fidelity[fidelity["method"] == "fidelity:real"]["nme"].iloc[0]
        lines += ["", f"Landmark fidelity: NME of a detector trained on real faces only, on each method's filled "
                      f"faces (real crops: {real:.4f})", "",
                  "| bucket | " + " | ".join(names) + " |", "|" + "---|" * (1 + len(names))]
        for bucket, group in fidelity[fidelity["bucket"] != "unmasked"].groupby("bucket", sort=False):
            values = {m.split(":", 1)[1]: v for m, v in zip(group["method"], group["nme"])}
            lines.append(f"| {bucket} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
    nme_rows = table[table["method"] == "landmarks"]
    if len(nme_rows):
        lines += ["", "| landmark predictor input | NME | FR@0.10 | AUC@0.10 | n |", "|---|---|---|---|---|"]
        for _, row in nme_rows.iterrows():
            lines.append(f"| {row['bucket']} | {row['nme']:.4f} | {row['fr10']:.3f} | {row['auc10']:.3f} | "
                         f"{int(row['n'])} |")
    return "\n".join(lines) + "\n"
