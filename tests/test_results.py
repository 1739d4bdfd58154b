"""The results format (zoo.results): write/load (atomic, validated), compare tables, `zoo compare`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.results import (
    REQUIRED_KEYS,
    compare_markdown,
    compare_rows,
    compare_table,
    load_results,
    load_samples,
    new_results,
    samples_path,
    write_results,
)


def _results(model="m", revision=None, **tasks):
    return {"model": model, "revision": revision, "suite": "s", "created": "2025-01-01T00:00:00Z",
            "config": {"limit": None, "seed": 0}, "results": tasks}


def test_new_results_is_json_ready():
    results = new_results("m", "s", {"t": {"acc": 0.5, "pair": (1, 2)}}, config={"source": {"world": Path("w")}})
    assert tuple(results) == REQUIRED_KEYS and results["revision"] is None
    assert results["created"].endswith("Z") and "T" in results["created"]
    assert results["config"] == {"source": {"world": "w"}} and results["results"] == {"t": {"acc": 0.5, "pair": [1, 2]}}
    json.dumps(results)


def test_write_and_load_results(tmp_path):
    results = _results(**{"t": {"acc": 0.5}})
    samples = {"t": [{"id": "a", "reply": "yes"}, {"id": "b", "reply": "no"}]}
    path = write_results(results, samples, tmp_path / "out" / "r.json")
    text = path.read_text()
    assert json.loads(text) == results and text == json.dumps(results, sort_keys=True, indent=2) + "\n"
    assert samples_path(path) == tmp_path / "out" / "r.samples.jsonl"
    assert load_samples(path) == [{"id": "a", "reply": "yes", "task": "t"}, {"id": "b", "reply": "no", "task": "t"}]
    assert load_results(path) == results
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json", "r.samples.jsonl"]  # no temp files left

    broken = dict(results)
    del broken["suite"]
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="missing required key 'suite'"):
        load_results(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="required key 'suite'"):
        write_results(broken, None, tmp_path / "x.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_results(tmp_path / "junk.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(tmp_path / "nope.json")


def test_compare_rows_table_and_markdown():
    a = _results("base", **{"chair": {"chair_i": 0.12345, "n": 10}, "pope": {"random": {"f1": 0.9}}})
    b = _results("sft", revision="0123456789abcdef", **{"chair": {"chair_i": 0.05}, "extra": {"x": 1.0}})
    labels, rows = compare_rows([a, b])
    assert labels == ["base", "sft@0123456789ab"]
    assert rows == [
        ("chair", "chair_i ↓", ["0.123", "0.050"]),  # the declared direction travels with the name
        ("chair", "n", ["10", "—"]),
        ("pope", "random/f1 ↑", ["0.900", "—"]),
        ("extra", "x", ["—", "1.000"]),
    ]
    md = compare_markdown([a, b])
    assert md.splitlines()[0] == "| task | metric | base | sft@0123456789ab |"
    assert "| pope | random/f1 ↑ | 0.900 | — |" in md
    table = compare_table([a, a])
    assert [c.header for c in table.columns] == ["task", "metric", "base (1)", "base (2)"]
    assert table.row_count == 3


def test_cli_compare(tmp_path, capsys):
    from zoo.cli import main

    a = write_results(_results("base", **{"t": {"acc": 0.25}}), None, tmp_path / "a.json")
    b = write_results(_results("sft", **{"t": {"acc": 0.75}}), None, tmp_path / "b.json")
    assert main(["compare", str(a), str(b), "--markdown"]) == 0
    assert "| t | acc | 0.250 | 0.750 |" in capsys.readouterr().out
    assert main(["compare", str(a), str(b)]) == 0
    assert "0.750" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_shows_intervals_and_marks_overlaps_with_the_first_column():
    control = _results("control", **{"chair_trigger": {"chair_i": 0.30, "recall": 0.70, "n": 300}})
    control["intervals"] = {"chair_trigger": {"chair_i": [0.26, 0.34], "recall": [0.66, 0.74]}}
    dpo = _results("dpo", **{"chair_trigger": {"chair_i": 0.10, "recall": 0.69, "n": 300}})
    dpo["intervals"] = {"chair_trigger": {"chair_i": [0.08, 0.12], "recall": [0.65, 0.73]}}
    _, rows = compare_rows([control, dpo])
    assert rows[0] == ("chair_trigger", "chair_i ↓", ["0.300 [0.260, 0.340]", "0.100 [0.080, 0.120]"])
    assert rows[1] == ("chair_trigger", "recall ↑", ["0.700 [0.660, 0.740]", "0.690 [0.650, 0.730] ≈"])
    assert rows[2] == ("chair_trigger", "n", ["300", "300"])  # counts: no interval


def test_metric_declarations():
    from zoo.results import is_rankable, metric_info

    assert metric_info("chair_trigger/chair_i").better == "lower" and metric_info("f1").better == "higher"
    assert metric_info("accuracy_colour").better == "higher"  # MMHal's per-kind accuracies
    assert metric_info("n_mentions").kind == "count" and not is_rankable("n_mentions")
    assert not is_rankable("yes_ratio") and is_rankable("pope_trigger/accuracy")
    assert metric_info("made_up") is None and not is_rankable("made_up")
