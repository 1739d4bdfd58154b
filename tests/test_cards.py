"""Results → Hub metadata: model-index EvalResults / ModelCardData, and .eval_results/<suite>.yaml."""

from __future__ import annotations

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData, parse_eval_result_entries
from huggingface_hub.repocard_data import model_index_to_eval_results

from zoo.cards import card_data, numeric_metrics, to_eval_result_entries, to_model_index, write_eval_results

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
    },
}
EXPECTED = {
    ("chair", "chair_i"): 0.125,
    ("chair", "chair_s"): 0.25,
    ("pope", "random/accuracy"): 0.8,
    ("pope", "random/f1"): 0.75,
    ("pope", "adversarial/accuracy"): 0.6,
    ("chair_trigger", "empty_rate"): 0.9,
}


def test_numeric_metrics_skip_text_bools_counts_and_undirected_rates():
    # n, n_mentions, unparseable (counts), yes_ratio (no better direction) and the not-applicable CHAIR stay out
    assert {(t, m): v for t, m, v in numeric_metrics(RESULTS)} == EXPECTED


def test_model_index_round_trips_through_a_model_card():
    evals = to_model_index(RESULTS, "sft")
    assert all(isinstance(e, EvalResult) and e.task_type == "image-text-to-text" for e in evals)
    assert {(e.task_name, e.metric_type): e.metric_value for e in evals} == EXPECTED
    assert {e.dataset_type for e in evals} == {"zoo/shapes"} and {e.dataset_name for e in evals} == {"shapes-world"}

    data = card_data(RESULTS, base_model="HuggingFaceTB/SmolVLM-256M-Instruct", license="apache-2.0")
    assert isinstance(data, ModelCardData)
    as_dict = data.to_dict()
    assert as_dict["base_model"] == "HuggingFaceTB/SmolVLM-256M-Instruct" and as_dict["license"] == "apache-2.0"
    index = as_dict["model-index"]
    assert index[0]["name"] == "runs/sft/model" and len(index[0]["results"]) == 3  # one result group per task
    groups = {r["dataset"]["config"]: r for r in index[0]["results"]}
    assert groups["pope"]["task"] == {"type": "image-text-to-text", "name": "pope"}
    assert groups["chair"]["dataset"]["args"] == {"limit": 100, "seed": 0}

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
        "notes": "zoo suite 'hallucination', limit 100, seed 0",
    }
    back = parse_eval_result_entries(raw)
    assert back == entries
