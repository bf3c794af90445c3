"""The hostile probe's cases (tests/hostile_probe.py) under pytest: each expected failure is one clear line."""
from __future__ import annotations

import pytest
from hostile_probe import CASES, Case, run_case


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_probe_case(case: Case, work):
    passed, note = run_case(case, work)
    assert passed, note


def test_every_option_of_every_command_has_a_description():
    import click
    from lafin_aug.cli.main import main

    def options(command: click.Command, path: str):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from options(sub, f"{path} {name}")
        else:
            yield from ((path, p.opts[0]) for p in command.params if isinstance(p, click.Option) and not p.help)

    assert list(options(main, "lafin-aug")) == []
