"""The benchmark protocol: does training a detector with augmented pairs lower its NME?

Variants, trained with everything else equal (steps, batch, optimiser, cosine schedule, seed,
standard flip/rotation/scale/colour augmentation):
  none        real crops only;
  classic     real crops plus the same (face, epoch, mask) records as the first shard set with the
              hole filled by OpenCV Telea: the control for "occlusion alone";
  pairs       real crops plus the augmented pairs of the shard directory (of any inpainter family);
  pairs:NAME  the same for the shard set named NAME (several shard sets are named, one variant each).
In `variants`, `pairs` stands for every shard set's variant and `lafin` (the old name) for `pairs`.
`mix` says how augmented records join: "add" (the default, the paper's protocol: every step sees
a full real batch and as many augmented records beside it) or "replace" (half of each batch:
equal compute, half the real faces per step). The augmented records follow the paper's protocol:
during pass t over the real faces every face appears once more as its augmented epoch t mod K copy
(K = epochs in the shards). Each (variant, seed) run is cached in OUT/runs/, so a killed bench
resumes and variants can be added later.

Every run's per-face NMEs are kept (per_face.csv), and each variant is compared with `none` and
`classic` face by face on the same test faces and seeds (`paired_table`, paired.csv).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from lafin_aug.config import Config, to_dict
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.fill import fill_hole
from lafin_aug.data.schedule import step_indices
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import predict_images
from lafin_aug.detectors.sources import BatchSource, MixedSource, RealSource
from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer, model_config
from lafin_aug.images import to_uint8
from lafin_aug.io import write_bytes, write_json
from lafin_aug.metrics import THRESHOLD, ced_curve, landmark_scores, nme_per_face, paired_difference
from lafin_aug.runtime import resolve_device, resolve_precision
from lafin_aug.shards import AugmentedShards, ShardFormatError, read_manifest, read_shard_header
from lafin_aug.trainer import TrainingInterrupted
from lafin_aug.viz import plot_curves, save_png

log = logging.getLogger(__name__)

#: the variants without augmented pairs of their own, each a baseline of the paired comparison
BASELINES = ("none", "classic")
#: the variant of the augmented pairs (of an unnamed shard set; `pairs:NAME` for a named one)
PAIRS = "pairs"
#: old variant names, still accepted in `variants`
ALIASES = {"lafin": PAIRS}
VARIANTS = (*BASELINES, PAIRS)
#: test subsets each dataset kind is scored on (by split name)
SUBSETS = {
    "wflw": ("test", "test_pose", "test_expression", "test_illumination", "test_makeup", "test_occlusion",
             "test_blur"),
    "300w": ("common", "challenging", "full"),
}
RESULT_COLUMNS = ["detector", "variant", "seed", "subset", "nme", "fr10", "auc10", "n", "precision"]
PER_FACE_COLUMNS = ["variant", "seed", "subset", "face", "nme"]
PAIRED_COLUMNS = ["subset", "variant", "baseline", "baseline_nme", "change", "mean", "se", "improved",
                  "seeds_better", "seeds", "n"]


def detector_training(**changes: Any) -> DetectorTrainConfig:
    """The bench's detector training run: LAB at 64 px, 1000 steps, real faces without holes, no
    sample images, a checkpoint every quarter of the run; `changes` override any field."""
    steps = changes.get("steps", 1000)
    return DetectorTrainConfig(**{"detector": "lab", "size": 64, "steps": steps, "hole_fraction": 0.0,
                                  "sample_every": 0, "checkpoint_every": max(steps // 4, 1), **changes})


@dataclass(frozen=True)
class BenchConfig(Config):
    """Everything `lafin-aug bench` depends on (written to OUT/bench.json with the resolved precision and variants).

    training: every variant's detector training run; its data is the training set, its precision is
    resolved once for all runs, and its seed is the first of `seeds` consecutive seeds.
    pairs: (name, shard directory) of each augmented shard set; name "" for a single unnamed set.
    """

    training: DetectorTrainConfig = field(default_factory=detector_training)
    test: DatasetSpec = field(default_factory=lambda: DatasetSpec(split="test"))
    extra_tests: tuple[tuple[str, DatasetSpec], ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    variants: tuple[str, ...] = VARIANTS
    seeds: int = 3
    train_fraction: float = 1.0
    mix: str = "add"

    def seed_range(self) -> range:
        """The training seeds of every variant."""
        return range(self.training.seed, self.training.seed + self.seeds)


def pairs_variant(name: str) -> str:
    """The variant of the shard set called `name` ("" for the unnamed one)."""
    return f"{PAIRS}:{name}" if name else PAIRS


def resolve_variants(variants: tuple[str, ...], pairs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """`variants` in order with aliases replaced and `pairs` expanded to every shard set's variant.

    ValueError for an unknown variant, a variant that needs a shard set when there is none, or shard
    set names that are not unique, not [A-Za-z0-9_.-], or empty beside others.
    """
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or any(not re.fullmatch(r"[\w.-]*", n, re.ASCII) for n in names) \
            or ("" in names and len(names) > 1):
        raise ValueError(f"shard set names {names}: expected unique names of letters, digits, '_', '.', '-' "
                         f"(one unnamed set at most, and only alone)")
    sets = [pairs_variant(name) for name in names]
    chosen: list[str] = []
    for variant in variants:
        variant = ALIASES.get(variant, variant)
        if variant not in {*BASELINES, PAIRS, *sets}:
            raise ValueError(f"unknown variant {variant!r} (known: {', '.join([*BASELINES, PAIRS, *sets])}; "
                             f"alias: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())})")
        if variant != "none" and not sets:
            raise ValueError(f"variant {variant!r} needs augmented pairs (--aug SHARDS_DIR from `lafin-aug "
                             f"generate` on the training set)")
        chosen += sets if variant == PAIRS else [variant]
    return tuple(dict.fromkeys(chosen))


def run_name(variant: str, seed: int) -> str:
    """The directory of one (variant, seed) run under OUT/runs/."""
    return f"{variant.replace(':', '-')}-seed{seed}"


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

    directory: str
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
    return AugmentedPairs(str(directory), image, mask, points_px, {key: k for k, key in enumerate(keys)},
                          max(e for _, e in keys) + 1)


@dataclass
class PairSource:
    """The augmented half of a batch: face order as the real half's, epoch t mod K of each face.

    fill "generated" takes the augmented image of the shards; "telea" takes the real crop with the
    same mask filled by OpenCV Telea (the classic control).
    """

    bank: FaceCrops
    pairs: AugmentedPairs
    seed: int
    fill: str = "generated"

    def __post_init__(self) -> None:
        if self.fill != "generated":
            position = {int(s): k for k, s in enumerate(self.bank.source_index)}
            self.filled = self.pairs.images.copy()
            for (source, _), k in self.pairs.lookup.items():
                self.filled[k] = fill_hole(self.bank.images[position[source]], self.pairs.masks[k], self.fill,
                                           np.random.default_rng(k))

    def batch(self, step: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        epochs, faces = step_indices(len(self.bank), size, step, self.seed + 7919)
        rows = [self.pairs.lookup[(int(self.bank.source_index[f]), int(e) % self.pairs.epochs)]
                for f, e in zip(faces, epochs)]
        images = self.pairs.images if self.fill == "generated" else self.filled
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
                tests: dict[str, FaceCrops], out: Path, progress: bool,
                precision: str) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Train one (variant, seed) detector and score it on every test set; cached in out/results.json.

    `pairs`: the shard set the variant draws from (None for `none`); `precision` is the resolved one
    (fp32 or bf16): part of the cache identity. Returns the result rows and each test set's per-face NMEs.
    """
    train_config = config.training.replace(seed=seed, precision=precision)
    # the resolved model config too, so that a changed default in the code invalidates the cache
    identity = {"train_config": to_dict(train_config),
                "model_config": model_config(train_config, bank.points).to_dict(),
                "train_fraction": config.train_fraction, "aug": pairs.directory if pairs is not None else None,
                "mix": config.mix if pairs is not None else None,
                "tests": sorted(tests)}
    cached = out / "results.json"
    if cached.is_file():
        stored = json.loads(cached.read_text())
        if stored["identity"] != json.loads(json.dumps(identity)):
            raise ValueError(f"{cached} was made with another configuration: use another --out")
        return stored["rows"], stored["nmes"]
    real = RealSource(bank, seed, train_config.hole_fraction, "zero", train_config.masks)
    source: BatchSource = real
    if pairs is not None:
        source = MixedSource(real, PairSource(bank, pairs, seed, "telea" if variant == "classic" else "generated"),
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
        rows.append({"detector": train_config.detector, "variant": variant, "seed": seed, "subset": name,
                     "nme": scores.nme, "fr10": scores.fr10, "auc10": scores.auc10, "n": scores.n,
                     "precision": precision})
    write_json(cached, {"identity": identity, "rows": rows, "nmes": nmes})
    return rows, nmes


def paired_table(per_face: pd.DataFrame) -> pd.DataFrame:
    """Each variant against each baseline it was run with (`none`; `classic` for the pairs variants), per subset.

    `per_face` has PER_FACE_COLUMNS; the statistics are `lafin_aug.metrics.paired_difference` over the
    seeds both variants ran (see there for how seeds are pooled), plus the baseline's mean NME and the
    relative change of the mean NME (mean / baseline_nme). Columns: PAIRED_COLUMNS.
    """
    rows = []
    variants = list(dict.fromkeys(per_face["variant"]))
    for subset, faces in per_face.groupby("subset", sort=False):
        tables = {variant: group.pivot(index="seed", columns="face", values="nme")
                  for variant, group in faces.groupby("variant", sort=False)}
        for baseline in (b for b in BASELINES if b in tables):
            for variant in variants:
                if variant in BASELINES[: BASELINES.index(baseline) + 1] or variant not in tables:
                    continue
                seeds = tables[variant].index.intersection(tables[baseline].index)
                base = tables[baseline].loc[seeds].to_numpy()
                try:
                    stats = paired_difference(tables[variant].loc[seeds].to_numpy(), base)
                except ValueError as error:
                    raise ValueError(f"{subset}: {variant} against {baseline}: {error}") from None
                rows.append({"subset": subset, "variant": variant, "baseline": baseline,
                             "baseline_nme": float(base.mean()), "change": stats.mean / float(base.mean()),
                             **stats.to_dict()})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def summarise(results: pd.DataFrame, paired: pd.DataFrame) -> str:
    """Markdown: mean ± std over seeds per variant and subset, then the paired comparison of `paired_table`."""
    subsets = list(dict.fromkeys(results["subset"]))
    variants = sorted(dict.fromkeys(results["variant"]), key=lambda v: BASELINES.index(v) if v in BASELINES
                      else len(BASELINES))
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
    if len(paired):
        lines += ["", "Paired per face (variant minus baseline on the same faces and seeds; each face averaged "
                      "over seeds, SE over faces):", "",
                  "| subset | variant | vs | NME change | ΔNME ± SE | faces improved | seeds better |",
                  "|---|---|---|---|---|---|---|"]
        for _, row in paired.iterrows():
            se = "n/a" if np.isnan(row["se"]) else f"{row['se']:.4f}"
            lines.append(f"| {row['subset']} | {row['variant']} | {row['baseline']} | {100 * row['change']:+.1f}% | "
                         f"{row['mean']:+.4f} ± {se} | {100 * row['improved']:.1f}% | "
                         f"{row['seeds_better']}/{row['seeds']} |")
    return "\n".join(lines) + "\n"


def shard_sets(config: BenchConfig, variants: tuple[str, ...], bank: FaceCrops) -> dict[str, AugmentedPairs]:
    """The shard set each variant of `variants` draws from, loaded once (classic: the first set)."""
    loaded: dict[str, AugmentedPairs] = {}
    for k, (name, directory) in enumerate(config.pairs):
        users = [v for v in variants if v == pairs_variant(name) or (v == "classic" and k == 0)]
        if users:
            pairs = load_augmented(directory, config.training.size, {int(s) for s in bank.source_index},
                                   config.training.data, bank.points)
            loaded.update({v: pairs for v in users})
    return loaded


def run_bench(config: BenchConfig, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Train every (variant, seed), score every test set; returns the result rows.

    Writes results.csv (RESULT_COLUMNS), per_face.csv (PER_FACE_COLUMNS: the NME of every test face
    of every run), paired.csv (PAIRED_COLUMNS, see `paired_table`), summary.md and ced.png.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    variants = resolve_variants(config.variants, config.pairs)
    precision = resolve_precision(config.training.precision, resolve_device(config.training.device))
    write_json(out / "bench.json", {**config.to_dict(), "resolved_precision": precision,
                                    "resolved_variants": list(variants)})
    bank = train_subset(load_crops(config.training.data, config.training.size, progress), config.train_fraction)
    tests = {name: load_crops(spec, config.training.size, progress) for name, spec in test_sets(config).items()}
    sets = shard_sets(config, variants, bank)
    rows, faces = [], []
    for seed in config.seed_range():
        for variant in variants:
            scored, nmes = run_variant(config, variant, seed, bank, sets.get(variant), tests,
                                       out / "runs" / run_name(variant, seed), progress, precision)
            rows += scored
            faces += [(variant, seed, name, face, nme) for name, values in nmes.items()
                      for face, nme in enumerate(values)]
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    per_face = pd.DataFrame(faces, columns=PER_FACE_COLUMNS)
    paired = paired_table(per_face)
    for name, table in (("results.csv", results), ("per_face.csv", per_face), ("paired.csv", paired)):
        write_bytes(out / name, table.to_csv(index=False).encode())
    write_bytes(out / "summary.md", summarise(results, paired).encode())
    first = next(iter(tests))
    curves = {variant: ced_curve(group["nme"].to_numpy(), THRESHOLD)
              for variant, group in per_face[per_face["subset"] == first].groupby("variant", sort=False)}
    save_png(out / "ced.png", plot_curves(curves, f"CED on {first} ({config.training.detector}, {config.seeds} "
                                                  f"seeds pooled)", "NME (inter-ocular)", "fraction of faces",
                                          THRESHOLD))
    return results
