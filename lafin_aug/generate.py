"""The generate engine: a dataset and a trained inpainter of any family -> augmented (I_aug, L_gt) pairs
in HDF5 shards.

I_aug = M∘G_P(M̄∘I, L) + M̄∘I with a fresh mask M for every face and epoch, drawn from
(seed, epoch, source_index), so epoch e of face i always gets the same mask and a rerun is
identical. Records are laid out epoch-major — the real crops (epoch -1, with --include-real) for
every face, then epoch 0 for every face, ... — and cut into shards of `shard_size` records. Shard j
belongs to rank j % WORLD_SIZE (torchrun or RANK/WORLD_SIZE), so several GPUs or machines each write
only their own shards; within a rank, shards are spread over `workers` joblib processes or the
workers of a Dask cluster (`scheduler`, see `lafin_aug.cluster`). A shard already listed in the
manifest with a matching checksum is skipped, so rerunning a killed command finishes the job.

Records depend only on the record identity (dataset, inpainter weights, epochs, seed, ...), never on
where they were made, with one exception: the generated pixels can differ by an intensity level or
two between runs with different intra-op thread counts (floating-point sums in another order), so
`threads` is recorded in run.json and runs meant to be compared bit for bit should set it.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm import tqdm

from lafin_aug.checkpoint import CheckpointHeader, last_checkpoint
from lafin_aug.cluster import check_scheduler, job_backend
from lafin_aug.config import Config, to_dict
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.masks import BUCKETS, MaskConfig, make_mask
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.images import to_tensor, to_uint8
from lafin_aug.inpainters import FAMILIES, InpainterFamily, load_inpainter
from lafin_aug.io import sha256_file, write_json
from lafin_aug.landmark_edits import edit_landmarks
from lafin_aug.landmarks import to_ibug68
from lafin_aug.runtime import autocast, distributed, resolve_device, resolve_precision
from lafin_aug.shards import (
    MANIFEST_NAME,
    RUN_CONFIG_NAME,
    ManifestRow,
    ShardHeader,
    read_manifest,
    read_run_config,
    remove_stale_temporaries,
    shard_name,
    to_record,
    write_manifest,
    write_shard,
)
from lafin_aug.shards.split import consumer, resolve_ranks, share

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateConfig(Config):
    """Everything `lafin-aug generate` depends on (written to run.json).

    inpainter: a checkpoint, an exported generator or a run directory. size: crop side; None takes
    the inpainter's training size. edit: probability that a record's landmarks inside the hole are
    edited before conditioning (stored as the new label, `edited` = 1). precision: auto, fp32 or
    bf16 (see `lafin_aug.runtime`); the resolved one is recorded in run.json.
    """

    data: DatasetSpec = field(default_factory=DatasetSpec)
    inpainter: str = ""
    epochs: int = 1
    size: int | None = None
    shard_size: int = 1000
    seed: int = 0
    workers: int = 1
    scheduler: str = ""
    threads: int | None = None
    batch: int = 8
    device: str = "auto"
    precision: str = "auto"
    include_real: bool = True
    mask_buckets: tuple[str, ...] = tuple(BUCKETS)
    edit: float = 0.0


@dataclass(frozen=True)
class ShardPlan:
    """One shard's records: positions in the crop bank and their epochs."""

    index: int
    faces: np.ndarray
    epochs: np.ndarray


def plan_shards(faces: int, config: GenerateConfig) -> list[ShardPlan]:
    """The deterministic, epoch-major record layout cut into shards."""
    first = -1 if config.include_real else 0
    epochs = np.repeat(np.arange(first, config.epochs), faces)
    positions = np.tile(np.arange(faces), config.epochs - first)
    return [ShardPlan(j, positions[start:start + config.shard_size], epochs[start:start + config.shard_size])
            for j, start in enumerate(range(0, len(epochs), config.shard_size))]


class CachedInpainter(NamedTuple):
    """A loaded generator with its family, checkpoint header, and the sha256 and stat of its file."""

    model: torch.nn.Module
    family: InpainterFamily
    header: CheckpointHeader
    sha256: str
    stat: tuple[int, int, int]


_MODELS: dict[tuple[str, str], CachedInpainter] = {}


def _file_stat(path: str) -> tuple[int, int, int]:
    """(inode, size, mtime in ns): changes whenever a checkpoint is rewritten (atomically or in place)."""
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


