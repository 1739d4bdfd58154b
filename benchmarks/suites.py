"""Suites: named groups of tasks (a suite entry is a task name in TASKS and keyword arguments), and
`run_suite`, which runs one on a model and returns a results dict (the format of `zoo.results`)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the tasks import torch: the CLI's help reads SUITES without it
    from benchmarks.task import Task

SUITES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # Every hallucination task of benchmarks/hallucination.py, e.g. build_suite("hallucination", world=PATH).
    "hallucination": [
        ("pope_random", {}),
        ("pope_popular", {}),
        ("pope_adversarial", {}),
        ("pope_trigger", {}),
        ("chair", {}),
        ("chair_trigger", {}),
        ("mmhal", {}),
        ("caption_quality", {}),
    ],
    # A quick check during training: run each task with a small limit (e.g. task.run(model, limit=32)).
    "smoke": [("pope_adversarial", {}), ("chair", {})],
    # what `zoo demo` and benchmarks/alignment.py report: captions on both test splits, POPE adversarial on the
    # test split and yes/no on the trigger split (random / popular POPE and MMHal left out for time)
    "demo": [("chair", {}), ("chair_trigger", {}), ("pope_adversarial", {}), ("pope_trigger", {})],
}


def task_names() -> list[str]:
    """Every registered benchmark task (what ``zoo eval --tasks`` takes)."""
    import benchmarks.hallucination  # noqa: F401  (registers the tasks)
    from benchmarks.task import TASKS

    return TASKS.names()


def build_suite(name: str, **source: Any) -> list[Task]:
    """Instantiate the tasks of suite ``name``; ``source`` (e.g. ``world=PATH``) goes to every task."""
    if name not in SUITES:
        raise KeyError(f"unknown suite '{name}'; known: {', '.join(sorted(SUITES)) or 'none'}")
    return build_tasks([task for task, _ in SUITES[name]], [kwargs for _, kwargs in SUITES[name]], **source)


def build_tasks(names: list[str], kwargs: list[dict[str, Any]] | None = None, **source: Any) -> list[Task]:
    """Instantiate the tasks ``names`` (lmms-eval style task selection); an unknown name lists the known ones."""
    from benchmarks.task import TASKS

    known = task_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown task(s) {', '.join(map(repr, unknown))}; tasks: {', '.join(known)}")
    return [TASKS.get(name)(**{**(kw or {}), **source}) for name, kw in zip(names, kwargs or [{}] * len(names))]


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)


def run_suite(
    model,
    suite: str,
    model_name: str,
    revision: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    source: dict | None = None,
    config: dict | None = None,
    batch_size: int = 64,
    progress: bool = True,
    return_samples: bool = False,
    n_boot: int = 1000,
    tasks: list[str] | None = None,
):
    """Run every task of ``suite`` (or the tasks named in ``tasks``, recorded as suite ``tasks:a,b``) on
    ``model``; the results dict (and, if asked, the samples by task).

    torch/random/numpy are seeded with ``seed`` before each task, so a task's metrics do not depend
    on the tasks before it and two runs on the same model give identical ``results``. Every rate and
    score gets a bootstrap 95 % interval over the task's items (``n_boot`` resamples, seeded; 0: none),
    stored under the results' ``intervals``.
    """
    import torch

    from zoo.results import new_results

    source = dict(source or {})
    if tasks:
        suite = "tasks:" + ",".join(tasks)
        to_run = build_tasks(list(tasks), **source)
    else:
        to_run = build_suite(suite, **source)
    metrics: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for task in to_run:
        if task.name in metrics:
            raise ValueError(f"suite '{suite}' holds task '{task.name}' twice; give the entries distinct names")
        _seed(seed)
        with torch.no_grad():
            out = task.run(model, limit=limit, batch_size=batch_size, progress=progress, n_boot=n_boot, seed=seed)
        metrics[task.name] = out["metrics"]
        intervals[task.name] = out["intervals"]
        samples[task.name] = out["samples"]
    run_config = {**(config or {}), "limit": limit, "seed": seed, "batch_size": batch_size, "source": source,
                  "n_boot": n_boot}
    results = new_results(model_name, suite, metrics, revision=revision, config=run_config, intervals=intervals)
    return (results, samples) if return_samples else results
