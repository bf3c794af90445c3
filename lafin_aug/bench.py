"""The benchmark protocol: does training a detector with LaFIn pairs lower its NME?

Variants, trained with everything else equal (steps, batch, optimiser, cosine schedule, seed,
standard flip/rotation/scale/colour augmentation):
  none     real crops only;
  classic  real crops plus the same (face, epoch, mask) records as `lafin` with the hole filled
           by OpenCV Telea: the control for "occlusion alone";
  lafin    real crops plus the augmented pairs of the shard directory (of any inpainter family).
`mix` says how augmented records join: "add" (the default, the paper's protocol: every step sees
a full real batch and as many augmented records beside it) or "replace" (half of each batch:
equal compute, half the real faces per step). The augmented records follow the paper's protocol:
during pass t over the real faces every face appears once more as its augmented epoch t mod K copy
(K = epochs in the shards). Each (variant, seed) run is cached in OUT/runs/, so a killed bench
resumes and variants can be added later.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from lafin_aug.config import Config, to_dict
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.fill import fill_hole
from lafin_aug.data.masks import MaskConfig
from lafin_aug.data.schedule import step_indices
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import predict_images
from lafin_aug.detectors.sources import BatchSource, MixedSource, RealSource
from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer, model_config
from lafin_aug.images import to_uint8
from lafin_aug.io import write_json
from lafin_aug.metrics import THRESHOLD, ced_curve, landmark_scores, nme_per_face
from lafin_aug.runtime import resolve_device, resolve_precision
from lafin_aug.shards import AugmentedShards, ShardFormatError, read_manifest, read_shard_header
from lafin_aug.trainer import TrainingInterrupted
from lafin_aug.viz import plot_curves, save_png

log = logging.getLogger(__name__)

VARIANTS = ("none", "classic", "lafin")
#: test subsets each dataset kind is scored on (by split name)
SUBSETS = {
    "wflw": ("test", "test_pose", "test_expression", "test_illumination", "test_makeup", "test_occlusion",
             "test_blur"),
    "300w": ("common", "challenging", "full"),
}


@dataclass(frozen=True)
class BenchConfig(Config):
    """Everything `lafin-aug bench` depends on (written to OUT/bench.json with the resolved precision)."""

    detector: str = "lab"
    model: dict[str, Any] = field(default_factory=dict)
    train: DatasetSpec = field(default_factory=DatasetSpec)
    test: DatasetSpec = field(default_factory=lambda: DatasetSpec(split="test"))
    extra_tests: tuple[tuple[str, DatasetSpec], ...] = ()
    aug: str | None = None
    variants: tuple[str, ...] = VARIANTS
    seeds: int = 3
    steps: int = 1000
    batch: int = 16
    size: int = 64
    lr: float = 1e-3
    train_fraction: float = 1.0
    mix: str = "add"
    device: str = "auto"
    precision: str = "auto"


def resize_crops(images: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square crops and their pixel-index landmarks resized to size×size (INTER_AREA)."""
    if images.shape[1] == size:
        return images, landmarks
    scale = size / images.shape[1]
    resized = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])
    return resized, ((landmarks + 0.5) * scale - 0.5).astype(np.float32)


@dataclass
class AugmentedPairs:
    """The augmented records of a shard directory, in memory, keyed by (source_index, epoch)."""

    images: np.ndarray
    masks: np.ndarray
    landmarks: np.ndarray
    lookup: dict[tuple[int, int], int]
    epochs: int


def load_augmented(directory: str | Path, size: int, sources: set[int], train: DatasetSpec,
                   points: int) -> AugmentedPairs:
    """Augmented records (epoch >= 0) of faces in `sources`, resized to `size`.

    Shards are read through `AugmentedShards`, so every check of the shard reader applies
    (listing, format, version, checksums, record values), and must come from the training set:
    ShardFormatError naming the shard when their dataset, split or points differ.
    """
    directory = Path(directory)
    shards = AugmentedShards(directory, shuffle=False, include_real=False, rank=0, world_size=1)  # checks all shards
    first = directory / read_manifest(directory)[0].name  # every shard shares its header (checked above)
    header = read_shard_header(first)
    if (header.dataset, header.split, header.points) != (train.dataset, train.split, points):
        raise ShardFormatError(f"{first}: generated from {header.dataset}/{header.split} with {header.points} "
                               f"points, but the bench trains on {train.dataset}/{train.split} with {points}")
    images, landmarks, masks, keys = [], [], [], []
    for record in shards:
        if record["source_index"] in sources:
            images.append(to_uint8(record["image"][None])[0])
            landmarks.append(record["landmarks"].numpy())
            masks.append(record["mask"][0].numpy())
            keys.append((int(record["source_index"]), int(record["epoch"])))
    if not keys:
        raise ValueError(f"{directory}: no augmented records for the training faces (was it generated from the "
                         f"same dataset and split?)")
    image, points_px = resize_crops(np.stack(images), np.stack(landmarks), size)
    mask = np.stack(masks)
    if mask.shape[1] != size:
        mask = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST) for m in mask])
    return AugmentedPairs(image, mask, points_px, {key: k for k, key in enumerate(keys)},
                          max(e for _, e in keys) + 1)


