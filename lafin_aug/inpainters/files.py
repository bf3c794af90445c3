"""Inpainter checkpoint files: load a generator with its header, export the generator alone.

Every consumer (generate, eval-inpaint, OnTheFlyAugment, export) reads inpainters through
`load_inpainter`, which checks the header (format, version, registered family) and names the
file in every error.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lafin_aug.checkpoint import (
    INPAINTER_FORMAT,
    CheckpointError,
    CheckpointHeader,
    last_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    state_of,
)
from lafin_aug.inpainters.family import FAMILIES, InpainterFamily


def family_of(header: CheckpointHeader, path: str | Path) -> InpainterFamily:
    """The registered family a header names; CheckpointError naming the file otherwise."""
    if header.family not in FAMILIES:
        raise CheckpointError(f"{path}: inpainter family {header.family!r} is not registered here "
                              f"(registered: {', '.join(FAMILIES.names())}); import the module that registers it")
    return FAMILIES.get(header.family)


def load_inpainter(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointHeader]:
    """(generator in eval mode on `device`, header) from an inpainter checkpoint, a run directory or an export."""
    path = last_checkpoint(path)
    header, checkpoint = read_checkpoint(path, INPAINTER_FORMAT)
    family = family_of(header, path)
    try:
        model = family.build(header.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the stored {family.name} config does not build a model ({exc})") from exc
    load_weights(model, state_of(checkpoint, "generator", path), path)
    return model.to(device).eval(), header


def export_inpainter(source: str | Path, out: str | Path) -> CheckpointHeader:
    """Write the generator of `source` (a checkpoint or run directory) and its header alone to `out`.

    No discriminator, optimiser or RNG state: the file is for sharing and for `generate`.
    """
    path = last_checkpoint(source)
    header, checkpoint = read_checkpoint(path, INPAINTER_FORMAT)
    family_of(header, path)
    save_checkpoint(out, {"header": header.to_dict(), "generator": state_of(checkpoint, "generator", path)})
    return header
