"""What every trainer shares: the training loop, run directories, CSV logs, checkpoints, resume, Ctrl-C.

Devices, precision, ranks and random states come from `lafin_aug.runtime`, checkpoint files from
`lafin_aug.checkpoint`; this module holds only what training adds on top of them.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lafin_aug.checkpoint import (
    LAST_CHECKPOINT,
    CheckpointHeader,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    state_of,
)
from lafin_aug.config import to_dict
from lafin_aug.io import atomic_path, write_json
from lafin_aug.runtime import capture_rng, init_distributed, resolve_device, resolve_precision, restore_rng

log = logging.getLogger(__name__)

class CsvLog:
    """Append-only CSV of per-step values; on resume, rows past the checkpoint's step are dropped.

    A row with new keys (a training stage that logs other terms) widens the header: the file is
    rewritten once with the union of the columns, earlier rows blank in the new ones.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.fields: list[str] = []
        if self.path.exists():
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                self.fields = list(reader.fieldnames or [])
            self._rewrite([r for r in rows if resume_step is not None and int(r["step"]) <= resume_step])

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            if self.fields:
                writer = csv.DictWriter(handle, self.fields)
                writer.writeheader()
                writer.writerows({k: r.get(k, "") for k in self.fields} for r in rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (new keys add columns)."""
        added = [k for k in row if k not in self.fields]
        if added:
            rows = []
            if self.path.exists() and self.path.stat().st_size:
                with open(self.path, newline="") as handle:
                    rows = list(csv.DictReader(handle))
            self.fields += added
            self._rewrite(rows)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.fields).writerow({k: row.get(k, "") for k in self.fields})


class RunDir:
    """A training run's directory: config.json, log.csv, samples/, checkpoints/."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.samples = self.path / "samples"
        self.checkpoints = self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.path / LAST_CHECKPOINT

    def check(self, resume: bool) -> None:
        """Refuse to overwrite a run unless resuming, and to resume a run that has no checkpoint."""
        if self.last.exists() and not resume:
            raise FileExistsError(f"{self.path} already holds a run (pass --resume to continue it, "
                                  f"or choose another --out)")
        if resume and not self.last.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {self.last}")

    def prepare(self, config: dict[str, Any], resume: bool) -> None:
        """Create the directory and write config.json (after `check`)."""
        self.check(resume)
        self.samples.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "config.json", config)

    def save(self, payload: dict[str, Any], step: int, periodic: bool) -> None:
        """Write last.pt, and step-NNNNNNN.pt too when `periodic`."""
        save_checkpoint(self.last, payload)
        if periodic:
            save_checkpoint(self.checkpoints / f"step-{step:07d}.pt", payload)


@contextlib.contextmanager
def interruptible() -> Iterator[dict[str, bool]]:
    """Catch Ctrl-C (SIGINT) and SIGTERM as a flag so the loop can checkpoint and stop cleanly."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        if flag["stop"]:
            raise KeyboardInterrupt
        log.warning("interrupt received: finishing this step, saving a checkpoint, then stopping")
        flag["stop"] = True

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    installed = False
    try:
        for sig in previous:
            signal.signal(sig, handler)
        installed = True
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield flag
    finally:
        if installed:
            for sig, old in previous.items():
                signal.signal(sig, old)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run after its checkpoint was saved; the message says how to continue."""


class NonFiniteLoss(ValueError):
    """A training step gave a NaN or infinite loss; the run stopped without saving that step."""