@dataclass
class PairSource:
    """The augmented half of a batch: face order as the real half's, epoch t mod K of each face.

    fill "lafin" takes the inpainted image; "telea" takes the real crop with the same mask filled by
    OpenCV Telea (the classic control).
    """

    bank: FaceCrops
    pairs: AugmentedPairs
    seed: int
    fill: str = "lafin"

    def __post_init__(self) -> None:
        if self.fill != "lafin":
            position = {int(s): k for k, s in enumerate(self.bank.source_index)}
            self.filled = self.pairs.images.copy()
            for (source, _), k in self.pairs.lookup.items():
                self.filled[k] = fill_hole(self.bank.images[position[source]], self.pairs.masks[k], self.fill,
                                           np.random.default_rng(k))

    def batch(self, step: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        epochs, faces = step_indices(len(self.bank), size, step, self.seed + 7919)
        rows = [self.pairs.lookup[(int(self.bank.source_index[f]), int(e) % self.pairs.epochs)]
                for f, e in zip(faces, epochs)]
        images = self.pairs.images if self.fill == "lafin" else self.filled
        return images[rows].copy(), self.pairs.landmarks[rows].copy()


def train_subset(bank: FaceCrops, fraction: float) -> FaceCrops:
    """A fixed random `fraction` of the training faces (the same for every variant and seed)."""
    if fraction >= 1:
        return bank
    keep = np.sort(np.random.default_rng(12345).permutation(len(bank))[: max(1, round(fraction * len(bank)))])
    return bank.subset(keep)


def test_sets(config: BenchConfig) -> dict[str, DatasetSpec]:
    """Named test sets: the dataset's standard subsets (WFLW full + six attributes; 300-W) plus extras."""
    test = config.test
    if test.dataset in SUBSETS:
        sets = {name: DatasetSpec(test.dataset, test.root, name, test.count, test.seed) for name in SUBSETS[test.dataset]}
    else:
        sets = {"test": test}
    sets.update(dict(config.extra_tests))
    return sets


def run_variant(config: BenchConfig, variant: str, seed: int, bank: FaceCrops, pairs: AugmentedPairs | None,
                tests: dict[str, FaceCrops], out: Path, progress: bool, precision: str) -> list[dict[str, Any]]:
    """Train one (variant, seed) detector and score it on every test set; cached in out/results.json.

    `precision` is the resolved one (fp32 or bf16): part of the cache identity.
    """
    train_config = DetectorTrainConfig(detector=config.detector, model=config.model, data=config.train,
                                       size=config.size, steps=config.steps, batch=config.batch, seed=seed,
                                       lr=config.lr, hole_fraction=0.0, masks=MaskConfig(), device=config.device,
                                       precision=precision, sample_every=0,
                                       checkpoint_every=max(config.steps // 4, 1))
    # the resolved model config too, so that a changed default in the code invalidates the cache
    identity = {"train_config": to_dict(train_config),
                "model_config": model_config(train_config, bank.points).to_dict(),
                "train_fraction": config.train_fraction, "aug": config.aug if variant != "none" else None,
                "mix": config.mix if variant != "none" else None,
                "tests": sorted(tests)}
    cached = out / "results.json"
    if cached.is_file():
        stored = json.loads(cached.read_text())
        if stored["identity"] != json.loads(json.dumps(identity)):
            raise ValueError(f"{cached} was made with another configuration: use another --out")
        return stored["rows"]
    real = RealSource(bank, seed)
    source: BatchSource = real
    if variant != "none":
        if pairs is None:
            raise ValueError(f"variant {variant!r} needs --aug SHARDS_DIR (from `lafin-aug generate` on the "
                             f"training set)")
        source = MixedSource(real, PairSource(bank, pairs, seed, "lafin" if variant == "lafin" else "telea"),
                             config.mix)
    resume = (out / "checkpoints" / "last.pt").is_file()
    trainer = DetectorTrainer(train_config, out, source=source, points=bank.points, resume=resume,
                              progress=progress)
    try:
        trainer.fit()
    except TrainingInterrupted:
        raise TrainingInterrupted(f"bench interrupted in {out} (checkpoint saved): rerun the same command to "
                                  f"resume") from None
    rows, nmes = [], {}
    for name, test in tests.items():
        predicted = predict_images(trainer.model.eval(), test.images, precision=precision)
        scores = landmark_scores(predicted, test.landmarks)
        if not np.isfinite([scores.nme, scores.fr10, scores.auc10]).all():
            raise ValueError(f"{out}: {variant} seed {seed} scored a non-finite NME on {name} (non-finite "
                             f"predictions or labels); no result is written")
        nmes[name] = nme_per_face(predicted, test.landmarks).tolist()
        rows.append({"detector": config.detector, "variant": variant, "seed": seed, "subset": name,
                     "nme": scores.nme, "fr10": scores.fr10, "auc10": scores.auc10, "n": scores.n,
                     "precision": precision})
    write_json(cached, {"identity": identity, "rows": rows, "nmes": nmes})
    return rows


def summarise(results: pd.DataFrame) -> str:
    """Markdown: mean ± std over seeds per variant and subset, and lafin's relative change vs none/classic."""
    subsets = list(dict.fromkeys(results["subset"]))
    variants = [v for v in VARIANTS if v in set(results["variant"])]
    results = results.sort_values(["subset", "variant"], key=lambda c: c.map(
        {name: k for k, name in enumerate(subsets if c.name == "subset" else variants)}), kind="stable")
    grouped = results.groupby(["subset", "variant"], sort=False)
    stats = grouped[["nme", "fr10", "auc10"]].agg(["mean", "std"]).reset_index()
    counts = grouped["seed"].count().reset_index(name="seeds")
    lines = ["| subset | variant | NME | FR@0.10 | AUC@0.10 | seeds | n |", "|---|---|---|---|---|---|---|"]
    n = results.groupby("subset", sort=False)["n"].first()
    for (_, row), (_, count) in zip(stats.iterrows(), counts.iterrows()):
        cell = lambda m: f"{row[(m, 'mean')]:.4f} ± {0 if np.isnan(row[(m, 'std')]) else row[(m, 'std')]:.4f}"  # noqa: E731
        lines.append(f"| {row[('subset', '')]} | {row[('variant', '')]} | {cell('nme')} | {cell('fr10')} | "
                     f"{cell('auc10')} | {count['seeds']} | {n[row[('subset', '')]]} |")
    means = results.groupby(["subset", "variant"], sort=False)["nme"].mean().unstack()
    if "lafin" in means:
        lines += ["", "| subset | lafin vs none (NME change) | lafin vs classic (NME change) |", "|---|---|---|"]
        for subset, row in means.iterrows():
            change = lambda other: (f"{100 * (row['lafin'] - row[other]) / row[other]:+.1f}%"  # noqa: E731
                                    if other in row and not np.isnan(row[other]) else "n/a")
            lines.append(f"| {subset} | {change('none')} | {change('classic')} |")
    return "\n".join(lines) + "\n"


def run_bench(config: BenchConfig, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Train every (variant, seed), score every test set; writes results.csv, summary.md, ced.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(config.precision, resolve_device(config.device))
    write_json(out / "bench.json", {**to_dict(config), "resolved_precision": precision})
    bank = train_subset(load_crops(config.train, config.size, progress), config.train_fraction)
    tests = {name: load_crops(spec, config.size, progress) for name, spec in test_sets(config).items()}
    pairs = None
    if config.aug and any(v != "none" for v in config.variants):
        pairs = load_augmented(config.aug, config.size, {int(s) for s in bank.source_index}, config.train,
                               bank.points)
    rows = []
    for seed in range(config.seeds):
        for variant in config.variants:
            rows += run_variant(config, variant, seed, bank, pairs, tests, out / "runs" / f"{variant}-seed{seed}",
                                progress, precision)
    results = pd.DataFrame(rows, columns=["detector", "variant", "seed", "subset", "nme", "fr10", "auc10", "n",
                                          "precision"])
    results.to_csv(out / "results.csv", index=False)
    (out / "summary.md").write_text(summarise(results))
    first = next(iter(tests))
    curves = {}
    for variant in config.variants:
        pooled = [v for seed in range(config.seeds) for v in json.loads(
            (out / "runs" / f"{variant}-seed{seed}" / "results.json").read_text())["nmes"][first]]
        curves[variant] = ced_curve(np.asarray(pooled), THRESHOLD)
    save_png(out / "ced.png", plot_curves(curves, f"CED on {first} ({config.detector}, {config.seeds} seeds pooled)",
                                          "NME (inter-ocular)", "fraction of faces", THRESHOLD))
    return results
