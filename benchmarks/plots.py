"""Training curves of a run folder (``logs/csv/version_*/metrics.csv``) as one PNG of labelled panels.

One axis per quantity and unit, never two units on one axis: the loss (train and val), each objective
term's loss, the learning rate, the implicit rewards, the reward accuracy (a rate, 0–1), the log-probs,
the KL estimate, token counts, the pair source's own metrics, and per evaluated task
(``eval/<task>/<metric>``, logged by `zoo.train.callbacks.EvalCallback`) one panel of rates, one of
scores and one of counts, as `zoo.results.METRICS` declares each metric's kind. Every panel has a title,
an x label (global step) and a y label with the unit. A metric with no data is left out; series with
exactly the same points are drawn once, labelled with every name they stand for (e.g. ``recall = f1 =
yes_ratio`` of a model that answers "no" to every POPE question).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; safe to call before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from zoo.results import metric_info  # noqa: E402

X_LABEL = "global step"
STAGES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Panel:
    """One axes: its title, its y label (the quantity and its unit) and whether it is a rate (y in 0–1)."""

    title: str
    ylabel: str
    rate: bool = False


# Panels of the training metrics (`zoo.train.modules`, `zoo.align.objectives.preference_metrics`,
# `ranked_metrics`, the pair sources), in drawing order; keyed by the metric's name without its stage.
LOSS = Panel("loss", "loss (nats)")
LEARNING_RATE = Panel("learning rate", "learning rate")
REWARDS = Panel("implicit rewards", "β·log(π/π_ref) (nats)")
REWARD_ACCURACY = Panel("reward accuracy", "fraction of pairs (0–1)", rate=True)
LOGPS = Panel("log-probabilities", "summed log-prob of a response (nats)")
KL = Panel("KL estimate", "mean log(π/π_ref) per sequence (nats)")
TOKENS = Panel("tokens per epoch", "tokens (count)")  # zoo.train.modules sums them over the epoch
TRAINING_PANELS: dict[str, Panel] = {
    "kl": KL,
    "tokens": TOKENS,
    "bdhs/tries": Panel("BDHS: tries", "tries per example (count)"),
    "bdhs/similarity": Panel("BDHS: similarity to the chosen", "cosine similarity"),
    "bdhs/repetitive": Panel("BDHS: repetitive rejected", "fraction of examples (0–1)", rate=True),
    "curriculum/stage": Panel("curriculum stage", "stage (index)"),
}
EVAL_KINDS = {"rate": ("rates", "rate (0–1)"), "score": ("scores", "score"), "count": ("counts", "count")}
_LIGHTNING_SUFFIX = re.compile(r"_(step|epoch)$")  # `self.log(on_step=True, on_epoch=True)` names


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
    data = data[np.isfinite(data["value"])]  # NaN / inf are no points
    # stable sort by version: on a (step, metric) pair logged by several attempts, the last one wins
    data = data.sort_values("version", kind="stable").drop_duplicates(["step", "metric"], keep="last")
    return data.sort_values(["metric", "step"]).reset_index(drop=True)[["step", "metric", "value"]]


def panel_of(name: str) -> Panel:
    """The panel metric ``name`` is drawn in: one per quantity and unit (see the module docstring)."""
    base = _LIGHTNING_SUFFIX.sub("", name)
    parts = base.split("/")
    if parts[0].startswith("lr-") or parts[-1] == "lr":  # LearningRateMonitor: lr-AdamW, lr-AdamW/pg1
        return LEARNING_RATE
    if parts[0] == "eval" and len(parts) >= 3:
        task, metric = parts[1], "/".join(parts[2:])
        info = metric_info(metric)
        if info is None:  # undeclared: its unit is unknown, so it shares an axis with nothing
            return Panel(f"eval: {task} — {metric}", f"{metric} (undeclared in zoo.results.METRICS)")
        kind, ylabel = EVAL_KINDS[info.kind]
        return Panel(f"eval: {task} — {kind}", ylabel, rate=info.kind == "rate")
    rest = parts[1:] if parts[0] in STAGES and len(parts) > 1 else parts
    key = "/".join(rest)
    if rest[-1].startswith("loss"):
        return LOSS if len(rest) == 1 else Panel(f"loss term: {'/'.join(rest[:-1])}", "loss (nats)")
    if len(rest) >= 2 and rest[-2] in ("rewards", "ranked"):  # "external/rewards/margin": a later pair
        return REWARD_ACCURACY if rest[-1] == "accuracy" else REWARDS
    if len(rest) >= 2 and rest[-2] == "logps":
        return LOGPS
    for suffix, panel in TRAINING_PANELS.items():
        if key == suffix or key.endswith("/" + suffix):
            return panel
    return Panel(base, f"{rest[-1]} (unit unknown)")  # anything else: alone on its axis


def panels(metrics: list[str]) -> dict[Panel, list[str]]:
    """Panel → the metrics drawn in it: training panels first, then each task's; empty panels left out."""
    order = [LOSS, LEARNING_RATE, REWARDS, REWARD_ACCURACY, LOGPS, KL, TOKENS, *TRAINING_PANELS.values()]
    groups: dict[Panel, list[str]] = {}
    for name in sorted(metrics):
        groups.setdefault(panel_of(name), []).append(name)

    def position(panel: Panel) -> tuple:
        if panel in order:
            return (0, order.index(panel), "")
        if panel.title.startswith("loss term: "):
            return (0, 0.5, panel.title)
        return (2 if panel.title.startswith("eval: ") else 1, 0, panel.title)

    return {panel: groups[panel] for panel in sorted(groups, key=position)}


