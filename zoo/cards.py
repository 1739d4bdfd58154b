"""Model cards and the Hub's results metadata: the card ``model-index`` and ``.eval_results/*.yaml``.

`render_card` writes the README.md of a pushed run: ``model_cards/<template>.md.j2`` rendered with
huggingface_hub's `ModelCard.from_template`, its YAML header holding `ModelCardData` with the results'
``model-index``. Two Hub formats come from one results dict (see `zoo.results`):

* ``model-index`` in the card's YAML header (`EvalResult` / `ModelCardData`): one result group per
  task (the task name is the dataset *config*, so the groups stay apart), one metric per numeric
  leaf of the task's metrics (nested keys joined with ``/``).
* ``.eval_results/<suite>.yaml`` (`EvalResultEntry`): one entry per task metric; the entry's
  ``task_id`` is ``<task>/<metric>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, EvalResultEntry, ModelCardData, eval_result_entries_to_yaml

from zoo.results import atomic_write, compare_markdown, flatten_metrics, is_number, is_rankable, load_results

TASK_TYPE = "image-text-to-text"


def numeric_metrics(results: dict) -> list[tuple[str, str, float | int]]:
    """``(task, metric, value)`` for every numeric rate or score with a direction, in file order. Counts
    (``n``, ``n_mentions``, ``unparseable``), undirected rates (``yes_ratio``) and not-applicable (None)
    metrics stay in the results file but out of ``model-index`` and ``.eval_results``."""
    return [
        (task, metric, value)
        for task, metrics in results["results"].items()
        for metric, value in flatten_metrics(metrics).items()
        if is_number(value) and is_rankable(metric)
    ]


def _dataset_args(results: dict) -> dict[str, Any] | None:
    config = results.get("config") or {}
    args = {k: config[k] for k in ("limit", "seed") if config.get(k) is not None}
    return args or None


def to_model_index(
    results: dict,
    model_name: str | None = None,
    dataset_name: str = "shapes-world",
    dataset_type: str = "zoo/shapes",
    dataset_split: str | None = None,
) -> list[EvalResult]:
    """One `EvalResult` per numeric task metric (task type ``image-text-to-text``).

    ``model_name`` is only checked here (it names the ``model-index`` entry in `card_data`).
    """
    del model_name  # the EvalResults themselves carry no model name
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=task,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_config=task,
            dataset_split=dataset_split,
            dataset_args=_dataset_args(results),
            metric_type=metric,
            metric_name=f"{task} {metric}",
            metric_value=value,
        )
        for task, metric, value in numeric_metrics(results)
    ]


def card_data(
    results: dict,
    base_model: str | list[str] | None = None,
    model_name: str | None = None,
    dataset_name: str = "shapes-world",
    dataset_type: str = "zoo/shapes",
    tags: list[str] | None = None,
    **kwargs: Any,
) -> ModelCardData:
    """`ModelCardData` whose ``to_dict()`` holds a ``model-index`` with the results' metrics.

    ``model_name`` defaults to the results' ``model`` (a hub id, a zoo name or a local path, as recorded);
    further keyword arguments (license, datasets, …) go to `ModelCardData`.
    """
    name = model_name or str(results["model"])
    return ModelCardData(
        base_model=base_model,
        model_name=name,
        eval_results=to_model_index(results, name, dataset_name=dataset_name, dataset_type=dataset_type) or None,
        pipeline_tag=kwargs.pop("pipeline_tag", TASK_TYPE),
        tags=tags if tags is not None else ["zoo", f"suite:{results['suite']}"],
        **kwargs,
    )


def to_eval_result_entries(results: dict, dataset_id: str = "zoo/shapes", notes: str | None = None) -> list[EvalResultEntry]:
    """One `EvalResultEntry` per numeric task metric: ``task_id`` ``<task>/<metric>``, ``date`` the run's."""
    config = results.get("config") or {}
    if notes is None:
        notes = f"zoo suite '{results['suite']}', limit {config.get('limit')}, seed {config.get('seed')}"
    return [
        EvalResultEntry(dataset_id=dataset_id, task_id=f"{task}/{metric}", value=value, date=results.get("created"),
                        notes=notes)
        for task, metric, value in numeric_metrics(results)
    ]


