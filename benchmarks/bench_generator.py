"""Speed of the LaFIn inpainter G_P: inference and full training steps, fp32 and bf16 autocast.

    .venv/bin/python benchmarks/bench_generator.py --sizes 128 256 --threads 2
    .venv/bin/python benchmarks/bench_generator.py --device cuda --infer-batch 1 16 64 \
        --variants eager channels_last compile

Prints, per device (CPU, and CUDA when present), size, variant and precision:
  infer  images/s of G_P forward at each batch of --infer-batch (torch.inference_mode)
  train  images/s of one training step at batch --train-batch: G forward, D on real and
         composite + LSGAN D loss + D backward/Adam step, the full generator objective
         (pixel, perceptual and style on random VGG-19 features, TV, LSGAN) + G backward/Adam step
plus G's parameter count and forward GFLOP per image (torch.utils.flop_counter, fp32). Each row
ends with its variant and the hardware that ran it (the GPU's name, or the CPU's vector ISA and
native bf16 support). Variants: `eager`; `channels_last` (model and inputs in NHWC memory
format); `compile` (G_P and D through torch.compile, --compile-backend); `channels_last+compile`.
The warm-up calls of a compiled variant include its compilation: their time is printed on a `#`
line as soon as they are done (so a run stopped while compiling still shows how far it got).
Times are the median over --iters runs after --warmup runs; "best" is the fastest run, which is
the steadier figure on a machine shared with other jobs (the load average is printed too). For
one size, all variants, precisions, modes and batches take turns run by run, so they see the
same background load. CUDA times are taken between torch.cuda.synchronize() calls.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from lafin_aug.inpainters import Conditions, build_inpainter, composite
from lafin_aug.losses import InpaintLoss, lsgan_discriminator_loss
from lafin_aug.models.conditioning import landmark_map
from lafin_aug.models.discriminator import PatchDiscriminator
from lafin_aug.models.vgg import load_vgg19
from lafin_aug.runtime import DEVICES, autocast, cpu_capability, resolve_device

VARIANT_PARTS = ("eager", "channels_last", "compile")


def hardware(device: torch.device) -> str:
    """What runs on `device`: the GPU's name, or the CPU's vector ISA and native bf16 support."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_capability()}"


def variant_parts(name: str) -> set[str]:
    """The parts of a variant name such as `channels_last+compile`; ValueError for an unknown part."""
    parts = set(name.split("+"))
    unknown = parts - set(VARIANT_PARTS)
    if unknown or ("eager" in parts and len(parts) > 1):
        raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANT_PARTS)} or parts joined by '+'")
    return parts


