"""Results files: run_suite (deterministic), write/load (atomic, validated), compare tables, zoo eval/compare."""

from __future__ import annotations

import importlib
import json
import sys
import types

import pytest

from benchmarks.results import (
    compare_markdown,
    compare_rows,
    compare_table,
    load_results,
    load_samples,
    run_suite,
    samples_path,
    write_results,
)
from benchmarks.suites import SUITES
from benchmarks.task import TASKS, Task

FAKE_SUITE = "fake-suite"


class FakeTask(Task):
    """Three text-only prompts; the score counts the replies and measures them (pure)."""

    name = "fake-count"
    max_new_tokens = 4

    def __init__(self, world=None, media_root=None, name: str | None = None, n: int = 3):
        super().__init__(media_root=media_root)
        self.world, self.n = world, n
        if name:
            self.name = name

    def items(self, limit=None):
        rows = [
            {
                "id": f"{self.name}-{i}",
                "prompt": [{"role": "user", "content": [{"type": "text", "text": f"Describe scene {i}."}]}],
                "images": [],
                "reference": {"index": i},
            }
            for i in range(self.n)
        ]
        return rows[:limit]

    def score(self, items, replies):
        return {
            "n_replies": len(replies),
            "mean_chars": sum(len(r) for r in replies) / max(1, len(replies)),
            "by_kind": {"nonempty": sum(bool(r) for r in replies) / max(1, len(replies))},
            "note": "text metrics are kept but not tabled as numbers",
        }


@pytest.fixture
def fake_suite(monkeypatch):
    """A temporary suite of two fake tasks (cleaned up after); independent of the real task modules."""
    try:
        importlib.import_module("benchmarks.hallucination")
    except ImportError:  # the real tasks are written elsewhere; build_suite only needs the import to work
        monkeypatch.setitem(sys.modules, "benchmarks.hallucination", types.ModuleType("benchmarks.hallucination"))
    had = "fake-count" in TASKS
    TASKS.register("fake-count", FakeTask)
    monkeypatch.setitem(SUITES, FAKE_SUITE, [("fake-count", {}), ("fake-count", {"name": "fake-two", "n": 2})])
    yield FAKE_SUITE
    if not had:
        TASKS._entries.pop("fake-count", None)


def _results(model="m", revision=None, **tasks):
    return {"model": model, "revision": revision, "suite": "s", "created": "2025-01-01T00:00:00Z",
            "config": {"limit": None, "seed": 0}, "results": tasks}


def test_run_suite_format_and_determinism(fake_suite, tiny_policy, tiny_world):
    first, samples = run_suite(tiny_policy, fake_suite, "tiny", revision="abc", source={"world": tiny_world},
                               config={"note": "x"}, batch_size=2, progress=False, return_samples=True)
    assert set(first) == {"model", "revision", "suite", "created", "config", "results"}
    assert first["model"] == "tiny" and first["revision"] == "abc" and first["suite"] == fake_suite
    assert first["created"].endswith("Z") and "T" in first["created"]
    assert first["config"] == {"note": "x", "limit": None, "seed": 0, "batch_size": 2, "source": {"world": str(tiny_world)}}
    assert list(first["results"]) == ["fake-count", "fake-two"]
    assert first["results"]["fake-count"]["n_replies"] == 3 and first["results"]["fake-two"]["n_replies"] == 2
    assert [s["id"] for s in samples["fake-count"]] == ["fake-count-0", "fake-count-1", "fake-count-2"]
    json.dumps(first)  # JSON-ready (paths made strings)

    second = run_suite(tiny_policy, fake_suite, "tiny", source={"world": tiny_world}, batch_size=3, progress=False)
    assert second["results"] == first["results"]
    limited = run_suite(tiny_policy, fake_suite, "tiny", limit=1, progress=False)
    assert limited["results"]["fake-count"]["n_replies"] == 1 and limited["config"]["limit"] == 1


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
        ("chair", "chair_i", ["0.123", "0.050"]),
        ("chair", "n", ["10", "—"]),
        ("pope", "random/f1", ["0.900", "—"]),
        ("extra", "x", ["—", "1.000"]),
    ]
    md = compare_markdown([a, b])
    assert md.splitlines()[0] == "| task | metric | base | sft@0123456789ab |"
    assert "| pope | random/f1 | 0.900 | — |" in md
    table = compare_table([a, a])
    assert [c.header for c in table.columns] == ["task", "metric", "base (1)", "base (2)"]
    assert table.row_count == 3


def test_cli_compare_and_eval(tmp_path, capsys, fake_suite, tiny_policy, tiny_world):
    from zoo.cli import main

    a = write_results(_results("base", **{"t": {"acc": 0.25}}), None, tmp_path / "a.json")
    b = write_results(_results("sft", **{"t": {"acc": 0.75}}), None, tmp_path / "b.json")
    assert main(["compare", str(a), str(b), "--markdown"]) == 0
    assert "| t | acc | 0.250 | 0.750 |" in capsys.readouterr().out
    assert main(["compare", str(a), str(b)]) == 0
    assert "0.750" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err

    assert main(["eval", str(tmp_path / "no-model"), "--suite", fake_suite]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "local model folder" in err

    model = tmp_path / "model"
    tiny_policy.backbone.save_pretrained(model)
    out = tmp_path / "res" / "tiny.json"
    assert main(["eval", str(model), "--suite", fake_suite, "--world", str(tiny_world), "--limit", "2",
                 "--batch-size", "2", "--output", str(out)]) == 0
    results = load_results(out)
    assert results["model"] == str(model) and results["config"]["source"] == {"world": str(tiny_world)}
    assert results["results"]["fake-count"]["n_replies"] == 2
    assert len(load_samples(out)) == 4
