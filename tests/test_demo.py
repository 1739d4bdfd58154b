"""`zoo demo` end to end on a shrunk config: world → SFT → the demo suite → results.json."""

from __future__ import annotations

from tests.train.test_sft import tiny_overrides
from zoo.demo import run_demo
from zoo.results import load_results


def test_demo_runs_end_to_end(tmp_path, capsys):
    from zoo.hub import LocalHub

    overrides = [o for o in tiny_overrides(tmp_path, steps=2) if not o.startswith("output_dir=")]
    hub = LocalHub(tmp_path / "hub")
    results = run_demo(output_dir=str(tmp_path / "demo"), overrides=overrides, hub=hub)
    saved = load_results(tmp_path / "demo" / "results.json")
    assert saved["results"] == results["results"]
    assert set(saved["results"]) == {"chair", "chair_trigger", "pope_adversarial", "pope_trigger"}
    assert saved["results"]["chair_trigger"]["n"] == 4  # the shrunk world's trigger split
    assert set(saved["intervals"]["chair_trigger"]) >= {"recall", "empty_rate"}  # error bars on every rate
    assert (tmp_path / "demo" / "results.samples.jsonl").exists()
    out = capsys.readouterr().out
    assert "absent" in out and "control: SFT on the chosen" in out  # (rich may wrap the column header)
    # aligned, pushed, and loaded back by name from the local hub
    assert hub.exists("zoo/shapes-vlm") and hub.exists("zoo/shapes-vlm-dpo")
    assert "loaded shapes-vlm.dpo from the local-hub" in out
    aligned = load_results(tmp_path / "demo-dpo" / "results.json")
    assert results["aligned"] == aligned and aligned["model"] == "shapes-vlm.dpo"
    # the control: same pairs, steps and lr, only the chosen responses; its row sits beside DPO's in the card
    control = load_results(tmp_path / "demo-sft-chosen" / "results.json")
    assert results["control"] == control
    recipe = (tmp_path / "demo-sft-chosen" / "recipe.yaml").read_text()
    assert "recipe_name: sft_chosen" in recipe and "train_split: pairs" in recipe
    card = (hub.resolve("zoo/shapes-vlm-dpo").path / "README.md").read_text()
    assert "control: SFT on the chosen" in card and "shapes-vlm (SFT)" in card and "≈" in card