class Trainer(ABC):
    """The loop every trainer shares: setup, progress bar, CSV log, samples, checkpoints, resume, Ctrl-C.

    A subclass calls `_setup` first (it refuses a run directory that needs --resume before any data
    is read), builds its models and optimisers, then `_start`; it provides
    `stateful()` (the modules and optimisers to checkpoint by name), `header_fields()` (family,
    model config, size, points, losses of the checkpoint header), `batch`, `train_step`, `train` and
    optionally `sample`. `config` needs seed, device, precision, steps, batch, log_every,
    sample_every and checkpoint_every. `self.precision` is the resolved precision (fp32 or bf16);
    `self.data_info` (faces read, records skipped; empty for a custom batch source) goes into config.json.
    """

    name = "model"
    format = "lafin-aug-model"

    def _setup(self, config: Any, out: str | Path, progress: bool, resume: bool = False) -> None:
        self.config = config
        self.run = RunDir(out)
        self.run.check(resume)
        self.progress = progress
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.rank, self.world = init_distributed(self.device)
        self.step = 0
        self.data_info: dict[str, Any] = {}
        torch.manual_seed(config.seed)

    def _start(self, resume: bool) -> None:
        """Write config.json (rank 0), restore the last checkpoint when resuming, open the log."""
        if self.rank == 0:
            self.run.prepare({"header": self.header().to_dict(), "world_size": self.world,
                              "data": self.data_info}, resume)
        if resume:
            header, state = read_checkpoint(self.run.last, self.format)
            if header.train_config != to_dict(self.config):
                log.warning("%s: resuming with a config that differs from the checkpoint's", self.run.path)
            for name, obj in self.stateful().items():
                load_weights(obj, state_of(state, name, self.run.last), self.run.last)
            restore_rng(state["rng"])
            self.step = header.step
        self.log = CsvLog(self.run.path / "log.csv", resume_step=self.step) if self.rank == 0 else None

    @abstractmethod
    def stateful(self) -> dict[str, Any]:
        """Modules and optimisers saved in checkpoints, by key."""

    @abstractmethod
    def header_fields(self) -> dict[str, Any]:
        """family, config (the model's, rebuilds it alone), size, points and losses of the checkpoint header."""

    def header(self) -> CheckpointHeader:
        """The checkpoint header of the current state."""
        return CheckpointHeader(format=self.format, step=self.step, precision=self.precision,
                                train_config=to_dict(self.config), **self.header_fields())

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to rebuild the model from the file alone, or to resume exactly."""
        return {"header": self.header().to_dict(),
                **{name: obj.state_dict() for name, obj in self.stateful().items()}, "rng": capture_rng()}
    @abstractmethod
    def batch(self, step: int) -> Any:
        """This rank's batch at `step`, a pure function of (seed, step)."""

    @abstractmethod
    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimisation step; returns named loss values including 'total'."""

    @abstractmethod
    def train(self, mode: bool = True) -> None:
        """Put the models in training (or eval) mode."""

    def sample(self, batch: Any, path: Path) -> None:
        """Write a picture of the model's current output on `batch` (optional)."""

    def fit(self, until: int | None = None) -> Path:
        """Train until config.steps (or the earlier step `until`); returns last.pt.

        Ctrl-C or SIGTERM saves a checkpoint, then raises TrainingInterrupted; a non-finite loss
        raises NonFiniteLoss naming the step, leaving the last checkpoint as it was.
        """
        cfg = self.config
        stop = cfg.steps if until is None else min(until, cfg.steps)
        main = self.rank == 0
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {self.name}", unit="step",
                   disable=not (self.progress and main))
        self.train(True)
        with interruptible() as interrupt:
            while self.step < stop:
                started = time.perf_counter()
                batch = self.batch(self.step)
                values = self.train_step(batch)
                bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                if bad:
                    raise NonFiniteLoss(f"{self.run.path}: non-finite loss at step {self.step + 1} ({bad}); the run "
                                        f"stopped without saving it (NaN labels or a diverging model?)")
                self.step += 1
                rate = cfg.batch * self.world / (time.perf_counter() - started)
                last = self.step == stop
                if main:
                    if self.step % cfg.log_every == 0 or last:
                        self.log.write({"step": self.step, **values, "images_per_s": rate})
                    if cfg.sample_every and (self.step % cfg.sample_every == 0 or last):
                        self.sample(batch, self.run.samples / f"step-{self.step:07d}.png")
                    periodic = bool(cfg.checkpoint_every) and self.step % cfg.checkpoint_every == 0
                    if periodic or last or interrupt["stop"]:
                        self.run.save(self.checkpoint(), self.step, periodic)
                bar.set_postfix(loss=f"{values['total']:.4f}", img_s=f"{rate:.1f}")
                bar.update(1)
                if interrupt["stop"]:
                    bar.close()
                    raise TrainingInterrupted(f"interrupted at step {self.step}; continue with --resume "
                                              f"(checkpoint {self.run.last})")
        bar.close()
        return self.run.last