def _cached_inpainter(path: str, device: torch.device, sha256: str = "") -> CachedInpainter:
    """The generator of the file `path`, loaded and hashed once per process and file version (generator
    weights only).

    With `sha256`, the loaded weights must have that checksum: a file that no longer matches is a
    ValueError (a long-lived cluster worker never inpaints with weights other than those run.json names).
    """
    key = (path, str(device))
    cached = _MODELS.get(key)
    if cached is not None and cached.stat == _file_stat(path) and sha256 in ("", cached.sha256):
        return cached
    model, header = load_inpainter(path, device)  # its errors name the file
    digest = sha256_file(path)
    if sha256 and digest != sha256:
        raise ValueError(f"{path}: the inpainter changed after generate started (its sha256 is not the one in "
                         f"run.json); rerun the command")
    cached = _MODELS[key] = CachedInpainter(model, FAMILIES.get(header.family), header, digest, _file_stat(path))
    return cached


def mask_config(config: GenerateConfig) -> MaskConfig:
    """Generation masks: LaFIn's mixed irregular/block masks over the chosen buckets."""
    return MaskConfig(kind="mixed", buckets=config.mask_buckets)


@torch.no_grad()
def inpaint_records(model: torch.nn.Module, family: InpainterFamily, images: np.ndarray, landmarks: np.ndarray,
                    masks: np.ndarray, batch: int, device: torch.device, precision: str) -> np.ndarray:
    """uint8 [N,S,S,3]: the inpainter's fill inside each mask, the real pixels (bit-exact) outside.

    98-point landmarks are mapped to 68 for a 68-point model; `precision` is resolved (fp32 or bf16).
    """
    out = np.empty_like(images)
    points = model.config.points
    for start in range(0, len(images), batch):
        stop = start + batch
        image = to_tensor(images[start:stop], device)
        mask = torch.from_numpy(masks[start:stop]).to(device).unsqueeze(1).float()
        marks = landmarks[start:stop]
        if marks.shape[1] != points:
            marks = np.stack([to_ibug68(m) for m in marks])
        conditions = family.conditions(torch.from_numpy(np.ascontiguousarray(marks)), image.shape[-2:]).to(device)
        with autocast(device, precision):
            generated = model(image, mask, conditions)
        hole = masks[start:stop, ..., None].astype(bool)
        out[start:stop] = np.where(hole, to_uint8(generated), images[start:stop])
    return out


def augment_records(plan: ShardPlan, crops: np.ndarray, landmarks: np.ndarray, source_index: np.ndarray,
                    config: GenerateConfig, device: torch.device, precision: str,
                    inpainter_sha256: str = "") -> tuple[np.ndarray, ...]:
    """(images, labels, masks, edited) of a plan's records: masks, optional landmark edits, inpainting.

    `precision` is the resolved one (fp32 or bf16); `inpainter_sha256`, when given, is checked against
    config.inpainter's file before it is loaded.
    """
    size = crops.shape[1]
    images = crops[plan.faces].copy()
    labels = landmarks[plan.faces].copy()
    sources = source_index[plan.faces]
    masks = np.zeros((len(plan.faces), size, size), np.uint8)
    edited = np.zeros(len(plan.faces), np.uint8)
    augmented = np.flatnonzero(plan.epochs >= 0)
    masks_config = mask_config(config)
    for k in augmented:
        masks[k] = make_mask(size, config.seed, int(plan.epochs[k]), int(sources[k]), masks_config)
        rng = np.random.default_rng((config.seed, int(plan.epochs[k]), int(sources[k]), 0xED17))
        if config.edit and rng.random() < config.edit:
            labels[k], changed = edit_landmarks(labels[k], masks[k], rng)
            edited[k] = changed
    if len(augmented):
        model, family = _cached_inpainter(config.inpainter, device, inpainter_sha256)[:2]
        images[augmented] = inpaint_records(model, family, images[augmented], labels[augmented], masks[augmented],
                                            config.batch, device, precision)
    return images, labels, masks, edited


def build_shard(plan: ShardPlan, crops: np.ndarray, landmarks: np.ndarray, source_index: np.ndarray,
                config: GenerateConfig, precision: str, header: ShardHeader, path: Path,
                threads: int | None) -> ManifestRow:
    """Inpaint one shard's records with `threads` torch threads and write the shard atomically."""
    own_threads = torch.get_num_threads()
    torch.set_num_threads(threads or own_threads)
    try:
        images, labels, masks, edited = augment_records(plan, crops, landmarks, source_index, config,
                                                        resolve_device(config.device), precision,
                                                        header.inpainter_sha256)
    finally:
        torch.set_num_threads(own_threads)
    return write_shard(path, header, images, labels, masks, source_index[plan.faces], plan.epochs, edited)


