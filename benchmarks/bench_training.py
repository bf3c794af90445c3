"""Training-step speed on this machine: the LaFIn inpainter and the LAB detector under several settings.

    .venv/bin/python benchmarks/bench_training.py            # all variants, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_training.py --skip compile --iters 3

Inpainter: a full LafinTrainer step (D update, G update with pixel, perceptual/style on seeded
random VGG-19 features, TV and adversarial terms) at --size 128, width 32, batch 4 on synthetic
faces. Detector: a full DetectorTrainer step of LAB at 64 px, batch 16. Variants, each a fresh
trainer built from the same seed:
  current          fast_step=False: the step of lafin-aug 0.2 (the reference of every ratio)
  fast_step        the default step (see InpainterTrainConfig.fast_step)
  channels_last    models and batches in channels_last memory format
  compile          torch.compile (inductor) of the trained networks; its compile time is printed
  1 thread         torch.set_num_threads(1) around the step (the others use all threads)
each at fp32 and at the precision `auto` resolves to here. Steps take turns run by run, so all
variants see the same background load; the figures are steps/s from the median (and best) step.
Also checks that fast_step gives the same fp32 loss values as the current step, bit for bit, for
the first --curve-steps steps.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from bench_generator import hardware, time_round_robin
from lafin_aug.data import open_dataset
from lafin_aug.data.crops import crop_dataset
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors.trainer import DetectorTrainConfig, DetectorTrainer
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.runtime import resolve_precision

VARIANTS = ("current", "fast_step", "channels_last", "compile", "1 thread")


def in_channels_last(modules: list[torch.nn.Module], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Move `modules` to channels_last; the batch with its images and masks in that format too."""
    for module in modules:
        module.to(memory_format=torch.channels_last)
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}


def one_thread(step: Callable[[], None]) -> Callable[[], None]:
    """`step` run with one intra-op thread."""
    def run() -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            step()
        finally:
            torch.set_num_threads(threads)
    return run


def inpainter_steps(variants: list[str], precision: str, size: int, work: Path) -> dict[str, Callable[[], None]]:
    """A step function per variant for LaFIn at `size`, width 32, batch 4."""
    bank = crop_dataset(open_dataset("synthetic", count=16), size, progress=False)
    steps = {}
    for variant in variants:
        config = LafinTrainConfig(size=size, width=32, batch=4, steps=10 ** 6, vgg_weights="random", device="cpu",
                                  precision=precision, sample_every=0, fast_step=variant == "fast_step")
        trainer = LafinTrainer(config, work / f"lafin-{precision}-{variant}", bank=bank, progress=False)
        batch = trainer.batch(0)
        if variant == "channels_last":
            batch = in_channels_last([trainer.generator, trainer.discriminator, trainer.loss], batch)
        if variant == "compile":
            trainer.g_train, trainer.d_train = torch.compile(trainer.generator), torch.compile(trainer.discriminator)
            trainer.loss.vgg = torch.compile(trainer.loss.vgg)
        step = (lambda t, b: lambda: t.train_step(b))(trainer, batch)
        steps[variant] = one_thread(step) if variant == "1 thread" else step
    return steps


def detector_steps(variants: list[str], precision: str, size: int, work: Path) -> dict[str, Callable[[], None]]:
    """A step function per variant for LAB at `size`, batch 16 (fast_step does not apply: skipped)."""
    steps = {}
    for variant in (v for v in variants if v != "fast_step"):
        config = DetectorTrainConfig(detector="lab", data=DatasetSpec("synthetic", count=32), size=size, batch=16,
                                     steps=10 ** 6, device="cpu", precision=precision, sample_every=0)
        trainer = DetectorTrainer(config, work / f"lab-{precision}-{variant}", progress=False)
        batch = trainer.batch(0)
        if variant == "channels_last":
            batch = in_channels_last([trainer.model], batch)
        if variant == "compile":
            trainer.model_train = torch.compile(trainer.model)
        step = (lambda t, b: lambda: t.train_step(b))(trainer, batch)
        steps[variant] = one_thread(step) if variant == "1 thread" else step
    return steps


def same_fp32_curve(size: int, steps: int, work: Path) -> tuple[bool, float]:
    """Whether fast_step and the current step give identical fp32 losses over `steps` steps (and the
    largest difference)."""
    curves = []
    bank = crop_dataset(open_dataset("synthetic", count=16), size, progress=False)
    for fast in (False, True):
        config = LafinTrainConfig(size=size, width=32, batch=4, steps=steps, vgg_weights="random", device="cpu",
                                  precision="fp32", sample_every=0, fast_step=fast)
        trainer = LafinTrainer(config, work / f"curve-{fast}", bank=bank, progress=False)
        curves.append([trainer.train_step(trainer.batch(step)) for step in range(steps)])
    differences = [abs(a[k] - b[k]) for a, b in zip(*curves) for k in a]
    return max(differences) == 0.0, max(differences)


def measure(title: str, steps: dict[str, Callable[[], None]], warmup: int, iters: int) -> None:
    """Time the steps in turns and print steps/s, the ratio to `current` and the warm-up time (compiling)."""
    warm: dict[str, float] = {}
    times = time_round_robin(steps, torch.device("cpu"), warmup, iters,
                             lambda name, seconds: warm.update({name: seconds}))
    print(f"\n{title}")
    print(f"  {'variant':<16}{'steps/s':>9}{'best':>9}{'x current':>11}{'warm-up s':>11}")
    base = 1 / times["current"][0]
    for name, (median, best) in times.items():
        print(f"  {name:<16}{1 / median:>9.3f}{1 / best:>9.3f}{(1 / median) / base:>10.2f}x{warm[name]:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="Inpainter crop side.")
    parser.add_argument("--detector-size", type=int, default=64, help="LAB crop side.")
    parser.add_argument("--iters", type=int, default=5, help="Timed steps per variant.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per variant first.")
    parser.add_argument("--skip", nargs="*", default=[], choices=VARIANTS, help="Variants to leave out.")
    parser.add_argument("--curve-steps", type=int, default=3, help="Steps of the fp32 loss-curve check (0: skip).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="VGG-19")
    logging.getLogger("lafin_aug.models.vgg").setLevel(logging.ERROR)
    variants = [v for v in VARIANTS if v not in args.skip]
    native = resolve_precision("auto", torch.device("cpu"))
    print(f"{hardware(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; precision auto resolves to {native} here")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.curve_steps:
            same, largest = same_fp32_curve(args.size, args.curve_steps, work)
            print(f"fp32 loss values of fast_step vs current over {args.curve_steps} steps: "
                  f"{'identical' if same else f'differ (largest difference {largest:.3g})'}")
        for precision in dict.fromkeys(["fp32", native]):
            measure(f"LaFIn inpainter training step, {args.size} px, width 32, batch 4, {precision}",
                    inpainter_steps(variants, precision, args.size, work), args.warmup, args.iters)
            measure(f"LAB detector training step, {args.detector_size} px, batch 16, {precision}",
                    detector_steps(variants, precision, args.detector_size, work), args.warmup, args.iters)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
