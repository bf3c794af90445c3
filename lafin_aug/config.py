"""Configs as frozen dataclasses that turn into plain data and back.

Every config (model, training, generation, benchmark) derives from `Config`: `to_dict()` is what
run directories, checkpoints and shard runs store, and `from_dict()` rebuilds the same config from
it, nested configs included. Missing keys take their defaults; unknown keys are an error that
lists the valid ones.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as nested plain data."""
    return dataclasses.asdict(config)


def _convert(kind: Any, value: Any) -> Any:
    """`value` (plain data) as an instance of the annotated type `kind` where that is a Config or a tuple."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if isinstance(kind, type) and issubclass(kind, Config) and isinstance(value, dict):
        return kind.from_dict(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value)) if args else tuple(value)
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config dataclass (subclasses are frozen dataclasses too)."""

    def to_dict(self) -> dict[str, Any]:
        """Nested plain data (the form stored in JSON files and checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of `to_dict`; missing keys take defaults, unknown keys raise a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown} (valid: {', '.join(sorted(known))})")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _convert(hints[name], value) for name, value in data.items()})

    def replace(self: C, **changes: Any) -> C:
        """A copy with `changes` applied (keys checked as in from_dict)."""
        return type(self).from_dict({**self.to_dict(), **changes})