def job_threads(config: GenerateConfig) -> int | None:
    """Torch intra-op threads of each shard job (None: leave the process's own setting)."""
    if config.threads is not None:
        if config.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {config.threads}")
        return config.threads
    if config.scheduler:
        return 1
    return max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else None


def warn_if_other_threads(out: Path, threads: int) -> None:
    """Warn when the shards already in `out` were made with another thread count per job (their
    generated pixels may differ from this run's by an intensity level)."""
    if (out / RUN_CONFIG_NAME).exists():
        before = read_run_config(out).get("threads_per_job")
        if before is not None and before != threads:
            log.warning("%s: earlier shards were made with %s torch threads per job, this run uses %s: generated "
                        "pixels may differ between them by an intensity level (set --threads to match)",
                        out, before, threads)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the directory's manifest, so ranks and workers never lose each other's rows."""
    with open(directory / ".manifest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_in_manifest(directory: Path, row: ManifestRow) -> None:
    """Add or replace a shard's manifest row (rows kept in shard order)."""
    with _locked(directory):
        rows = {r.name: r for r in read_manifest(directory)} if (directory / MANIFEST_NAME).exists() else {}
        rows[row.name] = row
        write_manifest(directory, [rows[name] for name in sorted(rows)])


def finished_shards(directory: Path) -> set[str]:
    """Shards whose file exists and matches its manifest checksum."""
    if not (directory / MANIFEST_NAME).exists():
        return set()
    done = set()
    for row in read_manifest(directory):
        path = directory / row.name
        if path.is_file() and sha256_file(path) == row.sha256:
            done.add(row.name)
    return done


def record_identity(config: GenerateConfig, header: ShardHeader, precision: str, faces: int) -> dict[str, Any]:
    """Everything a record's content depends on (not workers, batch or device): a directory holds one."""
    return {"dataset": config.data.to_dict(), "faces": faces, "inpainter_sha256": header.inpainter_sha256,
            "epochs": config.epochs, "size": header.size, "shard_size": config.shard_size, "seed": config.seed,
            "include_real": config.include_real, "mask_buckets": list(config.mask_buckets), "edit": config.edit,
            "precision": precision}


def claim_directory(out: Path, identity: dict[str, Any]) -> None:
    """Refuse `out` when it holds shards of another configuration (call under the directory lock).

    ValueError naming the first option that differs and suggesting another --out.
    """
    path = out / RUN_CONFIG_NAME
    if not path.exists():
        return
    stored = read_run_config(out).get("identity")
    if stored is None:
        raise ValueError(f"{path}: written by an earlier lafin-aug without a record identity; use another --out")
    plain = json.loads(json.dumps(identity))
    for key, value in plain.items():
        if stored.get(key) != value:
            option = {"inpainter_sha256": "--inpainter (its weights)", "dataset": "--dataset/--root/--split/--count",
                      "faces": "the dataset's faces"}.get(key, "--" + key.replace("_", "-"))
            raise ValueError(f"{out} holds shards made with another {option} ({stored.get(key)!r} there, {value!r} "
                             f"here): use another --out")


@dataclass
class GenerateSummary:
    """What a generate run did."""

    out: Path
    faces: int
    shards_total: int
    shards_written: int
    shards_skipped: int
    records_written: int
    seconds: float

    def __str__(self) -> str:
        rate = self.records_written / self.seconds if self.seconds else 0.0
        return (f"{self.out}: {self.faces} faces, {self.shards_written} shards written "
                f"({self.records_written} records, {rate:.1f} records/s), {self.shards_skipped} already complete, "
                f"{self.shards_total} in the plan")


