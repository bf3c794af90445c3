"""Speed of the LaFIn inpainter G_P: inference and full training steps, fp32 and bf16 autocast.

    .venv/bin/python benchmarks/bench_generator.py --sizes 128 256 --threads 2

Prints, per device (CPU, and CUDA when present), size and precision:
  infer  images/s of G_P forward at batch --infer-batch (torch.inference_mode)
  train  images/s of one training step at batch --train-batch: G forward, D on real and
         composite + LSGAN D loss + D backward/Adam step, the full generator objective
         (pixel, perceptual and style on random VGG-19 features, TV, LSGAN) + G backward/Adam step
plus G's parameter count and forward GFLOP per image (torch.utils.flop_counter, fp32).
Times are the median over --iters runs after --warmup runs; "best" is the fastest run, which is
the steadier figure on a machine shared with other jobs (the load average is printed too). For
one size, all precisions and modes take turns run by run, so they see the same background load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from lafin_aug.inpainters import Conditions, build_inpainter, composite
from lafin_aug.losses import InpaintLoss, lsgan_discriminator_loss
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.models.discriminator import PatchDiscriminator
from lafin_aug.models.vgg import load_vgg19
from lafin_aug.runtime import cpu_capability


def make_batch(batch: int, size: int, points: int, device: str) -> tuple[torch.Tensor, ...]:
    """Random image in [0,1], a centred rectangular hole (a quarter of the image), random landmarks."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    landmarks = torch.rand(batch, points, 2, generator=generator) * (size - 1)
    return image.to(device), mask.to(device), Conditions(landmarks.to(device))


def autocast(device: str, precision: str):
    return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def time_round_robin(steps: dict[str, Callable[[], None]], device: str, warmup: int,
                     iters: int) -> dict[str, tuple[float, float]]:
    """(median, best) seconds per call of each step; the steps take turns, so all see the same load."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(iters):
        for name, step in steps.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(runs), min(runs)) for name, runs in times.items()}


def forward_gflop(model: torch.nn.Module, size: int, points: int) -> float:
    image, mask, conditions = make_batch(1, size, points, "cpu")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image, mask, conditions)
    return counter.get_total_flops() / 1e9


def inference_step(model, size: int, points: int, device: str, precision: str, batch: int) -> Callable[[], None]:
    """G_P forward under inference_mode."""
    image, mask, conditions = make_batch(batch, size, points, device)

    def step() -> None:
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            model(image, mask, conditions)

    return step


def training_step(model, discriminator, loss, size: int, points: int, device: str, precision: str,
                  batch: int) -> Callable[[], None]:
    """One D update and one G update, as a trainer would run them."""
    image, mask, conditions = make_batch(batch, size, points, device)
    lmap = landmark_map(conditions.landmarks, size, model.config.landmark_radius)
    g_optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.9))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-5, betas=(0.0, 0.9))

    def step() -> None:
        model.train()
        discriminator.train()
        with autocast(device, precision):
            generated = model(image, mask, conditions)
            composited = composite(generated, image, mask)
            d_loss = lsgan_discriminator_loss(discriminator(image, lmap), discriminator(composited.detach(), lmap))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        with autocast(device, precision):
            terms = loss(generated, composited, image, mask, discriminator(composited, lmap))
        g_optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        g_optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--infer-batch", type=int, default=1)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--no-train", action="store_true", help="inference only")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    config = {"width": args.width, "blocks": args.blocks}
    torch.manual_seed(0)
    model = build_inpainter("lafin", config)
    points = model.config.points
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning: expected here
        vgg, vgg_source = load_vgg19(None)

    params = sum(p.numel() for p in model.parameters())
    print(f"G_P {config}: {params / 1e6:.2f} M parameters; torch {torch.__version__}; "
          f"{args.threads} CPU threads; load average {os.getloadavg()[0]:.1f}; VGG {vgg_source}")
    print(f"CPU capability: {cpu_capability()}"
          + (f"; GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    for size in args.sizes:
        print(f"  forward at {size}x{size}: {forward_gflop(model, size, points):.1f} GFLOP per image")
    print(f"{'device':6} {'size':>4} {'prec':4} {'mode':5} {'batch':>5} {'img/s median':>12} {'img/s best':>10}")
    for device in devices:
        model.to(device)
        discriminator = PatchDiscriminator(width=args.width).to(device)
        loss = InpaintLoss(vgg).to(device)
        for size in args.sizes:
            steps, batches = {}, {}
            for precision in args.precisions:
                steps[f"{precision} infer"] = inference_step(model, size, points, device, precision, args.infer_batch)
                batches[f"{precision} infer"] = args.infer_batch
                if not args.no_train:
                    steps[f"{precision} train"] = training_step(model, discriminator, loss, size, points, device,
                                                                 precision, args.train_batch)
                    batches[f"{precision} train"] = args.train_batch
            for name, (median, best) in time_round_robin(steps, device, args.warmup, args.iters).items():
                precision, mode = name.split()
                batch = batches[name]
                print(f"{device:6} {size:>4} {precision:4} {mode:5} {batch:>5} {batch / median:>12.2f} "
                      f"{batch / best:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
