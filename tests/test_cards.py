"""Results → Hub metadata: model-index EvalResults / ModelCardData, and .eval_results/<suite>.yaml; the card of
a pushed run: lineage from recipe.yaml, backbone from config.json, metadata from flags and recipe fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData, parse_eval_result_entries
from huggingface_hub.repocard_data import model_index_to_eval_results
from omegaconf import OmegaConf

from zoo.cards import card_data, numeric_metrics, to_eval_result_entries, to_model_index, write_eval_results
from zoo.results import metric_info

RESULTS = {
    "model": "runs/sft/model",
    "revision": None,
    "suite": "hallucination",
    "created": "2025-01-02T03:04:05Z",
    "config": {"limit": 100, "seed": 0, "batch_size": 64, "source": {"world": "data/shapes-0"}},
    "results": {
        "chair": {"chair_i": 0.125, "chair_s": 0.25, "n_mentions": 40, "n": 8, "label": "not a number", "ok": True},
        "pope": {"random": {"accuracy": 0.8, "f1": 0.75, "yes_ratio": 0.5, "unparseable": 2},
                 "adversarial": {"accuracy": 0.6}},
        "chair_trigger": {"chair_i": None, "empty_rate": 0.9},
        "mmhal": {"score": 4.5, "hallucination_rate": 0.25, "n": 8},
    },
}
EXPECTED = {
    ("chair", "chair_i"): 0.125,
    ("chair", "chair_s"): 0.25,
    ("pope", "random/accuracy"): 0.8,
    ("pope", "random/f1"): 0.75,
    ("pope", "adversarial/accuracy"): 0.6,
    ("chair_trigger", "empty_rate"): 0.9,
    ("mmhal", "hallucination_rate"): 0.25,
}


def test_numeric_metrics_skip_text_bools_counts_and_undirected_rates():
    # n, n_mentions, unparseable (counts), MMHal's 0-6 score (not a rate), yes_ratio (no better direction)
    # and the not-applicable CHAIR stay out
    assert {(t, m): v for t, m, v in numeric_metrics(RESULTS)} == EXPECTED


def test_model_index_round_trips_through_a_model_card():
    evals = to_model_index(RESULTS, "sft")
    assert all(isinstance(e, EvalResult) and e.task_type == "image-text-to-text" for e in evals)
    assert {(e.task_name, e.metric_type): e.metric_value for e in evals} == EXPECTED
    assert {e.dataset_type for e in evals} == {"zoo/shapes"}
    # evaluated with --limit 100: the dataset's name and args say the run is partial
    assert {e.dataset_name for e in evals} == {"shapes-world (partial: 100 items per task)"}

    data = card_data(RESULTS, base_model="HuggingFaceTB/SmolVLM-256M-Instruct", license="apache-2.0")
    assert isinstance(data, ModelCardData)
    as_dict = data.to_dict()
    assert as_dict["base_model"] == "HuggingFaceTB/SmolVLM-256M-Instruct" and as_dict["license"] == "apache-2.0"
    index = as_dict["model-index"]
    assert index[0]["name"] == "runs/sft/model" and len(index[0]["results"]) == 4  # one result group per task
    groups = {r["dataset"]["config"]: r for r in index[0]["results"]}
    assert groups["pope"]["task"] == {"type": "image-text-to-text", "name": "pope"}
    assert groups["chair"]["dataset"]["args"] == {"limit": 100, "seed": 0, "partial": True}

    name, parsed = model_index_to_eval_results(index)
    assert name == "runs/sft/model" and {(e.task_name, e.metric_type): e.metric_value for e in parsed} == EXPECTED

    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n# sft\n")  # parsed offline, as the Hub would read it
    assert card.data.model_name == "runs/sft/model"
    assert {(e.task_name, e.metric_type): e.metric_value for e in card.data.eval_results} == EXPECTED

    named = card_data(RESULTS, model_name="zoo-sft-shapes")
    assert named.to_dict()["model-index"][0]["name"] == "zoo-sft-shapes"


def test_eval_results_yaml(tmp_path):
    entries = to_eval_result_entries(RESULTS)
    assert {e.task_id: e.value for e in entries} == {f"{t}/{m}": v for (t, m), v in EXPECTED.items()}
    assert {e.dataset_id for e in entries} == {"zoo/shapes"} and {e.date for e in entries} == {RESULTS["created"]}

    path = write_eval_results(RESULTS, tmp_path)
    assert path == tmp_path / ".eval_results" / "hallucination.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw[0] == {
        "dataset": {"id": "zoo/shapes", "task_id": "chair/chair_i"},
        "value": 0.125,
        "date": "2025-01-02T03:04:05Z",
        "notes": "zoo suite 'hallucination', limit 100, seed 0 (partial: 100 items per task)",
    }
    back = parse_eval_result_entries(raw)
    assert back == entries


# ---- the card of a pushed run: lineage, backbone, metadata, rates only, partial evaluations -------------

FULL_RESULTS = {  # a real `zoo eval` shape: rates, counts and a score per task, intervals, limit as recorded
    "model": "runs/dpo/model", "revision": "0123456789ab", "suite": "smoke", "created": "2025-01-02T03:04:05Z",
    "config": {"limit": 20, "seed": 0, "batch_size": 64, "source": {"world": "data/shapes-0"}, "n_boot": 10},
    "results": {
        "pope_adversarial": {"accuracy": 0.7, "precision": 0.65, "recall": 0.9, "f1": 0.75, "yes_ratio": 0.6,
                             "unparseable": 1, "n": 20},
        "chair": {"chair_i": 0.2, "chair_s": 0.4, "recall": 0.7, "empty_rate": 0.0, "n_mentions": 31, "n": 20},
        "mmhal": {"score": 4.2, "hallucination_rate": 0.3, "accuracy": 0.7, "n": 20},
    },
    "intervals": {"chair": {"chair_i": [0.1, 0.3]}},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.conftest import build_tiny_policy

    folder = tmp_path_factory.mktemp("base") / "model"
    build_tiny_policy().backbone.save_pretrained(folder)
    return folder


def _run(tmp_path: Path, model: Path, overrides: list[str], results: dict | None = None, name: str = "run") -> Path:
    """A run folder as `zoo train` leaves it: model/, the resolved recipe.yaml of ``overrides``, results.json."""
    import shutil

    from zoo.train.run import compose_config

    run = tmp_path / name
    shutil.copytree(model, run / "model")
    cfg = compose_config([*overrides, f"output_dir={run}"])
    (run / "recipe.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if results is not None:
        (run / "results.json").write_text(json.dumps(results))
    return run


def _card(hub, repo):
    from huggingface_hub import ModelCard

    return ModelCard((hub.resolve(repo).path / "README.md").read_text())


def _row(card, label: str) -> str:
    return next(line for line in card.text.splitlines() if line.startswith(f"| {label} |"))


def test_a_dpo_run_from_a_pretrained_base_names_its_base_and_revision(tmp_path, tiny_model):
    from zoo.hub import LocalHub, push_run

    hub = LocalHub(tmp_path / "hub")
    base_run = _run(tmp_path, tiny_model, ["recipe=sft"], name="sft")
    base_rev = push_run(base_run, "me/base", hub)

    # DPO from the base's hub revision folder (what `zoo build` passes as model.path)
    dpo = _run(tmp_path, tiny_model, ["recipe=dpo", "model=pretrained", f"model.path={hub.resolve('me/base').path}"],
               FULL_RESULTS, name="dpo")
    push_run(dpo, "me/dpo", hub)
    card = _card(hub, "me/dpo")
    assert card.data.base_model == "me/base"
    assert _row(card, "base model") == f"| base model | `me/base` at revision `{base_rev}`, local hub |"
    backbone = _row(card, "backbone")
    assert "zoo.models" not in backbone and "composed (zoo_composed)" in backbone
    assert "`vit_tiny_patch16_224`" in backbone and "LM `llama` (2 layers, d=32, vocab 300)" in backbone
    assert _row(card, "parameters").startswith("| parameters | 77.6K (77,6")

    # DPO from the base's run folder (make demo's model.path=runs/demo/model): the same bytes were pushed
    from_folder = _run(tmp_path, tiny_model, ["recipe=dpo", "model=pretrained", f"model.path={base_run / 'model'}"],
                       name="dpo2")
    push_run(from_folder, "me/dpo2", hub)
    card = _card(hub, "me/dpo2")
    assert card.data.base_model == "me/base" and f"at revision `{base_rev}`" in _row(card, "base model")

    # the SFT base itself: truly from scratch, so no base_model
    card = _card(hub, "me/base")
    assert card.data.base_model is None
    assert "trained from scratch (weights initialised by `zoo.models.composed.build_composed_policy`)" in \
        _row(card, "base model")


def test_a_base_in_no_hub_and_an_hf_base(tmp_path, tiny_model):
    from zoo.hub import LocalHub, folder_id, push_run

    hub = LocalHub(tmp_path / "hub")
    loose = tmp_path / "loose"
    import shutil

    shutil.copytree(tiny_model, loose)
    (loose / "extra.txt").write_text("not what was pushed")  # other bytes: in no hub
    run = _run(tmp_path, tiny_model, ["recipe=dpo", "model=pretrained", f"model.path={loose}"])
    push_run(run, "me/loose", hub)
    card = _card(hub, "me/loose")
    assert card.data.base_model is None  # a local folder is no hub id: the lineage is in the text only
    assert _row(card, "base model") == (f"| base model | the local folder `{loose}` (its files' revision id "
                                        f"`{folder_id(loose)}`), in no hub |")

    hf = _run(tmp_path, tiny_model, ["recipe=dpo", "model=hf", "model.path=Qwen/Qwen2-VL-2B-Instruct"], name="hf")
    push_run(hf, "me/hf", hub)
    card = _card(hub, "me/hf")
    assert card.data.base_model == "Qwen/Qwen2-VL-2B-Instruct"
    assert "[`Qwen/Qwen2-VL-2B-Instruct`](https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct)" in _row(card, "base model")


def test_card_metadata_from_recipe_fields_and_push_flags(tmp_path, tiny_model, monkeypatch, capsys):
    from huggingface_hub import ModelCard, metadata_load

    from zoo.cli import main
    from zoo.hub import LocalHub

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    hub = LocalHub()
    run = _run(tmp_path, tiny_model, ["recipe=sft", "card.license=mit", "card.datasets=[org/pairs,org/more]",
                                      "card.base_model=org/declared"], FULL_RESULTS)
    assert main(["push", str(run), "--repo", "me/recipe-fields"]) == 0
    meta = metadata_load(hub.resolve("me/recipe-fields").path / "README.md")
    assert (meta["license"], meta["datasets"], meta["base_model"]) == ("mit", ["org/pairs", "org/more"], "org/declared")
    card = _card(hub, "me/recipe-fields")
    assert "`org/declared` (declared at push; recipe.yaml records: none: trained from scratch" in _row(card, "base model")

    # flags override the recipe's fields; --dataset repeats
    assert main(["push", str(run), "--repo", "me/flags", "--license", "apache-2.0", "--base-model", "org/base",
                 "--dataset", "org/a", "--dataset", "org/b"]) == 0
    data = ModelCard((hub.resolve("me/flags").path / "README.md").read_text()).data
    assert (data.license, data.datasets, data.base_model) == ("apache-2.0", ["org/a", "org/b"], "org/base")
    assert {"zoo", "sft"} <= set(data.tags) and data.eval_results

    # nothing set: license, datasets and base_model are left out (a synthetic world is on no hub)
    plain = _run(tmp_path, tiny_model, ["recipe=sft"], name="plain")
    assert main(["push", str(plain), "--repo", "me/plain"]) == 0
    meta = metadata_load(hub.resolve("me/plain").path / "README.md")
    assert not {"license", "datasets", "base_model"} & set(meta) and meta["library_name"] == "zoo"

    capsys.readouterr()
    assert main(["push", str(run), "--repo", "me/bad", "--base-model", "runs/x/model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'runs/x/model' is not a hub repo id 'org/name'" in err
    assert not hub.exists("me/bad")


def test_model_index_holds_rates_only_and_a_limited_eval_is_partial(tmp_path, tiny_model):
    from huggingface_hub import ModelCard

    from zoo.cards import render_card

    run = _run(tmp_path, tiny_model, ["recipe=sft"], FULL_RESULTS)
    card = ModelCard(render_card(run, "me/rates"))
    index = card.data.to_dict()["model-index"][0]["results"]
    metrics = [(r["dataset"]["config"], m["type"]) for r in index for m in r["metrics"]]
    assert metrics and all(metric_info(name).kind == "rate" for _, name in metrics)
    names = {name.rsplit("/", 1)[-1] for _, name in metrics}
    assert not names & {"n", "n_mentions", "unparseable", "score", "yes_ratio"}
    assert ("mmhal", "hallucination_rate") in metrics and ("chair", "chair_i") in metrics
    # ... while the card's table (and results.json) keep the counts
    assert "| n_mentions | 31 |" in card.text

    # evaluated with --limit 20: marked partial beside the table and in model-index's dataset
    assert "**partial: 20 items per task**" in card.text
    assert {r["dataset"]["name"] for r in index} == {"shapes-world (partial: 20 items per task)"}
    assert all(r["dataset"]["args"] == {"limit": 20, "seed": 0, "partial": True} for r in index)

    full = json.loads(json.dumps(FULL_RESULTS))
    full["config"]["limit"] = None
    (run / "results.json").write_text(json.dumps(full))
    card = ModelCard(render_card(run, "me/rates"))
    assert "partial" not in card.text
    assert {r["dataset"]["name"] for r in card.data.to_dict()["model-index"][0]["results"]} == {"shapes-world"}
