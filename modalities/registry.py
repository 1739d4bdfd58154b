"""One small registry used everywhere in zoo: modalities, encoders, objectives, tasks, zoo entries.

It lives in `modalities` because that package sits at the bottom of the dependency graph
(`modalities` knows nothing of `zoo`, and `zoo` imports it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of entries filled by a decorator: ``@REG.register("name")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, obj: T | None = None):
        """Register ``obj`` under ``name`` (or use as a decorator). Re-registering warns and replaces."""

        def add(o: T) -> T:
            key = name or getattr(o, "__name__", None)
            if not key:
                raise ValueError(f"{self.kind} registry: an entry needs a name")
            if key in self._entries and self._entries[key] is not o:
                warnings.warn(f"{self.kind} '{key}' is registered twice; the later one wins", stacklevel=3)
            self._entries[key] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return sorted(self._entries.items())

    def names(self) -> list[str]:
        return sorted(self._entries)


def build(registry: Registry[Callable[..., T]], name: str, **kwargs) -> T:
    """Look up a factory by name and call it."""
    return registry.get(name)(**kwargs)
