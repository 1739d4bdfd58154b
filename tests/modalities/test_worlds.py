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


def test_a_world_folder_is_the_source_of_truth_for_its_settings(tmp_path):
    """The small-world trap: a folder made with other settings is read as it is (null settings) or refused
    with what differs — never regenerated behind the caller's back."""
    from modalities.synthetic import WorldMismatch, resolve_world_config

    path = ensure_world("shapes", tmp_path / "w", TINY)
    stamp = (path / "world.json").stat().st_mtime_ns
    nulls = {k: None for k in dataclasses.asdict(ShapesConfig())}
    assert resolve_world_config("shapes", path, {**nulls, "seed": 0}) == dataclasses.asdict(ShapesConfig(**TINY))
    assert ensure_world("shapes", path, {"n_train": 8}) == path  # asked what it holds: fine
    with pytest.raises(WorldMismatch, match=r"made with n_pairs=4 \(asked 4000\), .*n_train=8 \(asked 12000\)"):
        ensure_world("shapes", path, dataclasses.asdict(ShapesConfig()))  # the defaults, all asked for
    with pytest.raises(WorldMismatch, match=r"made with n_train=8 \(asked 12000\)\.") as e:
        ensure_world("shapes", path, {"n_train": 12000, "bias": 0.95})
    # the way out keeps the folder's other settings (12000 is n_train's default: no --set needed)
    assert str(e.value).endswith("--force --set n_pairs=4 --set n_ranked=2 --set n_test=4 --set n_trigger=4`")
    assert (path / "world.json").stat().st_mtime_ns == stamp  # untouched
    with pytest.raises(ValueError, match="unknown shapes world setting.*n_trains.*settings: seed"):
        resolve_world_config("shapes", path, {"n_trains": 3})
    ensure_world("shapes", path, {**TINY, "n_train": 6}, overwrite=True)
    assert json.loads((path / "world.json").read_text())["config"]["n_train"] == 6
    # a folder of another version of the world is refused too, with the command that replaces it
    record = json.loads((path / "world.json").read_text())
    (path / "world.json").write_text(json.dumps({**record, "version": "1"}))
    with pytest.raises(WorldMismatch, match="holds version 1 of the shapes world.*--force"):
        ensure_world("shapes", path)
    # a folder with no world yet: the defaults updated with what is asked (what will be generated)
    assert resolve_world_config("shapes", tmp_path / "new", {"bias": 0.5})["bias"] == 0.5


def test_a_folder_written_before_a_setting_existed_reads_as_what_it_holds(tmp_path):
    """describer_swap came after version-2 folders were written: a world.json without it holds swap 0 (those
    files are what swap 0 writes, byte for byte), whatever today's default is."""
    from modalities.synthetic import WorldMismatch, resolve_world_config

    path = ensure_world("shapes", tmp_path / "w", {**TINY, "describer_swap": 0.0})
    record = json.loads((path / "world.json").read_text())
    del record["config"]["describer_swap"]
    (path / "world.json").write_text(json.dumps(record))
    assert resolve_world_config("shapes", path)["describer_swap"] == 0.0
    assert ensure_world("shapes", path, {"describer_swap": 0.0}) == path
    with pytest.raises(WorldMismatch, match=r"describer_swap=0\.0 \(asked 1\.0\)"):
        ensure_world("shapes", path, {"describer_swap": 1.0})
    # the generator reuses that folder for the settings it holds instead of writing it again
    stamp = (path / "world.json").stat().st_mtime_ns
    generate_world(path, ShapesConfig(**TINY, describer_swap=0.0), progress=False)
    assert (path / "world.json").stat().st_mtime_ns == stamp


def test_world_settings_on_the_command_line_are_read_as_their_types(tmp_path, capsys):
    from modalities.synthetic import parse_world_settings
    from zoo.cli import main

    got = parse_world_settings("shapes", ["caption_order=position", "bias=0.9", "n_train=5", "seed=3"])
    assert got == {"caption_order": "position", "bias": 0.9, "n_train": 5, "seed": 3}
    assert isinstance(got["n_train"], int) and isinstance(got["bias"], float)
    for bad, message in [("n_train=x", "n_train must be an integer"), ("bias=high", "bias must be a number"),
                         ("colour=red", "unknown shapes world setting 'colour'"), ("n_train", "KEY=VALUE")]:
        with pytest.raises(ValueError, match=message):
            parse_world_settings("shapes", [bad])
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main(["world", "shapes", str(tmp_path / "w"), *sets, "--set", "caption_order=position"]) == 0
    assert main(["world", "shapes", str(tmp_path / "w"), "--set", "n_train=9"]) == 2
    assert "was made with n_train=8 (asked 9)" in capsys.readouterr().err
    assert main(["world", "shapes", str(tmp_path / "w"), *sets, "--set", "n_train=9", "--force"]) == 0
    saved = json.loads((tmp_path / "w" / "world.json").read_text())["config"]
    assert saved["n_train"] == 9 and saved["caption_order"] == "shape"  # --force: a new world of these settings
