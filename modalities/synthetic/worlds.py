"""The registered synthetic worlds: name → (config dataclass, generator), and one rule for world folders.

A world module (``modalities/synthetic/<name>.py``) registers itself in `WORLDS`; `ensure_world`
generates a world by name, so the data modules, the CLI and the BDHS sources need not know which
module holds it. A world not yet registered is looked up as the module of its name.

A world folder is the source of truth for its own settings: its ``world.json`` records the config it was
made with. `resolve_world_config` reads that record; a setting asked for (any non-null field) that differs
from it is a `WorldMismatch` naming each difference, never a silent regeneration. Only a folder without a
world is generated (or one replaced on purpose: ``overwrite=True``, ``zoo world … --force``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.registry import Registry


@dataclass(frozen=True)
class World:
    config: type  # dataclass of the world's settings (seed, sizes, bias …)
    generate: Callable[..., Path]  # generate(out_dir, config) -> out_dir; reuses a folder of the same config
    version: str | None = None  # the world.json "version" this module writes (None: not checked)
    # Settings added after folders of this version were written, with the value that reproduces those folders
    # (so an older world.json that lacks the key reads as what it holds, not as today's default).
    added: Mapping[str, Any] = field(default_factory=dict)


WORLDS: Registry[World] = Registry("synthetic world")


class WorldMismatch(ValueError):
    """A world folder holds another world than the one asked for (settings or version)."""


def get_world(name: str) -> World:
    """The registered world ``name``; its module (``modalities.synthetic.<name>``) is imported on first use."""
    if name not in WORLDS:
        module = f"modalities.synthetic.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # the world exists but lacks a dependency: say that, not "unknown world"
                raise
            # no such module: WORLDS.get below names the known worlds
    return WORLDS.get(name)


def world_record(path: str | Path) -> dict[str, Any] | None:
    """The parsed ``world.json`` of a world folder, or None when the folder holds no world."""
    file = Path(path) / "world.json"
    if not file.exists():
        return None
    try:
        record = json.loads(file.read_text())
    except ValueError as e:
        raise WorldMismatch(f"{file} is not valid JSON ({e}); regenerate the world with "
                            f"`zoo world NAME {path} --force`") from e
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise WorldMismatch(f"{file} records no world config; regenerate it with `zoo world NAME {path} --force`")
    return record


def _requested(world: World, name: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The settings asked for: the non-null fields of ``config``; an unknown field is an error naming the known."""
    requested = {k: v for k, v in (config or {}).items() if v is not None}
    known = [f.name for f in dataclasses.fields(world.config)]
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise ValueError(f"unknown {name} world setting(s) {', '.join(unknown)}; settings: {', '.join(known)}")
    return requested


def resolve_world_config(name: str, path: str | Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting of the world at ``path``: as its ``world.json`` records them, or, for a folder with no
    world yet, the world's defaults updated with ``config`` (what `ensure_world` will generate).

    ``config``'s non-null fields are what is asked for (null: "as the folder has it"); one that differs
    from the record raises `WorldMismatch` listing every difference and the ways out.
    """
    world = get_world(name)
    requested = _requested(world, name, config)
    record = world_record(path)
    if record is None:
        return dataclasses.asdict(world.config(**requested))
    if world.version is not None and str(record.get("version")) != world.version:
        raise WorldMismatch(
            f"{path} holds version {record.get('version')} of the {name} world; this zoo reads version "
            f"{world.version}: regenerate it with `zoo world {name} {path} --force` (replaces the folder)")
    recorded = {**world.added, **record["config"]}
    differ = {k: (recorded.get(k), v) for k, v in requested.items() if recorded.get(k) != v}
    if differ:
        what = ", ".join(f"{k}={was!r} (asked {asked!r})" for k, (was, asked) in sorted(differ.items()))
        defaults = dataclasses.asdict(world.config())
        wanted = {**recorded, **requested}  # the folder's world with the asked changes
        sets = " ".join(f"--set {k}={v}" for k, v in wanted.items() if k in defaults and defaults[k] != v)
        raise WorldMismatch(
            f"the {name} world in {path} was made with {what}. Use it as it is (drop those settings: null means "
            f"'as the folder has it'), use another folder, or replace it: `zoo world {name} {path} --force {sets}`")
    return dict(recorded)


def ensure_world(name: str, path: str | Path, config: dict[str, Any] | None = None, *,
                 overwrite: bool = False) -> Path:
    """The world ``name`` in ``path``: generated when the folder holds none (or ``overwrite``), else checked
    against ``config`` (`resolve_world_config`) and used as it is — an existing world is never regenerated
    behind the caller's back."""
    world = get_world(name)
    if overwrite:
        settings = dataclasses.asdict(world.config(**_requested(world, name, config)))
    else:
        settings = resolve_world_config(name, path, config)
        if world_record(path) is not None:
            return Path(path)
    known = {f.name for f in dataclasses.fields(world.config)}
    return world.generate(path, world.config(**{k: v for k, v in settings.items() if k in known}))


def _convert(value: str, kind: Any, key: str) -> Any:
    """``value`` (command-line text) as the field's type: bool, int, float or str."""
    if kind is bool:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{key} must be true or false, not {value!r}")
    try:
        return kind(value) if kind in (int, float) else value
    except ValueError:
        raise ValueError(f"{key} must be {'an integer' if kind is int else 'a number'}, not {value!r}") from None


def parse_world_settings(name: str, assignments: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``zoo world --set``) as a config dict, each value read as its field's type."""
    world = get_world(name)
    hints = typing.get_type_hints(world.config)
    settings: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, not {assignment!r}")
        if key not in hints:
            raise ValueError(f"unknown {name} world setting {key!r}; settings: {', '.join(hints)}")
        settings[key] = _convert(value.strip(), hints[key], key)
    return settings
