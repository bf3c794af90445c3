"""`lafin-aug train inpainter|landmarks`."""
from __future__ import annotations

import click

from lafin_aug.data.masks import MaskConfig
from lafin_aug.detectors import DETECTORS
from lafin_aug.detectors.trainer import DetectorTrainConfig, train_detector
from lafin_aug.inpainters import FAMILIES

from .options import RegistryChoice, data_spec, dataset_options, device_options, model_option, parse_options

common_options = dict(
    steps=click.option("--steps", default=1000, show_default=True, help="Optimisation steps."),
    seed=click.option("--seed", default=0, show_default=True, help="Seed of weights, batches and masks."),
    out=click.option("--out", type=click.Path(), required=True, help="Run directory."),
    resume=click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
    checkpoint_every=click.option("--checkpoint-every", default=500, show_default=True, type=click.IntRange(0),
                                  help="Steps between kept checkpoints (last.pt is written every time; 0: "
                                       "last.pt only)."),
    sample_every=click.option("--sample-every", default=250, show_default=True, type=click.IntRange(0),
                              help="Steps between sample pictures (0: none)."),
)


@click.group()
def train() -> None:
    """Train an inpainter (of any registered family) or a landmark detector."""


@train.command()
@click.option("--family", type=RegistryChoice(FAMILIES), default="lafin", show_default=True,
              help="Inpainter family.")
@dataset_options()
@click.option("--size", default=256, show_default=True, help="Crop side in pixels.")
@common_options["steps"]
@click.option("--batch", default=None, type=int, help="Crops per step (default: the family's; lafin 4, mdr 8).")
@common_options["seed"]
@model_option
@common_options["sample_every"]
@common_options["checkpoint_every"]
@device_options
@common_options["out"]
@common_options["resume"]
def inpainter(family, kind, root, split, count, size, steps, batch, seed, model_options, sample_every,
              checkpoint_every, device, precision, out, resume) -> None:
    """Train an inpainter family on crops of a dataset.

    Family options go through --model KEY=VALUE: for lafin e.g. width=32 blocks=7 disc_width=64
    vgg_weights=off|random|PATH lr_g=1e-4 (all fields of its training config).
    """
    chosen = FAMILIES.get(family)
    try:
        config = chosen.train_config.from_dict({
            "data": data_spec(kind, root, split, count).to_dict(), "size": size, "steps": steps,
            **({"batch": batch} if batch is not None else {}), "seed": seed, "device": device,
            "precision": precision, "sample_every": sample_every,
            "checkpoint_every": checkpoint_every, **parse_options(model_options)})
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from exc
    last = chosen.train(config, out, resume=resume)
    click.echo(f"checkpoint: {last}")


@train.command()
@dataset_options()
@click.option("--detector", type=RegistryChoice(DETECTORS), default="lafin-gl", show_default=True,
              help="Registered detector (lafin-gl: LaFIn's G_L predictor).")
@model_option
@click.option("--size", default=128, show_default=True, help="Crop side in pixels.")
@common_options["steps"]
@click.option("--batch", default=16, show_default=True, help="Crops per step.")
@click.option("--lr", default=1e-3, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--hole-fraction", default=1.0, show_default=True,
              help="Share of faces shown with a masked hole (LaFIn trains G_L on masked faces).")
@common_options["seed"]
@common_options["checkpoint_every"]
@device_options
@common_options["out"]
@common_options["resume"]
def landmarks(kind, root, split, count, detector, model_options, size, steps, batch, lr, hole_fraction, seed,
              checkpoint_every, device, precision, out, resume) -> None:
    """Train a landmark detector (default: LaFIn's predictor G_L) on crops of a dataset."""
    config = DetectorTrainConfig(
        detector=detector, model=parse_options(model_options), data=data_spec(kind, root, split, count),
        size=size, steps=steps, batch=batch, seed=seed, lr=lr, hole_fraction=hole_fraction, masks=MaskConfig(),
        device=device, precision=precision, checkpoint_every=checkpoint_every)
    last = train_detector(config, out, resume=resume)
    click.echo(f"checkpoint: {last}")
