"""Leaderboard: submissions to a dataset repo, and the static page opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import build_tiny_policy
from zoo.hub import LocalHub
from zoo.hub import push_run

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _run(root, name, trigger_chair):
    run = root / name
    build_tiny_policy().backbone.save_pretrained(run / "model")
    (run / "recipe.yaml").write_text(f"recipe_name: {name}\n")
    results = {"model": name, "suite": "demo", "created": "2026-11-27T00:00:00Z", "config": {},
               "results": {"chair_trigger": {"chair_i": trigger_chair, "recall": 0.9, "n": 300}}}
    (run / "results.json").write_text(json.dumps(results))
    return run


@pytest.fixture()
def board(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    hub = LocalHub()
    push_run(_run(tmp_path, "sft", 0.351), "zoo/shapes-vlm", hub)
    push_run(_run(tmp_path, "silent", None), "zoo/silent", hub)  # captions mostly empty: CHAIR not applicable
    push_run(_run(tmp_path, "dpo", 0.072), "zoo/shapes-vlm-dpo", hub)
    assert main(["submit", "shapes-vlm"]) == 0
    assert main(["submit", "zoo/silent"]) == 0
    assert main(["submit", "zoo/shapes-vlm-dpo"]) == 0
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--html", str(out)]) == 0
    capsys.readouterr()
    return hub, out


def test_submissions_land_in_the_dataset_repo(board):
    hub, _ = board
    rev = hub.resolve("zoo/leaderboard", kind="dataset")
    assert len(hub.revisions("zoo/leaderboard", kind="dataset")) == 3  # one revision per submission
    requests = sorted((rev.path / "requests").glob("*.json"))
    assert [p.name for p in requests] == [f"shapes-vlm_{hub.main('zoo/shapes-vlm')}.json",
                                          f"zoo__shapes-vlm-dpo_{hub.main('zoo/shapes-vlm-dpo')}.json",
                                          f"zoo__silent_{hub.main('zoo/silent')}.json"]
    request = json.loads(requests[0].read_text())
    assert {"model", "revision", "precision", "weight_type", "status", "submitted_time"} <= set(request)
    assert request["status"] == "FINISHED" and request["model_type"] == "sft"
    assert json.loads((rev.path / "results" / requests[0].name).read_text())["results"]["chair_trigger"]["chair_i"] == 0.351


def test_submitting_a_model_without_results_is_refused(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    run = _run(tmp_path, "bare", 0.2)
    (run / "results.json").unlink()
    push_run(run, "me/bare", LocalHub())
    assert main(["submit", "me/bare"]) == 2
    assert "has no results.json" in capsys.readouterr().err


@pytest.mark.skipif(BROWSER is None, reason="no Chromium / Chrome found (.ci/run installs Debian's chromium)")
def test_page_in_headless_chromium(board, tmp_path):
    _, page = board
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]

    def dom(url):
        out = subprocess.run([BROWSER, *flags, "--virtual-time-budget=3000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def models(doc):
        body = doc.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        return [re.sub("<[^>]+>", "", row.split("</td>", 1)[0]).strip() for row in body.split("<tr>")[1:]]

    url = page.resolve().as_uri()
    doc = dom(url)
    # ranked by the trigger CHAIR_i, lower is better; the model that names nothing is n/a and last, never best
    assert models(doc) == ["zoo/shapes-vlm-dpo", "shapes-vlm", "zoo/silent"]
    assert ">0.351<" in doc and ">0.072<" in doc and ">n/a<" in doc and 'data-col="chair_trigger/chair_i"' in doc
    assert "chair_trigger/chair_i ↓" in doc and "chair_trigger/recall ↑" in doc and 'data-col="chair_trigger/n"' not in doc
    assert 'id="plot"' in doc and "data:image/png;base64," in doc
    # the page's own script sorts (via the URL fragment); n/a stays last either way
    sorted_doc = dom(url + "#sort=chair_trigger/chair_i&dir=desc")
    assert models(sorted_doc) == ["shapes-vlm", "zoo/shapes-vlm-dpo", "zoo/silent"]
    assert 'data-sorted="chair_trigger/chair_i:desc"' in sorted_doc
    shot = tmp_path / "board.png"
    out = subprocess.run([BROWSER, *flags, "--window-size=1200,900", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.stat().st_size > 10_000  # a real rendering, not a blank page


def test_submit_takes_an_entry_name_or_its_older_alias(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    push_run(_run(tmp_path, "dpo", 0.072), "zoo/shapes-vlm-dpo", LocalHub())  # the entry's repo keeps its old name
    assert main(["submit", "shapes-vlm.dpo"]) == 0
    assert main(["submit", "shapes-vlm-dpo"]) == 0
    assert capsys.readouterr().out.count("submitted shapes-vlm") == 2
    from zoo.leaderboard import leaderboard_folder, read_submissions

    rows = read_submissions(leaderboard_folder(LocalHub()))
    assert {r["request"]["model"] for r in rows} == {"shapes-vlm.dpo"}  # one model, whichever name was typed


def test_rank_follows_each_metric_direction_and_puts_not_applicable_last():
    from zoo.leaderboard import rank

    rows = [{"model": "a", "t/chair_i": 0.3, "t/recall": 0.9}, {"model": "silent", "t/chair_i": None, "t/recall": 0.0},
            {"model": "b", "t/chair_i": 0.1, "t/recall": 0.8}]
    assert [r["model"] for r in rank(rows, "t/chair_i")] == ["b", "a", "silent"]
    assert [r["model"] for r in rank(rows, "t/recall")] == ["a", "b", "silent"]
    with pytest.raises(ValueError, match="no direction"):
        rank(rows, "t/yes_ratio")
