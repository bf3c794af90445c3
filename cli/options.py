"""Click options shared by several commands."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lafin_aug.data import READERS
from lafin_aug.data.training import DataSpec

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def compose(*decorators: Decorator) -> Decorator:
    """Apply several click decorators as one."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def dataset_options(default_kind: str | None = "synthetic") -> Decorator:
    """--dataset/--root/--split/--count: which faces a command reads."""
    return compose(
        click.option("--dataset", "kind", type=click.Choice(list(READERS)), default=default_kind,
                     required=default_kind is None, show_default=True, help="Dataset format."),
        click.option("--root", type=click.Path(), default=None,
                     help="Dataset root (the JSON file for coco; env default for wflw/300w)."),
        click.option("--split", default="train", show_default=True),
        click.option("--count", default=512, show_default=True, help="Number of faces (synthetic only)."),
    )


def data_spec(kind: str, root: str | None, split: str, count: int, seed: int = 0) -> DataSpec:
    """The DataSpec for parsed dataset options."""
    return DataSpec(kind, root, split, count, seed)


device_options = compose(
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
                 help="bf16 autocast runs the generator about 2x faster on CPU."),
)
