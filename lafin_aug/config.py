"""Dataclass configs as plain dicts, the form written into run directories, checkpoints and shard runs."""
from __future__ import annotations

import dataclasses
from typing import Any


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as nested plain data."""
    return dataclasses.asdict(config)
