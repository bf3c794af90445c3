"""`lafin-aug bench`: retrain a detector with and without the augmentation and report NME."""
from __future__ import annotations

from pathlib import Path

import click

from lafin_aug.bench import VARIANTS, BenchConfig, detector_training, resolve_variants, run_bench
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


def parse_aug(text: str) -> tuple[str, str]:
    """DIR or NAME=DIR -> (name, directory); name "" for DIR (an existing directory is never split at '=')."""
    name, directory = ("", text) if Path(text).is_dir() or "=" not in text else text.split("=", 1)
    if not Path(directory).is_dir():
        raise click.BadParameter(f"{directory!r}: no such shard directory", param_hint="--aug")
    return name, directory


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
@click.option("--aug", multiple=True,
              help="[NAME=]DIR: shard directory from `lafin-aug generate` on the training set, variant pairs:NAME "
                   "(pairs unnamed); repeat, named, for several (default: runs/DATASET-aug).")
@click.option("--variants", default=",".join(VARIANTS), show_default=True,
              help="Comma-separated: none, classic (Telea on the first --aug set's masks), pairs (every --aug set) "
                   "or pairs:NAME; lafin is the old name of pairs.")
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
    """Train the detector per variant (none, classic, pairs) and seed; write results.csv, per_face.csv,
    paired.csv, summary.md, ced.png."""
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    if not aug and Path(f"runs/{kind}-aug").is_dir():
        aug = (f"runs/{kind}-aug",)
    if not aug and set(chosen) - {"none"}:
        raise click.UsageError(f"variants other than none need --aug SHARDS_DIR: run `lafin-aug generate "
                               f"--dataset {kind} ... --out runs/{kind}-aug` on the training set first, or pass "
                               f"--variants none")
    pairs = tuple(parse_aug(a) for a in aug)
    try:
        resolve_variants(chosen, pairs)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--variants/--aug") from None
    test_kind = test_dataset or kind
    default_split = "test" if "test" in READERS.get(test_kind).splits else "train"
    config = BenchConfig(
        training=detector_training(detector=detector, model=parse_options(model_options),
                                   data=DatasetSpec(kind, root, split, count), steps=steps, batch=batch, size=size,
                                   lr=lr, device=device, precision=precision),
        test=DatasetSpec(test_kind, test_root if test_root is not None else root, test_split or default_split, count),
        extra_tests=tuple(parse_extra_test(t) for t in extra_test), pairs=pairs, variants=chosen, seeds=seeds,
        train_fraction=train_fraction, mix=mix)
    run_bench(config, out)
    click.echo((Path(out) / "summary.md").read_text())
    click.echo(f"results: {out}/results.csv, {out}/per_face.csv, {out}/paired.csv, {out}/summary.md, {out}/ced.png")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Directory for every stage's output.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 only on CPUs with native bf16 (AVX512-BF16/AMX), else fp32.")
def demo_command(out, precision) -> None:
    """Run the whole pipeline on the embedded synthetic faces in a few minutes on a CPU."""
    from lafin_aug.demo import DemoConfig, run_demo
    run_demo(out, DemoConfig(precision=precision))
