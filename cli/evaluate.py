"""`lafin-aug eval-inpaint`."""
from __future__ import annotations

import json

import click

from lafin_aug.evaluate import InpaintEvalConfig, evaluate_inpainting, markdown_table

from .options import data_spec, dataset_options, device_options


@click.command("eval-inpaint")
@click.option("--inpainter", type=click.Path(exists=True), required=True,
              help="Inpainter checkpoint, exported generator or run directory (any family).")
@click.option("--landmarks", type=click.Path(exists=True), default=None,
              help="Landmark predictor checkpoint: also report its NME on masked faces per bucket.")
@dataset_options()
@click.option("--size", default=256, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the fixed evaluation masks.")
@click.option("--batch", default=8, show_default=True, help="Images per inpainter forward.")
@device_options
@click.option("--out", type=click.Path(), required=True, help="Directory for table.md/.csv, results.json, examples.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of the Markdown table.")
def eval_inpaint(inpainter, landmarks, kind, root, split, count, size, seed, batch, device, precision, out,
                 as_json) -> None:
    """PSNR/SSIM/L1 of the inpainter vs OpenCV Telea and Navier-Stokes per hole bucket (same masks for all)."""
    config = InpaintEvalConfig(data=data_spec(kind, root, split, count), size=size, seed=seed, batch=batch,
                               device=device, precision=precision)
    table = evaluate_inpainting(inpainter, config, out, landmarks=landmarks)
    click.echo(json.dumps(table.to_dict(orient="records")) if as_json else markdown_table(table))
