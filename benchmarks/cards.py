"""Results → Hugging Face Hub metadata: the model card ``model-index`` and ``.eval_results/*.yaml``.

Two Hub formats, both from one results dict (see `benchmarks.results`):

* ``model-index`` in the card's YAML header (`EvalResult` / `ModelCardData`): one result group per
  task (the task name is the dataset *config*, so the groups stay apart), one metric per numeric
  leaf of the task's metrics (nested keys joined with ``/``).
* ``.eval_results/<suite>.yaml`` (`EvalResultEntry`): one entry per task metric; the entry's
  ``task_id`` is ``<task>/<metric>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, EvalResultEntry, ModelCardData, eval_result_entries_to_yaml

from benchmarks.results import _atomic_write, flatten_metrics, is_number

TASK_TYPE = "image-text-to-text"


def numeric_metrics(results: dict) -> list[tuple[str, str, float | int]]:
    """``(task, metric, value)`` for every numeric metric, in file order (non-numbers are skipped)."""
    return [
        (task, metric, value)
        for task, metrics in results["results"].items()
        for metric, value in flatten_metrics(metrics).items()
        if is_number(value)
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
    _atomic_write(path, yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    return path