def generate(config: GenerateConfig, out: str | Path, bank: FaceCrops | None = None,
             progress: bool = True) -> GenerateSummary:
    """Write (or finish) the shard directory `out` for `config`; returns a summary."""
    started = time.perf_counter()
    out = Path(out).resolve()  # workers elsewhere on the cluster write here too
    rank, world = distributed()
    check_scheduler(config.scheduler, config.workers, world)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    inpainter = str(last_checkpoint(config.inpainter).resolve())
    _, _, inpainter_header, inpainter_sha256, _ = _cached_inpainter(inpainter, device)
    size = config.size or inpainter_header.size
    bank = bank if bank is not None else load_crops(config.data, size, progress)
    if bank.size != size:
        raise ValueError(f"crops are {bank.size}px but generation asks for {size}px")
    header = ShardHeader(points=bank.points, size=size, dataset=config.data.dataset, split=config.data.split,
                         seed=config.seed, inpainter_sha256=inpainter_sha256)
    planned = plan_shards(len(bank), config)
    identity = record_identity(config, header, precision, len(bank))
    threads = job_threads(config)
    threads_per_job = threads or torch.get_num_threads()
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        claim_directory(out, identity)
        warn_if_other_threads(out, threads_per_job)
        write_json(out / RUN_CONFIG_NAME, {**to_dict(header), "config": to_dict(config), "identity": identity,
                                           "precision": precision, "device": device.type, "world_size": world,
                                           "threads_per_job": threads_per_job,
                                           "faces": len(bank), "shards_planned": len(planned),
                                           "skipped": bank.skipped, "inpainter": inpainter_header.to_dict()})
    plans = [p for p in planned if p.index % world == rank]
    remove_stale_temporaries(out)
    done = finished_shards(out)
    todo = [p for p in plans if shard_name(p.index) not in done]
    job_config = config.replace(inpainter=inpainter)  # the checkpoint file itself, by absolute path
    jobs = (delayed(build_shard)(p, bank.images, bank.landmarks, bank.source_index, job_config, precision, header,
                                 out / shard_name(p.index), threads) for p in todo)
    written = records = 0
    with job_backend(config.scheduler, config.workers) as backend:
        if backend.cluster:
            log.info("generate: shard jobs on %s", backend.cluster)
        bar = tqdm(total=sum(len(p.faces) for p in todo), desc=f"generate (rank {rank}/{world})", unit="face",
                   disable=not progress)
        for row in Parallel(n_jobs=backend.n_jobs, return_as="generator_unordered")(jobs):
            record_in_manifest(out, row)
            written += 1
            records += row.records
            bar.update(row.records)
            bar.set_postfix(shards=f"{written}/{len(todo)}")
        bar.close()
    return GenerateSummary(out, len(bank), len(plans), written, len(plans) - len(todo), records,
                           time.perf_counter() - started)


class OnTheFlyAugment(torch.utils.data.IterableDataset):
    """Fresh augmented pairs generated in memory, nothing written to disk (the online variant).

    Yields the same record dicts as :class:`lafin_aug.shards.AugmentedShards` (image float32
    [3,S,S] in [0,1], landmarks [P,2], mask uint8 [1,S,S], epoch, source_index, edited), one per
    face per pass. Call :meth:`set_epoch` each epoch for new masks; masks and edits follow the
    generate engine's rules, so epoch e of face i equals record (i, e) of `lafin-aug generate`
    with the same seed.

    Splitting (:mod:`lafin_aug.shards.split`, as :class:`~lafin_aug.shards.AugmentedShards`): the
    faces, permuted by (seed, epoch) identically on every consumer, are cut into contiguous ranges,
    one per DataLoader worker of every rank, so one pass over all ranks yields every face exactly
    once; ``len()`` is this rank's share. The permutation is of the whole bank, so no shuffle buffer
    is needed. Rank and world size come from the constructor, else an initialised torch.distributed,
    else the RANK/WORLD_SIZE environment variables, read when the dataset is built.
    """

    def __init__(self, bank: FaceCrops, inpainter: str | Path, seed: int = 0, batch: int = 8,
                 mask_buckets: tuple[str, ...] = tuple(BUCKETS), edit: float = 0.0, device: str = "cpu",
                 precision: str = "auto", rank: int | None = None, world_size: int | None = None):
        self.bank = bank
        self.config = GenerateConfig(inpainter=str(last_checkpoint(inpainter).resolve()), seed=seed, batch=batch,
                                     mask_buckets=mask_buckets, edit=edit, device=device, precision=precision)
        self.rank, self.world_size = resolve_ranks(rank, world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Masks (and edits) of this augmentation epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Faces this rank yields in one pass."""
        start, stop = share(len(self.bank), self.rank, self.world_size)
        return stop - start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        lo, hi = share(len(self.bank), *consumer(self.rank, self.world_size))
        order = np.random.default_rng((self.config.seed, self.epoch, 0x0F1)).permutation(len(self.bank))[lo:hi]
        device = resolve_device(self.config.device)
        precision = resolve_precision(self.config.precision, device)
        for start in range(0, len(order), self.config.batch):
            faces = order[start:start + self.config.batch]
            plan = ShardPlan(0, faces, np.full(len(faces), self.epoch, np.int32))
            images, labels, masks, edited = augment_records(plan, self.bank.images, self.bank.landmarks,
                                                            self.bank.source_index, self.config, device, precision)
            for k, face in enumerate(faces):
                yield to_record((images[k], labels[k], masks[k], self.epoch, int(self.bank.source_index[face]),
                                 bool(edited[k])))
