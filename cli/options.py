"""Click options shared by several commands, and the one KEY=VALUE options parser."""
from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import click

from lafin_aug.data import READERS
from lafin_aug.data.spec import DatasetSpec
from lafin_aug.registry import Registry

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def compose(*decorators: Decorator) -> Decorator:
    """Apply several click decorators as one."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


class RegistryChoice(click.Choice):
    """A click.Choice over a registry's names, read when the command runs: plug-ins registered after
    the CLI was imported are accepted too."""

    def __init__(self, registry: Registry[Any]):
        self.registry = registry
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.registry.names())


#: ctx.meta key under which --origin waits for data_spec (commands do not take it as an argument)
ORIGIN_KEY = "lafin_aug.origin"


def _keep_origin(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    ctx.meta[ORIGIN_KEY] = value


def dataset_options(default_kind: str | None = "synthetic") -> Decorator:
    """--dataset/--root/--split/--count/--origin: which faces a command reads (--origin reaches data_spec)."""
    return compose(
        click.option("--dataset", "kind", type=RegistryChoice(READERS), default=default_kind,
                     required=default_kind is None, show_default=True, help="Dataset format."),
        click.option("--root", type=click.Path(), default=None,
                     help="Dataset root (the JSON file for coco; env default for wflw/300w)."),
        click.option("--split", default="train", show_default=True, help="Dataset split."),
        click.option("--count", default=512, show_default=True, help="Number of faces (synthetic only)."),
        click.option("--origin", type=click.IntRange(0, 1), default=None, expose_value=False, callback=_keep_origin,
                     help="Where the files count pixels from: 1 for iBUG/MATLAB (top-left pixel (1,1)), 0 for "
                          "pixel indices.  [default: the reader's; 300w 1, others 0]"),
    )


def data_spec(kind: str, root: str | None, split: str, count: int, seed: int = 0) -> DatasetSpec:
    """The DatasetSpec for parsed dataset options, with the running command's --origin (if it has one)."""
    ctx = click.get_current_context(silent=True)
    return DatasetSpec(kind, root, split, count, seed, ctx.meta.get(ORIGIN_KEY) if ctx is not None else None)


device_options = compose(
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="auto: CUDA when present, else CPU."),
    click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
                 help="auto: bf16 where the device computes it natively (bf16-capable GPUs, CPUs with "
                      "AVX512-BF16 or AMX), else fp32. bf16 on other CPUs is far slower than fp32."),
)


def _value(text: str) -> Any:
    """A KEY=VALUE value: Python literal (int, float, tuple, ...), true/false/none, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--model KEY=VALUE pairs as a dict (numbers, booleans, none and comma tuples parsed)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--model")
        options[key.strip()] = _value(value.strip())
    return options


model_option = click.option(
    "--model", "model_options", multiple=True, metavar="KEY=VALUE",
    help="Model option, repeatable (e.g. width=32, blocks=3); unknown keys are listed in the error.")
