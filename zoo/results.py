"""The results format: write/read a results JSON file, compare several of them.

Benchmarks write it (`benchmarks.suites.run_suite`); the hub, the model cards, the leaderboard and the
evaluation callback read it. A results file is one JSON object::

    {
      "model": "runs/sft/model",          # what was evaluated (a folder, a zoo name, a hub id)
      "revision": null,                   # its revision (a hub commit) when known
      "suite": "hallucination",
      "created": "2025-01-01T12:00:00Z",  # ISO-8601, UTC
      "config": {"limit": null, "seed": 0, "batch_size": 64, "source": {"world": "data/shapes-0"}, ...},
      "results": {"<task>": {<metric>: number | {<sub-metric>: number, ...}, ...}, ...},
      "intervals": {"<task>": {<metric>: [low, high], ...}, ...}   # optional: bootstrap 95 % intervals
    }

Every metric name is declared in :data:`METRICS` with its direction (lower / higher is better) and
kind (rate, score or count); counts stay in the file but out of rankings, model-index and plot axes.

The per-sample outputs (replies with their references) go to a side file next to it,
``<stem>.samples.jsonl``, one JSON line per sample with the task name added.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REQUIRED_KEYS = ("model", "revision", "suite", "created", "config", "results")
MISSING = "—"


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """What a metric means for ranking and plotting: which way is better, and whether it is a rate."""

    better: str | None  # "lower", "higher", or None (neither: e.g. POPE's yes ratio)
    kind: str = "rate"  # "rate" (a fraction in [0, 1]), "score" (another scale) or "count"

    @property
    def arrow(self) -> str:
        return {"lower": "↓", "higher": "↑"}.get(self.better or "", "")


# Every metric a benchmark emits, by its name (the last part of a nested name); `accuracy_<kind>` is
# an accuracy. A test checks that every task's metrics are declared here.
METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("higher"),
    "precision": MetricInfo("higher"),
    "recall": MetricInfo("higher"),
    "f1": MetricInfo("higher"),
    "yes_ratio": MetricInfo(None),
    "chair_i": MetricInfo("lower"),
    "chair_s": MetricInfo("lower"),
    "partner_hallucination": MetricInfo("lower"),
    "empty_rate": MetricInfo("lower"),
    "addition_rate": MetricInfo("lower"),
    "hallucination_rate": MetricInfo("lower"),
    "score": MetricInfo("higher", "score"),
    "unparseable": MetricInfo("lower", "count"),
    "n_mentions": MetricInfo(None, "count"),
    "n": MetricInfo(None, "count"),
}


def metric_info(name: str) -> MetricInfo | None:
    """The declaration of metric ``name`` (``task/metric`` paths use their last part); None if undeclared."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf.startswith("accuracy_"):
        leaf = "accuracy"
    return METRICS.get(leaf)


def is_rankable(name: str) -> bool:
    """Rates and scores with a direction: what model-index, the leaderboard's ranking and plot axes show."""
    info = metric_info(name)
    return info is not None and info.kind != "count" and info.better is not None


