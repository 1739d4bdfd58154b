"""The registered synthetic worlds: name → (config dataclass, generator).

A world module (``modalities/synthetic/<name>.py``) registers itself in `WORLDS`; `ensure_world`
generates a world by name, so the data modules, the CLI and the BDHS sources need not know which
module holds it. A world not yet registered is looked up as the module of its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.registry import Registry


@dataclass(frozen=True)
class World:
    config: type  # dataclass of the world's settings (seed, sizes, bias …)
    generate: Callable[..., Path]  # generate(out_dir, config) -> out_dir; reuses a folder of the same config


WORLDS: Registry[World] = Registry("synthetic world")


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


def ensure_world(name: str, path: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Generate the synthetic world ``name`` into ``path`` (a no-op when it is already there)."""
    world = get_world(name)
    return world.generate(path, world.config(**(config or {})))