def make_batch(batch: int, size: int, points: int, device: torch.device,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
    """Random image in [0,1], a centred rectangular hole (a quarter of the image), random landmarks."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    landmarks = torch.rand(batch, points, 2, generator=generator) * (size - 1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return (image.to(device, memory_format=memory_format), mask.to(device, memory_format=memory_format),
            Conditions(landmarks.to(device)))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, iters: int,
                     warmed: Callable[[str, float], None] | None = None) -> dict[str, tuple[float, float]]:
    """(median, best) seconds per call of each step; the steps take turns, so all see the same load.

    `warmed(name, seconds)` hears how long each step's warm-up calls took, as soon as they are done.
    """
    for name, step in steps.items():
        synchronize(device)
        start = time.perf_counter()
        for _ in range(warmup):
            step()
        synchronize(device)
        if warmed is not None:
            warmed(name, time.perf_counter() - start)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(iters):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(runs), min(runs)) for name, runs in times.items()}


def forward_gflop(model: torch.nn.Module, size: int, points: int) -> float:
    """Forward GFLOP of one image (fp32, on the CPU)."""
    image, mask, conditions = make_batch(1, size, points, torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image, mask, conditions)
    return counter.get_total_flops() / 1e9


def inference_step(model: torch.nn.Module, size: int, points: int, device: torch.device, precision: str, batch: int,
                   channels_last: bool = False) -> Callable[[], None]:
    """G_P forward under inference_mode."""
    image, mask, conditions = make_batch(batch, size, points, device, channels_last)

    def step() -> None:
        model.eval()
        with torch.inference_mode(), autocast(device, precision):
            model(image, mask, conditions)

    return step


def training_step(model: torch.nn.Module, discriminator: torch.nn.Module, loss: InpaintLoss, size: int,
                  points: int, device: torch.device, precision: str, batch: int,
                  channels_last: bool = False) -> Callable[[], None]:
    """One D update and one G update, as a trainer would run them."""
    image, mask, conditions = make_batch(batch, size, points, device, channels_last)
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


def prepared(module: torch.nn.Module, device: torch.device, parts: set[str], backend: str) -> torch.nn.Module:
    """A copy of `module` on `device` in the variant's memory format, compiled when the variant says so."""
    memory_format = torch.channels_last if "channels_last" in parts else torch.contiguous_format
    module = copy.deepcopy(module).to(device, memory_format=memory_format)
    return torch.compile(module, backend=backend) if "compile" in parts else module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--device", "--devices", dest="devices", nargs="+", default=None, choices=DEVICES,
                        help="default: cpu, plus cuda when available")
    parser.add_argument("--variants", nargs="+", default=["eager"],
                        help="eager, channels_last, compile, or parts joined by '+' (channels_last+compile)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of compiled variants")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--infer-batch", type=int, nargs="+", default=[1])
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--no-train", action="store_true", help="inference only")
    args = parser.parse_args()
    try:
        variants = {name: variant_parts(name) for name in args.variants}
        devices = [resolve_device(name) for name in args.devices or (["cpu", "cuda"] if torch.cuda.is_available()
                                                                     else ["cpu"])]
    except ValueError as error:
        parser.error(str(error))

    torch.set_num_threads(args.threads)
    if any("compile" in parts for parts in variants.values()):
        torch._dynamo.config.cache_size_limit = 64  # one graph per size, precision and mode, never eager fallback
    config = {"width": args.width, "blocks": args.blocks}
    torch.manual_seed(0)
    model = build_inpainter("lafin", config)
    points = model.config.points
    discriminator = PatchDiscriminator(width=args.width)
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
    print(f"{'device':6} {'size':>4} {'prec':4} {'mode':5} {'batch':>5} {'img/s median':>12} {'img/s best':>10} "
          f"{'variant':21} hardware", flush=True)

    def warmed(name: str, seconds: float) -> None:
        if "compile" in variants[name.split()[0]]:
            print(f"# {name}: first {args.warmup} calls (compilation included) took {seconds:.1f} s", flush=True)

    for device in devices:
        loss = InpaintLoss(vgg).to(device)
        for size in args.sizes:
            steps = {}
            for variant, parts in variants.items():
                channels_last = "channels_last" in parts
                g_model = prepared(model, device, parts, args.compile_backend)
                d_model = prepared(discriminator, device, parts, args.compile_backend)
                for precision in args.precisions:
                    for batch in args.infer_batch:
                        steps[f"{variant} {size}px {precision} infer {batch}"] = inference_step(
                            g_model, size, points, device, precision, batch, channels_last)
                    if not args.no_train:
                        steps[f"{variant} {size}px {precision} train {args.train_batch}"] = training_step(
                            g_model, d_model, loss, size, points, device, precision, args.train_batch, channels_last)
            for name, (median, best) in time_round_robin(steps, device, args.warmup, args.iters, warmed).items():
                variant, _, precision, mode, count = name.split()
                batch = int(count)
                print(f"{device.type:6} {size:>4} {precision:4} {mode:5} {batch:>5} {batch / median:>12.2f} "
                      f"{batch / best:>10.2f} {variant:21} {hardware(device)}", flush=True)


if __name__ == "__main__":
    main()