def _label(name: str, panel: Panel) -> str:
    """A legend entry: eval metrics without ``eval/<task>/`` and with their direction (``chair_i ↓``)."""
    if name.startswith("eval/") and panel.title.startswith("eval: "):
        metric = name.split("/", 2)[-1]
        info = metric_info(metric)
        return f"{metric} {info.arrow}".rstrip() if info is not None else metric
    return name


def distinct_series(data: pd.DataFrame, names: list[str]) -> list[tuple[list[str], pd.DataFrame]]:
    """The series of ``names`` with data, those with exactly the same (step, value) points merged into one."""
    out: list[tuple[list[str], pd.DataFrame]] = []
    seen: dict[tuple, int] = {}
    for name in names:
        series = data[data["metric"] == name].sort_values("step")
        if series.empty:
            continue
        points = tuple(zip(series["step"].tolist(), series["value"].tolist()))
        if points in seen:
            out[seen[points]][0].append(name)
        else:
            seen[points] = len(out)
            out.append(([name], series))
    return out


def curves_figure(run_dir: str | Path) -> Figure:
    """The figure of the run's curves: one labelled axes per non-empty panel, no empty axes."""
    data = read_metrics(run_dir)
    layout = panels(list(data["metric"].unique()))
    if set(layout) <= {LEARNING_RATE}:
        found = ", ".join(sorted(data["metric"].unique()))
        raise ValueError(f"{run_dir}: no loss, reward, accuracy or eval/* metrics to plot yet (found: {found})")
    n = len(layout)
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols, 3.5 * rows), squeeze=False,
                             layout="constrained")  # the suptitle and labels never overlap
    flat = list(axes.flat)
    first, last = int(data["step"].min()), int(data["step"].max())
    pad = max(1.0, 0.03 * (last - first))
    for ax, (panel, names) in zip(flat, layout.items()):
        for merged, series in distinct_series(data, names):
            style = "o-" if len(series) < 30 else "-"
            label = " = ".join(_label(name, panel) for name in merged)
            (line,) = ax.plot(series["step"], series["value"], style, label=label,
                              markersize=3 if len(series) > 2 else 6)  # a lone point stays visible
            line.set_gid("|".join(merged))  # the full metric names, for readers of the figure (and tests)
        ax.set_title(panel.title)
        ax.set_xlabel(X_LABEL)
        ax.set_xlim(first - pad, last + pad)  # every panel spans the run, so a point sits where it was logged
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_ylabel(panel.ylabel)
        if panel.rate:
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in flat[n:]:
        fig.delaxes(ax)
    fig.suptitle(Path(run_dir).resolve().name)
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
