"""End-to-end `generate` throughput against the raw generator forward, measured in one run.

    .venv/bin/python benchmarks/bench_generate.py --size 128 --batch 8 --width 32 --faces 96

Builds an untrained inpainter checkpoint of the given width (speed does not depend on training),
then prints images/s of (1) G_P forward alone on ready tensors at --batch, and (2) the whole
`generate` engine on --faces synthetic faces: rendering/reading, cropping, mask drawing, batched
inference, uint8 compositing and HDF5 writing (crops are made once, as the CLI does, and timed
separately). The ratio (2)/(1) is the engine's efficiency; the target is >= 0.8 at 128 px on CPU.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from lafin_aug.checkpoint import INPAINTER_FORMAT, CheckpointHeader, save_checkpoint
from lafin_aug.data.crops import load_crops
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters import Conditions
from lafin_aug.inpainters.lafin import LafinConfig, LafinGenerator
from lafin_aug.runtime import autocast, cpu_capability, resolve_precision


def forward_rate(model: torch.nn.Module, size: int, batch: int, precision: str, iters: int) -> float:
    """Images/s of the generator forward alone (inference mode)."""
    image = torch.rand(batch, 3, size, size)
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    landmarks = Conditions(torch.rand(batch, 68, 2) * size)
    device = torch.device("cpu")
    with torch.inference_mode(), autocast(device, precision):
        model(image, mask, landmarks)
        started = time.perf_counter()
        for _ in range(iters):
            model(image, mask, landmarks)
    return batch * iters / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--faces", type=int, default=96)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, torch.device("cpu"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        config = LafinConfig(width=args.width)
        model = LafinGenerator(config).eval()
        checkpoint = workdir / "inpainter.pt"
        header = CheckpointHeader(format=INPAINTER_FORMAT, family="lafin", config=config.to_dict(), size=args.size,
                                  points=config.points)
        save_checkpoint(checkpoint, {"header": header.to_dict(), "generator": model.state_dict()})
        data = DatasetSpec("synthetic", count=args.faces)
        started = time.perf_counter()
        bank = load_crops(data, args.size, progress=False)
        crop_seconds = time.perf_counter() - started
        iters = max(1, args.faces // args.batch)
        raw = forward_rate(model, args.size, args.batch, args.precision, iters)
        run = GenerateConfig(data=data, inpainter=str(checkpoint), epochs=1, include_real=False, device="cpu",
                             batch=args.batch, precision=args.precision, shard_size=args.faces)
        summary = generate(run, workdir / "shards", bank=bank, progress=False)
        end_to_end = summary.records_written / summary.seconds
        raw_again = forward_rate(model, args.size, args.batch, args.precision, iters)
        print(f"size {args.size}, width {args.width}, batch {args.batch}, {args.precision}, "
              f"{torch.get_num_threads()} threads, {args.faces} faces; CPU {cpu_capability()}")
        print(f"render+crop (once per run):  {args.faces / crop_seconds:8.1f} faces/s")
        print(f"generator forward alone:     {raw:8.1f} images/s (again after: {raw_again:.1f})")
        print(f"generate end to end:         {end_to_end:8.1f} images/s")
        print(f"ratio end-to-end / forward:  {end_to_end / ((raw + raw_again) / 2):8.2f}")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
