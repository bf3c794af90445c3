"""`lafin-aug export-inpainter` and `convert-checkpoint`: model files for sharing and upgrading."""
from __future__ import annotations

import click

from lafin_aug.checkpoint import convert_checkpoint
from lafin_aug.inpainters import export_inpainter


@click.command("export-inpainter")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write (e.g. model.pt).")
def export_inpainter_command(source, out) -> None:
    """The generator of SOURCE (a checkpoint or run directory) alone: no discriminator, no optimiser state."""
    header = export_inpainter(source, out)
    click.echo(f"{out}: {header.family} inpainter, {header.size}px, {header.points} points, step {header.step}")


@click.command("convert-checkpoint")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write.")
def convert_checkpoint_command(source, out) -> None:
    """Rewrite a checkpoint of an earlier lafin-aug (format version 1) in the current format."""
    header = convert_checkpoint(source, out)
    click.echo(f"{out}: {header.format} version {header.version}, {header.family}, step {header.step}")
