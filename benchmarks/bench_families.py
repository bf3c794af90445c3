"""Inpainter families side by side: inference and training images/s of LaFIn and MDRNets, one run.

    .venv/bin/python benchmarks/bench_families.py --size 128 --iters 5

Both at --size, with the settings of benchmarks/real_data.sh step 6 (LaFIn width 32, 7 blocks; MDRNets
at its CPU-sized defaults; batch 4; no VGG-19, as no ImageNet weights are here), at the precision
`auto` resolves to (or --precision). Inference: the generator's forward at --infer-batch under
torch.inference_mode, conditions (landmark map, and for MDRNets the parsing map) drawn per call as
`generate` does. Training: the family trainer's step (MDRNets: its refinement stage, the one it
spends most steps in; its reconstruction and coarse stages are cheaper). Calls take turns, so both
families see the same background load; figures are images/s of the median call (and of the best).
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
from lafin_aug.inpainters import FAMILIES
from lafin_aug.inpainters.lafin.config import LafinTrainConfig
from lafin_aug.inpainters.lafin.trainer import LafinTrainer
from lafin_aug.inpainters.mdr.config import MDRTrainConfig
from lafin_aug.inpainters.mdr.trainer import MDRTrainer
from lafin_aug.inpainters.training import InpainterTrainer
from lafin_aug.runtime import autocast, resolve_precision


def trainers(size: int, batch: int, precision: str, work: Path) -> dict[str, InpainterTrainer]:
    """A fresh trainer per family on the same synthetic crops."""
    bank = crop_dataset(open_dataset("synthetic", count=16), size, progress=False)
    common = dict(size=size, batch=batch, steps=10 ** 6, vgg_weights="off", device="cpu", precision=precision,
                  sample_every=0)
    return {"lafin": LafinTrainer(LafinTrainConfig(width=32, blocks=7, **common), work / "lafin", bank=bank,
                                  progress=False),
            "mdr": MDRTrainer(MDRTrainConfig(recon_steps=0, coarse_steps=0, **common), work / "mdr", bank=bank,
                              progress=False)}


def inference(trainer: InpainterTrainer, batch: int) -> Callable[[], None]:
    """One generator forward on `batch` faces of the trainer's crops, conditions drawn in the call."""
    data = trainer.batch(0)
    data = {k: v.repeat_interleave(-(-batch // len(v)), dim=0)[:batch] for k, v in data.items()}
    family = FAMILIES.get(trainer.family)
    generator = trainer.generator.eval()

    def step() -> None:
        with torch.inference_mode(), autocast(trainer.device, trainer.precision):
            generator(data["image"], data["mask"], family.conditions(data["landmarks"], data["image"].shape[-1]))
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4, help="Training batch.")
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="VGG-19")
    logging.getLogger("lafin_aug.models.vgg").setLevel(logging.ERROR)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    print(f"{hardware(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.2f}; {args.size} px, {precision}")
    with tempfile.TemporaryDirectory() as scratch:
        runs = trainers(args.size, args.batch, precision, Path(scratch))
        parameters = {name: sum(p.numel() for p in t.generator.parameters()) for name, t in runs.items()}
        train_batches = {name: t.batch(0) for name, t in runs.items()}
        train = {name: (lambda t, b: lambda: t.train_step(b))(t, train_batches[name]) for name, t in runs.items()}
        trained = time_round_robin(train, torch.device("cpu"), args.warmup, args.iters)
        infer = {name: inference(t, args.infer_batch) for name, t in runs.items()}
        inferred = time_round_robin(infer, torch.device("cpu"), args.warmup, args.iters)
    print(f"{'family':<8}{'G params':>11}{'infer img/s':>13}{'best':>8}{'train img/s':>13}{'best':>8}")
    for name in runs:
        print(f"{name:<8}{parameters[name] / 1e6:>10.2f}M{args.infer_batch / inferred[name][0]:>13.2f}"
              f"{args.infer_batch / inferred[name][1]:>8.2f}{args.batch / trained[name][0]:>13.2f}"
              f"{args.batch / trained[name][1]:>8.2f}")
    ratio = (args.infer_batch / inferred["mdr"][0]) / (args.infer_batch / inferred["lafin"][0])
    print(f"MDRNets / LaFIn: inference {ratio:.2f}x, training "
          f"{(trained['lafin'][0]) / (trained['mdr'][0]):.2f}x; load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
