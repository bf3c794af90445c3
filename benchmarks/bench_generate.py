"""End-to-end `generate` throughput against the raw generator forward, measured in one run.

    .venv/bin/python benchmarks/bench_generate.py --size 128 --batch 8 --width 32 --faces 96
    .venv/bin/python benchmarks/bench_generate.py --device cuda --batch 64 --epochs 2 --profile \
        --dataset pts --root ../shared/data/wild/train --inpainter RUN_OR_CHECKPOINT

Uses --inpainter (a LaFIn one), or else builds an untrained LaFIn checkpoint of --width at --size
(speed does not depend on training). Crops the faces once, as the CLI does, and times that separately
(synthetic: --faces rendered faces; other datasets: every usable face, or the first --faces of them).
Then, on one device, at one size, batch and precision, prints images/s of (1) the generator forward
alone on ready tensors (torch.inference_mode, median of timed batches, measured before and after), and (2)
the whole `generate` engine over --epochs augmented copies of every face: mask drawing, batched
inference, uint8 compositing and HDF5 writing (after a one-batch warm-up run, so model loading and
first-call costs are not counted). The ratio (2)/(1) is the engine's efficiency; the target is
>= 0.8 at 128 px on CPU. --profile runs `generate` once more under cProfile and prints where its
time goes (mask drawing, inpainting and its parts, HDF5 writing, manifest) and the functions with
the most own time. On CUDA, kernels run asynchronously: the generator's forward there is the cost
of launching them, and the wait for the GPU shows up in the copy back to uint8.
"""
from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench_generator import hardware, inference_step, time_round_robin
from lafin_aug.checkpoint import INPAINTER_FORMAT, CheckpointHeader, save_checkpoint
from lafin_aug.data.crops import FaceCrops, load_crops
from lafin_aug.data.masks import make_mask
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate, inpaint_records, record_in_manifest
from lafin_aug.images import to_tensor, to_uint8
from lafin_aug.inpainters import load_inpainter
from lafin_aug.inpainters.lafin import LafinConfig, LafinGenerator
from lafin_aug.runtime import DEVICES, PRECISIONS, resolve_device, resolve_precision
from lafin_aug.shards import write_shard


def untrained_checkpoint(path: Path, width: int, size: int) -> Path:
    """An untrained LaFIn inpainter checkpoint of `width` for `size` px crops."""
    config = LafinConfig(width=width)
    header = CheckpointHeader(format=INPAINTER_FORMAT, family="lafin", config=config.to_dict(), size=size,
                              points=config.points)
    save_checkpoint(path, {"header": header.to_dict(), "generator": LafinGenerator(config).state_dict()})
    return path


def forward_rate(model: torch.nn.Module, size: int, batch: int, device: torch.device, precision: str,
                 iters: int) -> float:
    """Images/s of the generator forward alone (median batch time)."""
    step = inference_step(model, size, model.config.points, device, precision, batch)
    median, _ = time_round_robin({"forward": step}, device, warmup=2, iters=iters)["forward"]
    return batch / median


def profile_sections(model: torch.nn.Module) -> list[tuple[str, Callable]]:
    """(label, function) of the engine's stages, top-level ones unindented, parts of one indented."""
    return [("mask drawing", make_mask),
            ("inpainting (to device, forward, composite)", inpaint_records),
            ("  uint8 crops to device tensors", to_tensor),
            ("  generator forward (CUDA: kernel launches)", type(model).forward),
            ("  output to uint8 on the CPU (CUDA: waits for the GPU)", to_uint8),
            ("HDF5 shard writing", write_shard),
            ("manifest update", record_in_manifest)]


def print_profile(profile: cProfile.Profile, model: torch.nn.Module, records: int, top: int = 10) -> None:
    """Seconds per stage of a profiled `generate` run, then the functions with the most own time."""
    stats = pstats.Stats(profile)

    def cumulative(function: Callable) -> float:
        code = inspect.unwrap(function).__code__
        entry = stats.stats.get((code.co_filename, code.co_firstlineno, code.co_name))
        return entry[3] if entry else 0.0

    total = cumulative(generate)
    print(f"where generate's time goes (under cProfile, which slows Python-heavy parts; {records} records, "
          f"{total:.2f} s):")
    covered = 0.0
    for label, function in profile_sections(model):
        seconds = cumulative(function)
        covered += 0.0 if label.startswith(" ") else seconds
        print(f"  {label:56} {seconds:7.2f} s {100 * seconds / total:5.1f} %")
    print(f"  {'everything else':56} {total - covered:7.2f} s {100 * (total - covered) / total:5.1f} %")
    print(f"top {top} functions by own time:")
    by_own = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for (filename, line, name), (_, calls, own, _, _) in by_own:
        print(f"  {own:7.2f} s {100 * own / total:5.1f} % {calls:>8} calls  {Path(filename).name}:{line} {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="default: the inpainter's size, else 128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=32, help="width of the untrained inpainter (no --inpainter)")
    parser.add_argument("--inpainter", default=None, help="checkpoint, exported generator or run directory")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--root", default=None)
    parser.add_argument("--faces", type=int, default=96, help="synthetic faces; other datasets: at most this "
                                                              "many (0: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--profile", action="store_true", help="also profile one more generate run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        inpainter = args.inpainter or str(untrained_checkpoint(workdir / "inpainter.pt", args.width, args.size or 128))
        model, header = load_inpainter(inpainter, device)
        size = args.size or header.size
        data = DatasetSpec(args.dataset, root=args.root, count=args.faces)
        started = time.perf_counter()
        bank = load_crops(data, size, progress=False)
        crop_rate = len(bank) / (time.perf_counter() - started)
        if args.dataset != "synthetic" and 0 < args.faces < len(bank):
            bank = bank.subset(np.arange(args.faces))
        records = len(bank) * args.epochs
        iters = max(5, min(50, records // args.batch))

        def run(out: str, faces: FaceCrops) -> float:
            config = GenerateConfig(data=data, inpainter=inpainter, epochs=args.epochs, include_real=False,
                                    device=args.device, batch=args.batch, precision=precision,
                                    shard_size=args.shard_size, size=size)
            summary = generate(config, workdir / out, bank=faces, progress=False)
            return summary.records_written / summary.seconds

        raw = forward_rate(model, size, args.batch, device, precision, iters)
        run("warm-up", bank.subset(np.arange(min(args.batch, len(bank)))))
        end_to_end = run("shards", bank)
        raw_again = forward_rate(model, size, args.batch, device, precision, iters)
        print(f"{header.family} inpainter {header.config}, {size} px, batch {args.batch}, {precision}, "
              f"{device.type}, {torch.get_num_threads()} threads, {len(bank)} faces x {args.epochs} epochs; "
              f"{hardware(device)}")
        print(f"read+crop (once per run):    {crop_rate:8.1f} faces/s")
        print(f"generator forward alone:     {raw:8.1f} images/s (again after: {raw_again:.1f})")
        print(f"generate end to end:         {end_to_end:8.1f} images/s")
        print(f"ratio end-to-end / forward:  {end_to_end / ((raw + raw_again) / 2):8.2f}")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(run, "profiled", bank)
            print_profile(profile, model, records)
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
