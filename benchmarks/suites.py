"""Suites: named groups of tasks. A suite entry is (task name in TASKS, keyword arguments)."""

from __future__ import annotations

from typing import Any

from benchmarks.task import TASKS, Task

SUITES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # Every hallucination task of benchmarks/hallucination.py, e.g. build_suite("hallucination", world=PATH).
    "hallucination": [
        ("pope_random", {}),
        ("pope_popular", {}),
        ("pope_adversarial", {}),
        ("chair", {}),
        ("chair_trigger", {}),
        ("mmhal", {}),
        ("caption_quality", {}),
    ],
    # A quick check during training: run each task with a small limit (e.g. task.run(model, limit=32)).
    "smoke": [("pope_adversarial", {}), ("chair", {})],
    # what `zoo demo` reports: captions on both test splits and POPE (MMHal left out for time)
    "demo": [("chair", {}), ("chair_trigger", {}), ("pope_random", {}), ("pope_popular", {}), ("pope_adversarial", {})],
}


def build_suite(name: str, **source: Any) -> list[Task]:
    """Instantiate the tasks of suite ``name``; ``source`` (e.g. ``world=PATH``) goes to every task."""
    import benchmarks.hallucination  # noqa: F401  (registers the tasks)

    if name not in SUITES:
        raise KeyError(f"unknown suite '{name}'; known: {', '.join(sorted(SUITES)) or 'none'}")
    return [TASKS.get(task)(**{**kwargs, **source}) for task, kwargs in SUITES[name]]
