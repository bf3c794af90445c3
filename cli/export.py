"""`lafin-aug export`: shards or a dataset as COCO keypoints (mmpose) or 300-W .pts files."""
from __future__ import annotations

import click

from lafin_aug.data import READERS
from lafin_aug.export import BOXES, IMAGE_FORMATS, TARGETS, export_pairs

from .options import RegistryChoice, data_spec


@click.command("export")
@click.argument("source", required=False, type=click.Path(exists=True))
@click.option("--dataset", "kind", type=RegistryChoice(READERS), default=None,
              help="Export this dataset instead of a shard directory SOURCE.")
@click.option("--root", type=click.Path(), default=None, help="With --dataset: its root (the JSON file for coco).")
@click.option("--split", default=None, help="With --dataset: the split.  [default: train]")
@click.option("--count", type=int, default=None, help="With --dataset synthetic: number of faces.  [default: 512]")
@click.option("--to", type=click.Choice(TARGETS), required=True,
              help="coco: DIR/annotations.json + DIR/images/; pts: DIR/<name>.png + DIR/<name>.pts.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: new, empty, or a previous export of the same source.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS), default="png", show_default=True,
              help="Image file format (jpg is lossy; landmarks stay exact).")
@click.option("--include-real/--no-include-real", default=True, show_default=True,
              help="Shard sources: also export the real crops (epoch -1).")
@click.option("--box", type=click.Choice(BOXES), default="landmarks", show_default=True,
              help="coco: the bbox/center/scale of each face: the landmarks' box (mmpose's 300-W/WFLW "
                   "convention) or a face detector's (that box x1.2 about its centre).")
def export_command(source, kind, root, split, count, to, out, image_format, include_real, box) -> None:
    """Write shard records (SOURCE, a shard directory) or a dataset's faces (--dataset) as COCO keypoints or .pts."""
    if (source is None) == (kind is None):
        raise click.UsageError("give exactly one source: a shard directory SOURCE or --dataset KIND"
                               + (", not both" if source is not None else ""))
    if source is not None and (root, split, count) != (None, None, None):
        raise click.UsageError("--root, --split and --count go with --dataset, not with a shard directory SOURCE")
    if kind is not None:
        source = data_spec(kind, root, split or "train", 512 if count is None else count)
    click.echo(str(export_pairs(source, to, out, image_format=image_format, include_real=include_real, box=box)))
