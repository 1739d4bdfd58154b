"""The one registry mechanism: a named table of parts, filled by ``@REG.register("name")``.

Every table of the project is a `Registry`: modalities, synthetic worlds, objectives, references, pair
sources, data formats, benchmark tasks and the zoo's entries. An entry may have aliases (older names that
keep resolving); `names` lists each entry once, by its canonical name. This module is the bottom layer:
it imports nothing of the project, so every package can use it.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of entries: ``REG.register("name", obj, aliases=("old-name",))`` or, as a decorator,
    ``@REG.register("name")``; ``REG.get(name_or_alias)`` returns the entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # alias -> canonical name

    def register(self, name: str | None = None, obj: T | None = None, aliases: Iterable[str] = ()):
        """Register ``obj`` under ``name`` (default: its ``__name__``) and ``aliases``; without ``obj``, a
        decorator. Re-registering a name warns and replaces it; an alias that is taken is an error."""
        aliases = tuple(aliases)

        def add(o: T) -> T:
            key = name or getattr(o, "__name__", None)
            if not key:
                raise ValueError(f"{self.kind} registry: an entry needs a name")
            if key in self._aliases:
                raise ValueError(f"{self.kind} '{key}' is already an alias of '{self._aliases[key]}'")
            for i, alias in enumerate(aliases):
                if alias == key:
                    problem = "its own name"
                elif alias in aliases[:i]:
                    problem = "given twice"
                elif alias in self._entries:
                    problem = f"the name of another {self.kind}"
                elif self._aliases.get(alias, key) != key:
                    problem = f"already an alias of '{self._aliases[alias]}'"
                else:
                    continue
                raise ValueError(f"{self.kind} '{key}': alias '{alias}' is {problem}")
            if key in self._entries and self._entries[key] is not o:
                warnings.warn(f"{self.kind} '{key}' is registered twice; the later one wins", stacklevel=3)
            self._entries[key] = o
            self._aliases = {a: k for a, k in self._aliases.items() if k != key}  # a replaced entry's old aliases go
            self._aliases.update((alias, key) for alias in aliases)
            return o

        return add(obj) if obj is not None else add

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` (itself, or the entry an alias points to)."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = ", ".join(sorted(self._entries)) or "none"
        close = difflib.get_close_matches(name, [*self._entries, *self._aliases], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise KeyError(f"unknown {self.kind} '{name}'{hint}; known: {known}")

    def get(self, name: str) -> T:
        """The entry registered as ``name`` or with ``name`` among its aliases."""
        return self._entries[self.canonical(name)]

    def aliases(self, name: str) -> tuple[str, ...]:
        """The aliases of the entry ``name`` (a name or an alias), in registration order."""
        key = self.canonical(name)
        return tuple(a for a, k in self._aliases.items() if k == key)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def names(self) -> list[str]:
        """Canonical names, sorted (aliases are not listed)."""
        return sorted(self._entries)
