"""`lafin-aug bench`: retrain a detector with and without the augmentation and report NME."""
from __future__ import annotations

from pathlib import Path

import click

from lafin_aug.bench import VARIANTS, BenchConfig, run_bench, summarise
from lafin_aug.data import READERS
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.detectors import DETECTORS
from lafin_aug.detectors.sources import MIXES

from .options import RegistryChoice, device_options, model_option, parse_options


def parse_extra_test(text: str) -> tuple[str, DatasetSpec]:
    """NAME=KIND:PATH[:SPLIT] -> (name, DatasetSpec)."""
    name, _, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    path, _, split = rest.partition(":")
    if not name or kind not in READERS or not path:
        raise click.BadParameter(f"{text!r}: expected NAME=KIND:PATH[:SPLIT] with KIND one of {', '.join(READERS.names())}")
    return name, DatasetSpec(kind, path, split or "train")


@click.command("bench")
@click.option("--detector", type=RegistryChoice(DETECTORS), default="lab", show_default=True,
              help="Registered detector (lafin-gl: LaFIn's G_L predictor).")
@model_option
@click.option("--dataset", "kind", type=RegistryChoice(READERS), default="wflw", show_default=True,
              help="Training set format.")
@click.option("--root", default=None, help="Training set root (wflw: $LAFIN_AUG_WFLW_ROOT or data/WFLW).")
@click.option("--split", default="train", show_default=True, help="Training split.")
@click.option("--count", default=512, show_default=True, help="Faces (synthetic only).")
@click.option("--test-dataset", type=RegistryChoice(READERS), default=None, help="Default: --dataset.")
@click.option("--test-root", default=None, help="Default: --root.")
@click.option("--test-split", default=None,
              help="Scored split (default: 'test' where the format has one; wflw and 300w score their standard subsets).")
@click.option("--extra-test", multiple=True, help="Another test set NAME=KIND:PATH[:SPLIT].")
@click.option("--aug", type=click.Path(exists=True, file_okay=False), default=None,
              help="Shard directory from `lafin-aug generate` on the training set (default: runs/DATASET-aug).")
@click.option("--variants", default=",".join(VARIANTS), show_default=True, help="Comma-separated variants to train.")
@click.option("--seeds", default=3, show_default=True, help="Training seeds per variant.")
@click.option("--steps", default=1000, show_default=True, help="Detector training steps per run.")
@click.option("--batch", default=16, show_default=True, help="Crops per step.")
@click.option("--size", default=64, show_default=True, help="Detector input side in pixels.")
@click.option("--lr", default=1e-3, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--train-fraction", default=1.0, show_default=True, help="Use a fixed random share of the training set.")
@click.option("--mix", type=click.Choice(MIXES), default="add", show_default=True,
              help="add: a full real batch plus as many augmented records (equal real exposure, the paper's); "
                   "replace: half of each batch augmented (equal compute).")
@device_options
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench", show_default=True,
              help="Bench directory (runs are cached there: rerun to resume).")
def bench_command(detector, model_options, kind, root, split, count, test_dataset, test_root, test_split, extra_test,
                  aug, variants, seeds, steps, batch, size, lr, train_fraction, mix, device, precision, out) -> None:
    """Train the detector per variant (none, classic, lafin) and seed; write results.csv, summary.md, ced.png."""
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        raise click.BadParameter(f"unknown variants {sorted(unknown)} (known: {', '.join(VARIANTS)})")
    if aug is None and Path(f"runs/{kind}-aug").is_dir():
        aug = f"runs/{kind}-aug"
    if aug is None and set(chosen) - {"none"}:
        raise click.UsageError(f"variants classic and lafin need --aug SHARDS_DIR: run `lafin-aug generate "
                               f"--dataset {kind} ... --out runs/{kind}-aug` on the training set first, or pass "
                               f"--variants none")
    test_kind = test_dataset or kind
    default_split = "test" if "test" in READERS.get(test_kind).splits else "train"
    config = BenchConfig(
        detector=detector, model=parse_options(model_options), train=DatasetSpec(kind, root, split, count),
        test=DatasetSpec(test_kind, test_root if test_root is not None else root, test_split or default_split, count),
        extra_tests=tuple(parse_extra_test(t) for t in extra_test), aug=aug, variants=chosen, seeds=seeds,
        steps=steps, batch=batch, size=size, lr=lr, train_fraction=train_fraction, mix=mix,
        device=device, precision=precision)
    results = run_bench(config, out)
    click.echo(summarise(results))
    click.echo(f"results: {out}/results.csv, {out}/summary.md, {out}/ced.png")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Directory for every stage's output.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 only on CPUs with native bf16 (AVX512-BF16/AMX), else fp32.")
def demo_command(out, precision) -> None:
    """Run the whole pipeline on the embedded synthetic faces in a few minutes on a CPU."""
    from lafin_aug.demo import DemoConfig, run_demo
    run_demo(out, DemoConfig(precision=precision))
