"""One small registry for everything built by name: dataset readers, detectors, inpainter families.

Each entry registers itself in its own module (timm-style), e.g.::

    DETECTORS = Registry("detector")            # in detectors/base.py

    @DETECTORS.register("mine")                 # or a helper such as register_detector
    class MyDetector(nn.Module): ...

Looking up an unknown name raises a ValueError that lists the registered names.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, filled by `register`; `what` names the kind of entry in error messages."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; a name can be taken once."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered ({self._entries[name]!r})")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> None:
        """Forget `name` (for plug-ins registered only for a while, e.g. in tests)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry registered under `name`; ValueError listing the known names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r} (registered: {', '.join(self.names())})") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