def intervals_overlap(a, b) -> bool | None:
    """Whether two ``[low, high]`` intervals share a point (None when either is unknown)."""
    if not a or not b:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def _jsonable(value: Any) -> Any:
    """Paths → str, tuples → lists, recursively (for the config block)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_results(model_name: str, suite: str, metrics: Mapping[str, Any], revision: str | None = None,
                config: Mapping[str, Any] | None = None, intervals: Mapping[str, Any] | None = None) -> dict:
    """A results dict of ``metrics`` (task → metrics), created now; paths and tuples made JSON-ready.

    ``intervals`` (task → metric → [low, high], the bootstrap 95 % intervals) is stored when given.
    """
    results = {
        "model": model_name,
        "revision": revision,
        "suite": suite,
        "created": utc_now(),
        "config": _jsonable(dict(config or {})),
        "results": _jsonable(metrics),
    }
    if intervals is not None:
        results["intervals"] = _jsonable(intervals)
    return results


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it into place (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def samples_path(path: str | Path) -> Path:
    """The side file of a results file: ``<stem>.samples.jsonl`` in the same folder."""
    path = Path(path)
    return path.with_name(f"{path.stem}.samples.jsonl")


def write_results(results: dict, samples_by_task: Mapping[str, Iterable[dict]] | None, path: str | Path) -> Path:
    """Write ``results`` to ``path`` (sorted keys, indent 2) and the samples to the side file, atomically."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in results]
    if missing:
        raise ValueError(f"results lack the required key '{missing[0]}'")
    if samples_by_task is not None:
        lines = [
            json.dumps({**sample, "task": task}, sort_keys=True, ensure_ascii=False, default=str)
            for task, samples in samples_by_task.items()
            for sample in samples
        ]
        atomic_write(samples_path(path), "".join(line + "\n" for line in lines))
    atomic_write(path, json.dumps(_jsonable(results), sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    return path


def load_results(path: str | Path) -> dict:
    """Read and validate a results file; a missing key is an error that names it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"results file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a results file: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a results file: expected a JSON object, found {type(data).__name__}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ValueError(f"{path} is not a valid results file: missing required key '{key}'")
    if not isinstance(data["results"], dict):
        raise ValueError(f"{path}: 'results' must be an object of task → metrics")
    return data


def load_samples(path: str | Path) -> list[dict]:
    """The per-sample lines of a results file (from its side file)."""
    return [json.loads(line) for line in samples_path(path).read_text(encoding="utf-8").splitlines() if line]


# ---- comparing ----------------------------------------------------------------------------------


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts → ``{"a/b": value}`` in their order."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "/"))
        else:
            flat[name] = value
    return flat


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _labels(results_list: list[dict]) -> list[str]:
    labels = []
    for r in results_list:
        label = str(r.get("model"))
        if r.get("revision"):
            label += f"@{str(r['revision'])[:12]}"
        labels.append(label)
    # the same model twice (e.g. two seeds or suites): number them so the columns stay apart
    for label in set(labels):
        if labels.count(label) > 1:
            n = 0
            for i, other in enumerate(labels):
                if other == label:
                    n += 1
                    labels[i] = f"{label} ({n})"
    return labels


NOT_SEPARATED = "≈"  # marks a cell whose 95 % interval overlaps the first column's


def _cell(value: Any, interval, reference_interval, first: bool) -> str:
    text = format_value(value)
    if value is None or not interval:
        return text
    text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    if not first and intervals_overlap(interval, reference_interval):
        text += f" {NOT_SEPARATED}"
    return text


def compare_rows(results_list: list[dict]) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Column labels and rows ``(task, metric, [cell per file])``; tasks and metrics in first-seen order.

    A metric's name carries its direction (``chair_i ↓``). Where a file has bootstrap intervals the cell
    shows ``value [low, high]``, and a cell whose interval overlaps the first column's (the reference: put
    the control or the base first) is marked ``≈``: that difference is not shown to be real.
    """
    flat = [{task: flatten_metrics(m) for task, m in r["results"].items()} for r in results_list]
    spans = [{task: flatten_metrics(m) for task, m in (r.get("intervals") or {}).items()} for r in results_list]
    keys: dict[tuple[str, str], None] = {}
    for per_file in flat:
        for task, metrics in per_file.items():
            for metric in metrics:
                keys[(task, metric)] = None
    by_task: dict[str, list[str]] = {}
    for task, metric in keys:
        by_task.setdefault(task, []).append(metric)
    rows = []
    for task, metrics in by_task.items():
        for metric in metrics:
            reference = spans[0].get(task, {}).get(metric)
            cells = [_cell(f.get(task, {}).get(metric), sp.get(task, {}).get(metric), reference, i == 0)
                     for i, (f, sp) in enumerate(zip(flat, spans))]
            info = metric_info(metric)
            rows.append((task, f"{metric} {info.arrow}" if info and info.arrow else metric, cells))
    return _labels(results_list), rows


def compare_table(results_list: list[dict]):
    """A rich Table: rows task/metric, one column per results file (model, + revision)."""
    from rich.table import Table

    labels, rows = compare_rows(results_list)
    suites = sorted({str(r.get("suite")) for r in results_list})
    table = Table(title=f"suite: {', '.join(suites)}",
                  caption=f"[low, high]: bootstrap 95 % interval over items; {NOT_SEPARATED}: overlaps the first column's")
    table.add_column("task", style="bold")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    previous = None
    for task, metric, cells in rows:
        table.add_row(task if task != previous else "", metric, *cells)
        previous = task
    return table


def compare_markdown(results_list: list[dict]) -> str:
    """The same comparison as a GitHub-flavoured Markdown table."""
    labels, rows = compare_rows(results_list)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| task | metric | " + " | ".join(esc(label) for label in labels) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    lines += [f"| {esc(task)} | {esc(metric)} | " + " | ".join(cells) + " |" for task, metric, cells in rows]
    return "\n".join(lines) + "\n"
