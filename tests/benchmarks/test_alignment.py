"""benchmarks/alignment.py: the table of every recipe beside its controls, over seeds, with intervals."""

from __future__ import annotations

import json

import pytest

from benchmarks import alignment
from zoo.results import load_results


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny SFT base on a tiny world, trained in-process (the script trains its rows through `zoo train`)."""
    from tests.train.test_sft import tiny_overrides
    from zoo.train.run import compose_config, train

    tmp = tmp_path_factory.mktemp("alignment")
    cfg = compose_config(["recipe=sft", *tiny_overrides(tmp, steps=2)])
    train(cfg)
    world_overrides = [o for o in tiny_overrides(tmp) if o.startswith("data.world_config.")]
    return tmp, tmp / "run" / "model", world_overrides


def test_the_table_trains_each_row_through_zoo_and_reports_the_control(tiny_base):
    tmp, base, world = tiny_base
    out = tmp / "table"
    argv = ["--base", str(base), "--world", str(tmp / "data" / "shapes-0"), "--out", str(out),
            "--rows", "sft_base", "sft_chosen", "dpo", "--seeds", "0", "1", "--steps", "2",
            *world, "data.batch_size=4", "module.warmup_steps=1"]
    assert alignment.main(argv) == 0
    summary = json.loads((out / "alignment.json").read_text())
    assert list(summary["rows"]) == ["sft_base", "sft_chosen", "dpo"]
    assert summary["rows"]["sft_base"]["seeds"] == 1 and summary["rows"]["dpo"]["seeds"] == 2
    for seed in (0, 1):  # each row and seed is an ordinary run folder: recipe, model, results with intervals
        run = out / f"dpo-s{seed}"
        assert f"seed: {seed}" in (run / "recipe.yaml").read_text()
        assert "recipe_name: dpo" in (run / "recipe.yaml").read_text()
        assert load_results(run / "results.json")["intervals"]["chair_trigger"]["recall"] is not None
    cell = summary["rows"]["dpo"]["metrics"]["chair_trigger/recall"]
    values = [load_results(out / f"dpo-s{s}" / "results.json")["results"]["chair_trigger"]["recall"] for s in (0, 1)]
    assert cell["values"] == values and cell["mean"] == pytest.approx(sum(values) / 2)
    assert set(summary["vs_control"]) == {"sft_base", "dpo"}  # every other row against the control
    table = (out / "alignment.md").read_text()
    assert "| control: SFT on the chosen | 2 |" in table and "| DPO (+ SFT term) | 2 |" in table
    assert "chair_trigger chair_i ↓" in table and "Δ pope_trigger accuracy vs control" in table
    assert set(summary["vs_control"]["dpo"]) == {"chair_trigger/chair_i", "chair_trigger/recall", "pope_trigger/accuracy"}
    # runs with results are reused: a second call trains nothing and gives the same figures
    before = (out / "dpo-s0" / "results.json").stat().st_mtime_ns
    assert alignment.main(argv) == 0
    assert (out / "dpo-s0" / "results.json").stat().st_mtime_ns == before
    again = json.loads((out / "alignment.json").read_text())
    assert again["rows"] == summary["rows"] and again["vs_control"] == summary["vs_control"]
    # --eval-world scores the same trained rows on another world's images, beside the first results
    from modalities.synthetic import ensure_world

    settings = {o.split("=")[0].rsplit(".", 1)[1]: int(o.split("=")[1]) for o in world if o.split("=")[1].isdigit()}
    other = ensure_world("shapes", tmp / "other" / "shapes-7", {**settings, "seed": 7})
    model_stamp = (out / "dpo-s0" / "model" / "model.safetensors").stat().st_mtime_ns
    assert alignment.main([*argv[:6], "--eval-world", str(other), *argv[6:]]) == 0
    assert (out / "dpo-s0" / "model" / "model.safetensors").stat().st_mtime_ns == model_stamp  # not retrained
    assert (out / "dpo-s0" / "results.json").stat().st_mtime_ns == before  # the own-world results untouched
    held_out = load_results(out / "dpo-s0" / "results.shapes-7.json")
    answers = {json.loads(line)["answer"] for line in (other / "trigger.jsonl").read_text().splitlines()}
    samples = [json.loads(line) for line in (out / "dpo-s0" / "results.shapes-7.samples.jsonl").read_text().splitlines()]
    trigger = [s["reference"]["answer"] for s in samples if s["task"] == "chair_trigger"]
    assert trigger and set(trigger) <= answers  # scored against the other world's images
    other_summary = json.loads((out / "alignment.shapes-7.json").read_text())
    assert other_summary["eval_world"] == str(other) and (out / "alignment.shapes-7.md").exists()
    assert other_summary["rows"]["dpo"]["metrics"]["chair_trigger/recall"]["values"][0] == \
        held_out["results"]["chair_trigger"]["recall"]


def test_markdown_marks_a_change_whose_interval_includes_zero():
    def cell(mean):
        return {"values": [mean], "mean": mean, "sd": 0.0, "interval": [mean - 0.01, mean + 0.01]}

    rows = {name: {"label": alignment.ROWS[name].label, "seeds": 1,
                   "metrics": {f"{t}/{m}": cell(0.5) for t, m in alignment.COLUMNS}}
            for name in ("sft_chosen", "dpo", "bdhs")}
    key = "chair_trigger/chair_i"
    summary = {"rows": rows, "vs_control": {
        "dpo": {key: {"diff": -0.2, "interval": [-0.25, -0.15], "excludes_zero": True, "relative": -0.4}},
        "bdhs": {key: {"diff": -0.01, "interval": [-0.03, 0.01], "excludes_zero": False, "relative": -0.02}},
    }}
    lines = alignment.markdown(summary).splitlines()
    changes = lines[lines.index("") + 3:]
    assert changes[0] == "| control: SFT on the chosen | — | — | — |"  # the control itself
    assert changes[1] == "| DPO (+ SFT term) | -40 %, Δ -0.200 [-0.250, -0.150] | — | — |"
    assert changes[2].startswith("| offline BDHS | -2 %, Δ -0.010 [-0.030, +0.010] (includes 0) |")


def test_a_row_names_helper_models_that_are_made_once_with_their_commands(tmp_path, monkeypatch):
    """{refiner} in an LLF row's overrides: the helper (and the critiques it trains on) is made first, under
    OUT/helpers, with the commands a user runs; a second row naming it reuses it."""
    ran = []

    def fake_zoo(*args):
        ran.append(("zoo", *args))
        here = next(a.split("=", 1)[1] for a in args if a.startswith("output_dir="))
        (alignment.Path(here) / "model").mkdir(parents=True, exist_ok=True)
        (alignment.Path(here) / "model" / "config.json").write_text("{}")

    def fake_run(cmd, **kwargs):
        ran.append(tuple(cmd[1:]))
        out = alignment.Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "critiques.jsonl").write_text("")
        return alignment.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(alignment, "_zoo", fake_zoo)
    monkeypatch.setattr(alignment.subprocess, "run", fake_run)
    base, out, world = tmp_path / "base", tmp_path / "out", tmp_path / "world"
    filled = [alignment.fill(o, base, out, world) for o in alignment.ROWS["llf_trained_critic"].overrides]
    helpers = out / "helpers"
    assert filled == ["critic=prompted", f"module.pairs.critic.path={helpers / 'critic' / 'model'}",
                      f"module.pairs.refiner={helpers / 'refiner' / 'model'}"]
    assert ran[0] == ("-m", "zoo.align.critics", "triples", str(world), "--out", str(helpers / "critiques"))
    assert ran[1][:2] == ("zoo", "train") and "recipe=critic_sft" in ran[1]
    assert f"data.path={helpers / 'critiques'}" in ran[1] and f"model.path={base}" in ran[1]
    assert "recipe=refiner_sft" in ran[2] and len(ran) == 3  # the critiques were made once for both
    alignment.fill("{refiner}", base, out, world)
    assert len(ran) == 3  # made already: reused
    with pytest.raises(SystemExit, match="unknown placeholder"):
        alignment.fill("{nope}", base, out, world)
