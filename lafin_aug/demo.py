"""The end-to-end demo on the embedded synthetic faces: every stage of the pipeline, small enough for a CPU.

train inpainter -> train landmark predictor -> generate 2 epochs -> verify -> preview -> eval-inpaint
-> bench (none, classic, pairs:lafin). Sizes are chosen to finish in minutes on 2 CPU cores; the numbers
it prints show the pipeline works, not what a full-size run achieves.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from lafin_aug.bench import BenchConfig, detector_training, run_bench
from lafin_aug.config import Config
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors.trainer import DetectorTrainConfig, train_detector
from lafin_aug.evaluate import InpaintEvalConfig, evaluate_inpainting, markdown_table
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.inpainters import FAMILIES
from lafin_aug.runtime import cpu_capability, resolve_device, resolve_precision
from lafin_aug.shards import verify_shards
from lafin_aug.viz import preview_shards


@dataclass(frozen=True)
class DemoConfig(Config):
    """Sizes of the demo run; precision "auto" takes bf16 only where the CPU runs it natively."""

    faces: int = 256
    test_faces: int = 64
    size: int = 64
    inpainter_steps: int = 300
    predictor_steps: int = 200
    bench_steps: int = 150
    seeds: int = 1
    precision: str = "auto"


def run_demo(out: str | Path, config: DemoConfig = DemoConfig(), progress: bool = True) -> dict[str, Path]:
    """Run every stage into `out`; returns the paths a person should look at."""
    out = Path(out)
    started = time.perf_counter()
    train = DatasetSpec("synthetic", split="train", count=config.faces)
    test = DatasetSpec("synthetic", split="test", count=config.test_faces)
    precision = resolve_precision(config.precision, resolve_device("cpu"))
    print(f"CPU: {cpu_capability()}; precision {precision}", flush=True)

    def stage(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {name}", flush=True)

    stage("train inpainter")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the demo says below that it runs without VGG-19 losses
        lafin = FAMILIES.get("lafin")
        inpainter = lafin.train(lafin.train_config(
            data=train, size=config.size, steps=config.inpainter_steps, batch=4, width=16, blocks=3,
            disc_width=16, vgg_weights="off", device="cpu", precision=precision, lr_g=4e-4, lr_d=4e-5,
            sample_every=config.inpainter_steps, checkpoint_every=config.inpainter_steps),
            out / "inpainter", resume=(out / "inpainter" / "checkpoints" / "last.pt").exists(), progress=progress)
    stage("train landmark predictor")
    predictor = train_detector(DetectorTrainConfig(
        detector="lafin-gl", model={"width_mult": 0.5}, data=train, size=config.size, steps=config.predictor_steps,
        batch=16, device="cpu", precision=precision, sample_every=config.predictor_steps,
        checkpoint_every=config.predictor_steps),
        out / "predictor", resume=(out / "predictor" / "checkpoints" / "last.pt").exists(), progress=progress)
    stage("generate 2 augmented epochs")
    print(generate(GenerateConfig(data=train, inpainter=str(inpainter), epochs=2, shard_size=256, device="cpu",
                                  precision=precision, batch=16), out / "shards", progress=progress))
    stage("verify")
    report = verify_shards(out / "shards")
    print(f"verify: {report.shards} shards, {report.records} records, {'ok' if report.ok else report.failures}")
    stage("preview")
    preview_shards(out / "shards", out / "preview.png", n=12)
    stage("eval-inpaint")
    table = evaluate_inpainting(inpainter, InpaintEvalConfig(data=test, size=config.size, device="cpu",
                                                             precision=precision),
                                out / "eval", landmarks=predictor, progress=progress)
    print(markdown_table(table))
    stage("bench none / classic / pairs:lafin")
    run_bench(BenchConfig(training=detector_training(detector="lafin-gl", model={"width_mult": 0.5}, data=train,
                                                     steps=config.bench_steps, size=config.size, device="cpu",
                                                     precision=precision),
                          test=test, pairs=(("lafin", str(out / "shards")),), seeds=config.seeds),
              out / "bench", progress=progress)
    print((out / "bench" / "summary.md").read_text())
    stage("done")
    paths = {"inpainter checkpoint": inpainter, "inpainter samples": out / "inpainter" / "samples",
             "predictor checkpoint": predictor, "shards": out / "shards", "preview": out / "preview.png",
             "inpainting table": out / "eval" / "table.md", "inpainting examples": out / "eval" / "examples.png",
             "bench summary": out / "bench" / "summary.md", "bench CED": out / "bench" / "ced.png"}
    for name, path in paths.items():
        print(f"{name:>22}: {path}")
    print("The demo trains without VGG-19 perceptual/style losses (no ImageNet weights here) and at toy sizes:"
          " its numbers show the pipeline works, not what a full run achieves.")
    return paths
