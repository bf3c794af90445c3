"""`lafin-aug train inpainter|landmarks`."""
from __future__ import annotations

import click

from .options import data_spec, dataset_options, device_options
from lafin_aug.data.masks import MaskConfig
from lafin_aug.train.detector import DetectorTrainConfig, train_detector
from lafin_aug.train.inpainter import InpainterTrainConfig, train_inpainter


@click.group()
def train() -> None:
    """Train the landmark-guided inpainter or the landmark predictor."""


@train.command()
@dataset_options()
@click.option("--size", default=256, show_default=True, help="Crop side in pixels.")
@click.option("--steps", default=1000, show_default=True)
@click.option("--batch", default=4, show_default=True)
@click.option("--width", default=64, show_default=True, help="Generator base channels (paper: 64).")
@click.option("--blocks", default=7, show_default=True, help="Dilated residual blocks (paper: 7).")
@click.option("--disc-width", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--vgg-weights", default=None,
              help="torchvision vgg19-*.pth for perceptual/style losses; 'random' or 'off' to say so explicitly.")
@click.option("--sample-every", default=250, show_default=True)
@click.option("--checkpoint-every", default=500, show_default=True)
@device_options
@click.option("--out", type=click.Path(), required=True, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def inpainter(kind, root, split, count, size, steps, batch, width, blocks, disc_width, seed, vgg_weights,
              sample_every, checkpoint_every, device, precision, out, resume) -> None:
    """Train G_P (with the PatchGAN discriminator) on crops of a dataset."""
    config = InpainterTrainConfig(
        data=data_spec(kind, root, split, count), size=size, steps=steps, batch=batch, seed=seed, width=width,
        blocks=blocks, disc_width=disc_width, device=device, precision=precision, vgg_weights=vgg_weights,
        sample_every=sample_every, checkpoint_every=checkpoint_every)
    last = train_inpainter(config, out, resume=resume)
    click.echo(f"checkpoint: {last}")


@train.command()
@dataset_options()
@click.option("--detector", default="builtin", show_default=True, help="Registered detector name (builtin, lab).")
@click.option("--size", default=128, show_default=True)
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--width-mult", default=None, type=float, help="builtin: MobileNetV2 width multiplier.")
@click.option("--hole-fraction", default=1.0, show_default=True,
              help="Share of faces shown with a masked hole (LaFIn trains G_L on masked faces).")
@click.option("--seed", default=0, show_default=True)
@click.option("--checkpoint-every", default=500, show_default=True)
@device_options
@click.option("--out", type=click.Path(), required=True)
@click.option("--resume", is_flag=True)
def landmarks(kind, root, split, count, detector, size, steps, batch, lr, width_mult, hole_fraction, seed,
              checkpoint_every, device, precision, out, resume) -> None:
    """Train a landmark detector (default: LaFIn's predictor G_L) on crops of a dataset."""
    model = {"width_mult": width_mult} if width_mult is not None else {}
    config = DetectorTrainConfig(
        detector=detector, model=model, data=data_spec(kind, root, split, count), size=size, steps=steps,
        batch=batch, seed=seed, lr=lr, hole_fraction=hole_fraction, masks=MaskConfig(), device=device,
        precision=precision, checkpoint_every=checkpoint_every)
    last = train_detector(config, out, resume=resume)
    click.echo(f"checkpoint: {last}")
