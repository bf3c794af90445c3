"""`lafin-aug` command group."""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from tqdm import tqdm

from lafin_aug.data.spec import open_reader

from .bench import bench_command, demo_command
from .evaluate import eval_inpaint
from .export import export_command
from .label import label_command
from .models import convert_checkpoint_command, export_inpainter_command
from .options import data_spec, dataset_options
from .shards import generate_command, preview_command, verify_command
from .train import train

#: what a user can cause and fix (bad files, bad options): one line, no traceback
USER_ERRORS = (ValueError, OSError)


@contextmanager
def progress_bars_off() -> Iterator[None]:
    """Every tqdm bar in this process disabled until the block ends. The library passes
    ``disable=not progress`` explicitly, which beats tqdm's own non-terminal detection and its
    TQDM_DISABLE variable, so the disabling is forced here for the command's duration."""
    original = vars(tqdm)["__init__"]
    init = tqdm.__init__

    def quiet(self: tqdm, *args: object, **kwargs: object) -> None:
        init(self, *args, **{**kwargs, "disable": True})

    tqdm.__init__ = quiet
    try:
        yield
    finally:
        tqdm.__init__ = original


class Commands(click.Group):
    """The command group: expected failures print `Error: ...` (the message names the file) and exit 1;
    `--debug` (or `-v`) shows the traceback instead; Ctrl-C exits 130 with where to continue.
    Progress bars show only when stderr is a terminal (in logs they would be carriage-return noise)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            if sys.stderr.isatty():
                return super().invoke(ctx)
            with progress_bars_off():
                return super().invoke(ctx)
        except USER_ERRORS as exc:
            if ctx.params.get("debug") or ctx.params.get("verbose"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as exc:  # Ctrl-C; a trainer says where it stopped and how to continue
            click.echo(str(exc) or "interrupted", err=True)
            ctx.exit(130)


@click.group(cls=Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log every skipped record and more.")
@click.option("--debug", is_flag=True, help="Show the Python traceback of a failure.")
def main(verbose: bool, debug: bool) -> None:  # noqa: ARG001 - debug is read by Commands
    """Landmark-guided face inpainting as augmentation for facial landmark detectors."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@dataset_options(default_kind=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(kind: str, root: str | None, split: str, count: int, as_json: bool) -> None:
    """Count faces, points per face, skipped records and image sizes of a dataset."""
    summary = open_reader(data_spec(kind, root, split, count)).describe()
    if "warning" in summary:
        click.echo(f"Warning: {summary['warning']}", err=True)
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        click.echo(f"{key:>18}: {value}")


main.add_command(train)
main.add_command(eval_inpaint)
main.add_command(export_command)
main.add_command(label_command)
for command in (generate_command, verify_command, preview_command, bench_command, demo_command,
                export_inpainter_command, convert_checkpoint_command):
    main.add_command(command)

if __name__ == "__main__":
    main()
