"""`zoo push --hub hf` against the Hub test double: the exact files and card metadata that arrive,
and the token only ever in the Authorization header."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from tests.hub.hf_double import HubDouble, hf_hub_double  # noqa: F401  (fixture)
from tests.test_hub import run_dir  # noqa: F401  (fixture: a run folder with model/, recipe.yaml, results.json)
from zoo.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def test_push_run_to_the_hub(hf_hub_double: HubDouble, run_dir, capsys):  # noqa: F811
    hub = hf_hub_double
    assert main(["push", str(run_dir), "--repo", "me/tiny-zoo", "--hub", "hf"]) == 0
    files = hub.files("me/tiny-zoo")
    model_files = {p.relative_to(run_dir / "model").as_posix() for p in (run_dir / "model").rglob("*") if p.is_file()}
    assert set(files) == model_files | {"recipe.yaml", "results.json", "README.md", ".eval_results/smoke.yaml"}
    for rel in model_files:
        assert files[rel] == (run_dir / "model" / rel).read_bytes(), rel
    assert json.loads(files["results.json"]) == json.loads((run_dir / "results.json").read_text())
    card = ModelCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert data["library_name"] == "zoo" and data["model-index"][0]["name"] == "tiny-zoo"
    assert 'load("me/tiny-zoo")' in card.text
    assert "model.safetensors" in files and hub.requests_to(r"/info/lfs/objects/batch")  # weights went through LFS
    commit = hub.commit_shas("me/tiny-zoo")[-1]
    assert commit in capsys.readouterr().out
    # the token travelled in the Authorization header only: not in a body, a query, a stored file or the output
    assert hub.token_leaks() == []
    writes = hub.requests_to(r"/api/(repos/create|models/me/tiny-zoo/(preupload|commit))", "POST")
    assert writes and all(r["headers"].get("authorization") == f"Bearer {hub.token}" for r in writes)


def test_push_without_a_token_says_how_to_log_in(hf_hub_double: HubDouble, run_dir, monkeypatch, capsys):  # noqa: F811
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(constants.HF_TOKEN_PATH) + ".none")
    assert main(["push", str(run_dir), "--repo", "me/no-token", "--hub", "hf"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "hf auth login" in err and "me/no-token" not in hf_hub_double.repos


def test_submit_and_render_the_leaderboard_on_the_hub(hf_hub_double: HubDouble, run_dir, tmp_path, monkeypatch):  # noqa: F811
    from zoo.hub import LocalHub
    from zoo.hub import push_run

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    push_run(run_dir, "me/tiny-zoo", LocalHub())
    assert main(["submit", "me/tiny-zoo", "--hub", "hf", "--repo", "me/board"]) == 0
    files = hf_hub_double.files("me/board", repo_type="dataset")
    rev = LocalHub().main("me/tiny-zoo")
    assert set(files) == {f"requests/me__tiny-zoo_{rev}.json", f"results/me__tiny-zoo_{rev}.json"}
    assert json.loads(files[f"requests/me__tiny-zoo_{rev}.json"])["status"] == "FINISHED"
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--hub", "hf", "--repo", "me/board", "--html", str(out)]) == 0
    assert "me/tiny-zoo" in out.read_text() and hf_hub_double.token_leaks() == []
