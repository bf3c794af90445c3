"""`lafin-aug eval-inpaint`."""
from __future__ import annotations

import json

import click

from lafin_aug.evaluate import InpaintEvalConfig, evaluate_inpainting, markdown_table

from .options import data_spec, dataset_options, device_options


@click.command("eval-inpaint")
@click.option("--inpainter", "inpainters", multiple=True, required=True, metavar="[NAME=]PATH",
              help="Inpainter checkpoint, exported generator or run directory (any family); repeat to compare "
                   "several side by side (column name: NAME, else the family).")
@click.option("--landmarks", type=click.Path(exists=True), default=None,
              help="Landmark predictor checkpoint: also report its NME on masked faces per bucket.")
@click.option("--fidelity", type=click.Path(exists=True), default=None,
              help="Detector trained on real faces only: its NME on every method's filled faces per bucket.")
@dataset_options()
@click.option("--size", default=256, show_default=True, help="Crop side in pixels.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fixed evaluation masks.")
@click.option("--batch", default=8, show_default=True, help="Images per inpainter forward.")
@device_options
@click.option("--out", type=click.Path(), required=True,
              help="Directory for table.md/.csv, results.json, examples.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of the Markdown table.")
def eval_inpaint(inpainters, landmarks, fidelity, kind, root, split, count, size, seed, batch, device, precision, out,
                 as_json) -> None:
    """PSNR/SSIM/L1 of inpainters vs OpenCV Telea and Navier-Stokes per hole bucket (same masks for all)."""
    config = InpaintEvalConfig(data=data_spec(kind, root, split, count), size=size, seed=seed, batch=batch,
                               device=device, precision=precision)
    named = [text.partition("=") for text in inpainters]
    if all(sep for _, sep, _ in named):
        chosen: dict | list = {name: path for name, _, path in named}
    elif any(sep for _, sep, _ in named):
        raise click.BadParameter("name every --inpainter (NAME=PATH) or none", param_hint="--inpainter")
    else:
        chosen = list(inpainters)
    table = evaluate_inpainting(chosen, config, out, landmarks=landmarks, fidelity=fidelity)
    click.echo(json.dumps(table.to_dict(orient="records")) if as_json else markdown_table(table))
