"""`lafin-aug generate`, `verify` and `preview`: augmented shards."""
from __future__ import annotations

import json
import os
import sys

import click

from lafin_aug.data.masks import BUCKETS
from lafin_aug.generate import GenerateConfig, generate
from lafin_aug.shards import verify_shards
from lafin_aug.viz import preview_shards

from .options import data_spec, dataset_options, device_options


@click.command("generate")
@dataset_options(default_kind="synthetic")
@click.option("--inpainter", type=click.Path(exists=True), required=True,
              help="Inpainter checkpoint, exported generator or training run directory (any family).")
@click.option("--epochs", default=1, show_default=True, help="Augmented copies per face, each with new masks.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Shard directory.")
@click.option("--size", default=None, type=int, help="Crop side (default: the inpainter's training size).")
@click.option("--shard-size", default=1000, show_default=True, help="Records per shard.")
@click.option("--seed", default=0, show_default=True, help="Seed of the masks and landmark edits.")
@click.option("--workers", default=1, show_default=True, help="joblib worker processes (CPU).")
@click.option("--scheduler", default="", metavar="local:N|ADDRESS",
              help="Run the shard jobs on a Dask cluster: local:N starts N worker processes here, an address "
                   "(tcp://host:8786) uses a running scheduler whose workers share --out (needs lafin-aug[dask]).")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Torch threads per shard job (default: cores / --workers; 1 on a Dask cluster). Set it to "
                   "compare runs bit for bit.")
@click.option("--batch", default=8, show_default=True, help="Images per inpainter forward.")
@device_options
@click.option("--include-real/--no-include-real", default=True, show_default=True,
              help="Also store each real crop once (epoch -1).")
@click.option("--mask-buckets", default=",".join(BUCKETS), show_default=True,
              help=f"Comma-separated hole-ratio buckets ({', '.join(BUCKETS)}).")
@click.option("--edit", default=0.0, show_default=True,
              help="Probability of landmark-edit augmentation per record (edited labels, flagged).")
def generate_command(kind, root, split, count, inpainter, epochs, out, size, shard_size, seed, workers, scheduler,
                     threads, batch, device, precision, include_real, mask_buckets, edit) -> None:
    """Write augmented (I_aug, L_gt) pairs of a dataset as HDF5 shards (resumable: rerun to finish)."""
    config = GenerateConfig(
        data=data_spec(kind, root, split, count), inpainter=inpainter, epochs=epochs, size=size,
        shard_size=shard_size, seed=seed, workers=workers, scheduler=scheduler, threads=threads, batch=batch,
        device=device, precision=precision, include_real=include_real,
        mask_buckets=tuple(b.strip() for b in mask_buckets.split(",") if b.strip()), edit=edit)
    click.echo(str(generate(config, out)))


@click.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--allow-partial", is_flag=True,
              help="Accept a directory with fewer shards than its run planned (an interrupted generate).")
def verify_command(directory, as_json, allow_partial) -> None:
    """Check every shard against the manifest and the format; exit 1 naming the shard on any failure."""
    report = verify_shards(directory, allow_partial=allow_partial)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        for finding in report.failures:
            click.echo(f"FAIL {finding.file}: {finding.message}", err=True)
        for finding in report.warnings:
            click.echo(f"warn {finding.file}: {finding.message}", err=True)
        click.echo(f"{directory}: {report.shards} shards, {report.records} records: "
                   + ("ok" if report.ok else f"{len(report.failures)} failures"))
    if not report.ok:
        sys.exit(1)


@click.command("preview")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--n", default=16, show_default=True, help="Augmented records to show.")
@click.option("--seed", default=0, show_default=True, help="Seed of which records are shown.")
def preview_command(directory, out, n, seed) -> None:
    """A PNG grid of real crop / mask / augmented image with landmarks, for a person to judge."""
    preview_shards(directory, out, n=n, seed=seed)
    click.echo(os.path.abspath(out))
