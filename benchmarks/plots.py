"""Training curves of a run folder (``logs/csv/version_*/metrics.csv``) as one PNG of subplots.

Panels, each drawn only when its metrics are present: loss (train and val), reward margin,
accuracy, and one panel per evaluated task (``eval/<task>/<metric>``, logged by
`zoo.train.callbacks.EvalCallback`).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; safe to call before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from zoo.results import metric_info  # noqa: E402


def _version(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.parent.name)
    return int(match.group(1)) if match else -1


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """Long table ``step, metric, value`` over all CSV log versions; later versions win on a step."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "logs" / "csv").glob("version_*/metrics.csv"), key=_version)
    if not files:
        raise FileNotFoundError(
            f"no training logs in {run_dir}: expected {run_dir / 'logs' / 'csv' / 'version_N' / 'metrics.csv'}"
        )
    parts = []
    for order, file in enumerate(files):
        frame = pd.read_csv(file)
        if "step" not in frame.columns or frame.empty:
            continue
        value_columns = [c for c in frame.columns if c not in ("step", "epoch")]
        long = frame.melt(id_vars=["step"], value_vars=value_columns, var_name="metric", value_name="value")
        long = long.dropna(subset=["value", "step"])
        long["version"] = order
        parts.append(long)
    if not parts or all(p.empty for p in parts):
        raise ValueError(f"the training logs of {run_dir} hold no metrics ({', '.join(map(str, files))})")
    data = pd.concat(parts, ignore_index=True)
    data["step"] = data["step"].astype(int)
    data["value"] = pd.to_numeric(data["value"], errors="coerce")
    data = data.dropna(subset=["value"])
    # stable sort by version: on a (step, metric) pair logged by several attempts, the last one wins
    data = data.sort_values("version", kind="stable").drop_duplicates(["step", "metric"], keep="last")
    return data.sort_values(["metric", "step"]).reset_index(drop=True)[["step", "metric", "value"]]


def panels(metrics: list[str]) -> dict[str, list[str]]:
    """Panel title → the metrics drawn in it, in a fixed order; empty panels left out."""
    groups: dict[str, list[str]] = {"loss": [], "reward margin": [], "accuracy": []}
    evals: dict[str, list[str]] = {}
    for name in sorted(metrics):
        if name.startswith("eval/"):
            info = metric_info(name)
            if info is not None and info.kind == "count":  # n, n_mentions …: not on a rate axis
                continue
            parts = name.split("/")
            task = parts[1] if len(parts) > 2 else "eval"
            evals.setdefault(f"eval: {task}", []).append(name)
        elif name.split("/")[-1].startswith("loss") and name.split("/")[0] in ("train", "val"):
            groups["loss"].append(name)
        elif "margin" in name:
            groups["reward margin"].append(name)
        elif "accuracy" in name or name.endswith("/acc"):
            groups["accuracy"].append(name)
    groups.update(evals)
    return {title: names for title, names in groups.items() if names}


def curves_figure(run_dir: str | Path) -> Figure:
    """The figure of the run's curves (one axes per non-empty panel)."""
    data = read_metrics(run_dir)
    layout = panels(list(data["metric"].unique()))
    if not layout:
        found = ", ".join(sorted(data["metric"].unique()))
        raise ValueError(f"{run_dir}: no loss, reward margin, accuracy or eval/* metrics to plot (found: {found})")
    n = len(layout)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (title, names) in zip(flat, layout.items()):
        for name in names:
            series = data[data["metric"] == name]
            style = "o-" if len(series) < 30 else "-"
            label = name.split("/", 2)[-1] if title.startswith("eval: ") else name
            ax.plot(series["step"], series["value"], style, label=label, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in flat[n:]:
        fig.delaxes(ax)
    fig.suptitle(Path(run_dir).resolve().name)
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Draw the run's curves into ``output`` (default ``<run_dir>/curves.png``); returns the PNG's path."""
    fig = curves_figure(run_dir)
    output = Path(output) if output is not None else Path(run_dir) / "curves.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(output, dpi=110, format="png")
    finally:
        plt.close(fig)
    return output
