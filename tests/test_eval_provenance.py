"""`zoo eval` records what it evaluated: exactly the asked revision (its full id), a folder's content
hash; unknown revisions, suites and zoo names are clear errors."""

from __future__ import annotations

import pytest

from zoo.results import load_results, samples_path
from tests.conftest import build_tiny_policy
from zoo.cli import main
from zoo.hub import HubError, LocalHub, folder_id
from zoo.zoo_model import load


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two different tiny model folders."""
    root = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        build_tiny_policy(seed).backbone.save_pretrained(root / f"m{seed}")
    return root / "m0", root / "m1"


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    return LocalHub()


def _eval(model: str, out, world, *extra: str) -> int:
    return main(["eval", model, "--suite", "smoke", "--world", str(world), "--limit", "2", "--output", str(out),
                 *extra])


def test_eval_revision_evaluates_exactly_that_revision(hub, models, tiny_world, tmp_path):
    first, second = hub.push(models[0], "me/m"), hub.push(models[1], "me/m")
    assert hub.main("me/m") == second
    assert _eval("me/m", tmp_path / "old.json", tiny_world, "--revision", first[:6]) == 0
    assert load_results(tmp_path / "old.json")["revision"] == first  # the full id, not the prefix given
    assert _eval(str(models[0]), tmp_path / "m0.json", tiny_world) == 0
    assert _eval(str(models[1]), tmp_path / "m1.json", tiny_world) == 0
    old, m0, m1 = (samples_path(tmp_path / f"{n}.json").read_text() for n in ("old", "m0", "m1"))
    assert old == m0 and old != m1  # the first push's weights answered, not main's


def test_eval_of_a_revision_that_does_not_exist_fails(hub, models, tiny_world, tmp_path, capsys):
    hub.push(models[0], "me/m")
    assert _eval("me/m", tmp_path / "r.json", tiny_world, "--revision", "abcdef") == 2
    assert "no single revision matches 'abcdef'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_folder_eval_records_the_folders_content_hash(hub, models, tiny_world, tmp_path, capsys):
    assert _eval(str(models[0]), tmp_path / "f.json", tiny_world) == 0
    recorded = load_results(tmp_path / "f.json")["revision"]
    assert recorded == folder_id(models[0]) == hub.push(models[0], "me/m")  # the id a push of it gets
    assert _eval(str(models[0]), tmp_path / "g.json", tiny_world, "--revision", recorded) == 2
    assert "a local folder, which has no revisions" in capsys.readouterr().err


def test_unknown_suite_lists_the_suites(models, tiny_world, tmp_path, capsys):
    assert main(["eval", str(models[0]), "--suite", "nosuite", "--world", str(tiny_world),
                 "--output", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "unknown suite 'nosuite'; suites:" in err and "smoke" in err and "demo" in err


def test_unknown_zoo_name_lists_the_known_names(hub):
    with pytest.raises(HubError, match=r"unknown zoo name 'no-such-model'; known names: .*shapes-vlm\.dpo"):
        load("no-such-model", hub=hub)