def write_eval_results(results: dict, folder: str | Path, **kwargs: Any) -> Path:
    """Write ``<folder>/.eval_results/<suite>.yaml`` (the Hub's eval-results format); returns its path."""
    path = Path(folder) / ".eval_results" / f"{results['suite']}.yaml"
    entries = eval_result_entries_to_yaml(to_eval_result_entries(results, **kwargs))
    atomic_write(path, yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    return path


# ---- the model card of a pushed run ----------------------------------------------------------

LIMITATIONS = (
    "Trained and evaluated on the synthetic shapes world only (procedurally generated 48-px images, "
    "template captions): it shows what the recipe does, not how a real assistant behaves. Read every "
    "figure beside its control (SFT on the chosen responses, same data, steps and lr) and its 95 % "
    "interval; the zoo README's alignment table has them over 3 seeds. Not for any real-world use."
)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        if k.startswith("_") and k != "_target_":
            continue
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _hparams(recipe: dict) -> list[tuple[str, Any]]:
    module, trainer, data = recipe.get("module", {}), recipe.get("trainer", {}), recipe.get("data", {})
    rows = [("module", module.get("_target_", "").rsplit(".", 1)[-1])]
    for key in ("objective", "sft_weight", "reference", "hparams", "warmup_steps", "gamma"):
        if key in module:
            value = module[key]
            rows += list(_flat(value, key).items()) if isinstance(value, dict) else [(key, value)]
    optimizer = module.get("optimizer", {})
    rows += [(f"optimizer.{k}", v) for k, v in optimizer.items() if k not in ("_target_", "_partial_")]
    rows += [("optimizer", optimizer.get("_target_", "").rsplit(".", 1)[-1])]
    rows += [("max_steps", trainer.get("max_steps")), ("batch_size", data.get("batch_size")),
             ("precision", trainer.get("precision")), ("seed", recipe.get("seed"))]
    rows += [(f"bdhs.{k}", v) for k, v in (recipe.get("bdhs") or module.get("bdhs") or {}).items()]
    return [(k, v) for k, v in rows if v not in (None, "")]


def _data_text(recipe: dict) -> str:
    data = recipe.get("data", {})
    split = data.get("train_split", "train")
    text = f"`{data.get('path')}`, split `{split}`"
    if data.get("world"):
        text += f" — the synthetic `{data['world']}` world, config {json.dumps(data.get('world_config', {}))}"
    name = recipe.get("recipe_name")
    if name == "dpo":
        text += (". Pairs: `chosen` is the true caption, `rejected` the same caption with one injected "
                 "hallucination (the bias prior's object 50 %, a wrong colour 25 %, an extra object 25 %).")
    elif name in ("bdhs", "online_bdhs"):
        when = "once, by the base model, before training" if name == "bdhs" else "every step, by the current policy"
        text += (f". Pairs: `chosen` is the true caption; `rejected` was written {when} with the image hidden "
                 "(BDHS: latent masking, reference-guided sentence completion, similarity filter) — no annotation.")
    return text


def _results_table(results: dict, controls: list[dict] = ()) -> str:
    """The card's results: this model beside its controls (first column the reference), each cell with its
    bootstrap 95 % interval when the results have one; ≈ marks an interval overlapping the reference's."""
    columns = [*controls, results]
    table = compare_markdown(columns)
    note = ("\n↓ / ↑: lower / higher is better; [low, high]: bootstrap 95 % interval over items"
            + (f"; ≈: overlaps the first column's ({columns[0]['model']}), so that difference is not shown."
               if controls else "."))
    return table + note


def _controls(run_dir: Path) -> list[dict]:
    """Results files of the run's control rows (``controls/*.json``), in name order."""
    return [load_results(p) for p in sorted((run_dir / "controls").glob("*.json"))] if (run_dir / "controls").is_dir() else []


def render_card(run_dir: str | Path, repo_id: str, name: str | None = None, base_model: str | None = None,
                backbone: str | None = None, modalities: tuple[str, ...] = ("image",), revision: str | None = None,
                template: str = "default") -> str:
    """The README.md of a run pushed as ``repo_id``: card data (with ``model-index`` when the run has
    results), model, recipe and hyper-parameters, data and how pairs were made, results, limitations
    and the `load` snippet."""
    from huggingface_hub import ModelCard

    from model_cards import TEMPLATES

    run_dir = Path(run_dir)
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text()) if (run_dir / "recipe.yaml").is_file() else {}
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").is_file() else None
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    name = name or repo_id.split("/")[-1]
    tags = ["zoo", "multimodal", "image-text-to-text", str(recipe.get("recipe_name", "model"))]
    data = card_data(results, base_model=base_model, model_name=name, tags=tags, library_name="zoo") if results \
        else ModelCardData(base_model=base_model, model_name=name, tags=tags, library_name="zoo",
                           pipeline_tag="image-text-to-text")
    recipe_name = recipe.get("recipe_name", "unknown")
    card = ModelCard.from_template(
        data, template_path=str(TEMPLATES / f"{template}.md.j2"),
        name=name, load_name=repo_id, revision=revision, base_model=base_model, recipe_name=recipe_name,
        summary=f"`{recipe_name}` model of the zoo, pushed from `{run_dir}`.",
        backbone=backbone or recipe.get("model", {}).get("_target_", "see config.json"),
        modalities=", ".join(modalities), parameters=metrics.get("parameters", "see config.json"),
        command=f"recipe={recipe_name}", hparams=_hparams(recipe), data=_data_text(recipe),
        suite=(results or {}).get("suite"),
        results_table=_results_table(results, _controls(run_dir)) if results else None,
        limitations=LIMITATIONS,
    )
    return str(card)
