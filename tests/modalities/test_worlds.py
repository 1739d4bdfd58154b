"""The registered synthetic worlds (modalities.synthetic.WORLDS) and `ensure_world` by name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from modalities.synthetic import WORLDS, ShapesConfig, ensure_world, generate_world, get_world

TINY = {"seed": 0, "n_train": 8, "n_test": 4, "n_trigger": 4, "n_pairs": 4, "n_ranked": 2}


def test_shapes_is_registered_with_its_config_and_generator():
    world = get_world("shapes")
    assert WORLDS.names() == ["shapes"] and world.config is ShapesConfig and world.generate is generate_world


def test_ensure_world_by_name_writes_the_configured_world(tmp_path):
    path = ensure_world("shapes", tmp_path / "w", TINY)
    saved = json.loads((path / "world.json").read_text())
    assert {k: saved["config"][k] for k in TINY} == TINY
    assert dataclasses.asdict(ShapesConfig(**TINY)) == saved["config"]
    before = (path / "world.json").stat().st_mtime_ns
    assert ensure_world("shapes", path, TINY) == path and (path / "world.json").stat().st_mtime_ns == before


def test_unknown_world_lists_the_known_ones(tmp_path, capsys):
    from zoo.cli import main

    with pytest.raises(KeyError, match="unknown synthetic world 'smells'; known: shapes"):
        ensure_world("smells", tmp_path)
    assert main(["world", "smells", str(tmp_path / "w")]) == 2
    assert "known: shapes" in capsys.readouterr().err


def test_a_world_module_is_imported_on_first_use(tmp_path, monkeypatch):
    import sys

    import modalities.synthetic as synthetic

    (tmp_path / "dots.py").write_text(
        "from modalities.synthetic.worlds import WORLDS, World\n"
        "from modalities.synthetic.shapes import ShapesConfig, generate_world\n"
        "WORLDS.register('dots', World(ShapesConfig, generate_world))\n")
    (tmp_path / "smoke.py").write_text("import zoo_no_such_dependency\n")
    monkeypatch.setattr(synthetic, "__path__", [*synthetic.__path__, str(tmp_path)])
    monkeypatch.setattr(WORLDS, "_entries", dict(WORLDS._entries))  # 'dots' is registered for this test only
    try:
        assert get_world("dots").config is ShapesConfig
        # a world module that exists but lacks a dependency names the dependency, not "unknown world"
        with pytest.raises(ModuleNotFoundError, match="zoo_no_such_dependency"):
            get_world("smoke")
    finally:
        sys.modules.pop("modalities.synthetic.dots", None)
