"""Training curves from a run folder's CSV logs: one axis per unit, labelled, no duplicate or empty series."""

from __future__ import annotations

import csv

import matplotlib.pyplot as plt
import pytest

from benchmarks.plots import curves_figure, panel_of, panels, plot_run, read_metrics
from zoo.results import metric_info

V0 = """epoch,lr-AdamW,step,train/loss,val/loss,eval/pope/random/accuracy,eval/pope/random/f1,eval/chair/chair_i
0,0.001,0,5.0,,,,
0,0.001,1,4.0,,,,
0,,1,,4.5,,,
0,,2,,,0.5,0.4,0.3
0,0.001,2,3.5,,,,
"""
V1 = """epoch,step,train/loss,train/reward_margin,train/reward_accuracy
0,2,3.0,0.1,0.6
0,3,2.5,0.2,0.7
"""


def _run(tmp_path, *versions):
    for i, text in enumerate(versions):
        d = tmp_path / "run" / "logs" / "csv" / f"version_{i}"
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text(text)
    return tmp_path / "run"


def _lightning_csv(run, rows):
    """A metrics.csv as Lightning's CSVLogger writes it: one row per log call, the union of keys as columns."""
    columns = sorted({k for row in rows for k in row})
    d = run / "logs" / "csv" / "version_0"
    d.mkdir(parents=True)
    with open(d / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return run


def _dpo_rows():
    """A DPO run (sigmoid + sft terms) evaluated by the smoke suite every 2 steps; the model answers "no" to
    every POPE question, so recall, f1 and yes_ratio are the same zero series, and CHAIR_i is not applicable
    (never logged)."""
    rows = []
    for step in range(6):
        rows.append({"step": step, "lr-AdamW": 5e-5 * (1 - step / 6)})
        rows.append({"step": step, "epoch": 0, "train/loss": 17.8 - 0.01 * step, "train/sft/loss": 5.7 - 0.003 * step,
                     "train/sigmoid/loss": 0.693 - 0.002 * step, "train/rewards/chosen": 0.02 * step,
                     "train/rewards/rejected": 0.015 * step, "train/rewards/margin": 0.005 * step,
                     "train/rewards/accuracy": 0.5 + 0.05 * step, "train/logps/chosen": -180.0 - step,
                     "train/logps/rejected": -220.0 - 2 * step, "train/kl": 0.1 * step})
        if step % 2 == 1:
            rows.append({"step": step + 1, "eval/pope_adversarial/accuracy": 0.5, "eval/pope_adversarial/precision": 0.5,
                         "eval/pope_adversarial/recall": 0.0, "eval/pope_adversarial/f1": 0.0,
                         "eval/pope_adversarial/yes_ratio": 0.0, "eval/pope_adversarial/unparseable": 3 - step // 2,
                         "eval/pope_adversarial/n": 16, "eval/chair/recall": 0.1 * step, "eval/chair/empty_rate": 0.9,
                         "eval/chair/n": 8, "eval/chair/n_mentions": 2 * step})
    return rows


def _unit(name: str) -> str:
    """What a metric measures, decided here independently of the plotting code: panels must not mix these."""
    info = metric_info(name)
    if name.startswith("eval/") or (info is not None and name.endswith("accuracy")):
        return info.kind if info is not None else f"undeclared {name}"
    if name.startswith("lr-"):
        return "learning rate"
    leaf = name.split("/")[-1]
    if leaf.startswith("loss"):
        return "loss"
    if "/rewards/" in name:
        return "reward"
    if "/logps/" in name:
        return "log-prob"
    if leaf == "tokens":
        return "count"
    return name


def assert_readable(fig, data):
    """Every axes labelled, not empty, one unit, one eval task, one line per distinct series; all data drawn."""
    drawn = []
    for ax in fig.axes:
        title = ax.get_title()
        assert title and ax.get_xlabel() == "global step" and ax.get_ylabel(), title
        low, high = ax.get_xlim()  # every panel spans the whole run
        assert low <= data["step"].min() and high >= data["step"].max(), title
        lines = ax.get_lines()
        assert lines and all(len(line.get_xdata()) > 0 for line in lines), f"empty axes {title!r}"
        names = [name for line in lines for name in line.get_gid().split("|")]
        drawn += names
        units = {_unit(n) for n in names}
        assert len(units) == 1, f"{title!r} mixes {units}: {names}"
        assert len({n.split("/")[1] for n in names if n.startswith("eval/")}) <= 1, title
        if units == {"rate"}:
            assert ax.get_ylim() == pytest.approx((-0.03, 1.03))  # rates on their own 0–1 scale
        series = {tuple(map(tuple, data[data.metric == n][["step", "value"]].to_numpy())) for n in names}
        assert len(lines) == len(series), f"{title!r}: {len(lines)} lines for {len(series)} distinct series"
    assert sorted(drawn) == sorted(data["metric"].unique())  # every metric with data, exactly once


def test_read_metrics_concatenates_and_later_versions_win(tmp_path):
    data = read_metrics(_run(tmp_path, V0, V1))
    loss = data[data.metric == "train/loss"].set_index("step")["value"].to_dict()
    assert loss == {0: 5.0, 1: 4.0, 2: 3.0, 3: 2.5}  # step 2 from version_1
    assert data[data.metric == "val/loss"]["value"].tolist() == [4.5]


def test_panels_keep_one_unit_per_axis():
    layout = panels(["train/loss", "val/loss", "lr-AdamW", "train/tokens", "train/rewards/margin",
                     "train/rewards/chosen", "train/rewards/accuracy", "train/sft/loss", "eval/pope/random/f1",
                     "eval/chair/chair_i", "eval/chair/n_mentions", "eval/chair/n", "train/loss_step"])
    by_title = {panel.title: names for panel, names in layout.items()}
    assert by_title == {
        "loss": ["train/loss", "train/loss_step", "val/loss"],
        "loss term: sft": ["train/sft/loss"],
        "learning rate": ["lr-AdamW"],
        "implicit rewards": ["train/rewards/chosen", "train/rewards/margin"],
        "reward accuracy": ["train/rewards/accuracy"],
        "tokens per epoch": ["train/tokens"],
        "eval: chair — counts": ["eval/chair/n", "eval/chair/n_mentions"],
        "eval: chair — rates": ["eval/chair/chair_i"],
        "eval: pope — rates": ["eval/pope/random/f1"],
    }
    assert panel_of("eval/chair/chair_i").rate and not panel_of("eval/chair/n").rate
    assert "undeclared" in panel_of("eval/fake/mean_chars").ylabel  # an unknown unit shares no axis
    assert panel_of("train/external/rewards/accuracy").title == "reward accuracy"  # a later pair's metrics


def test_dpo_figure_one_unit_per_axis_and_identical_series_drawn_once(tmp_path):
    run = _lightning_csv(tmp_path / "dpo", _dpo_rows())
    data = read_metrics(run)
    fig = curves_figure(run)
    try:
        assert_readable(fig, data)
        axes = {ax.get_title(): ax for ax in fig.axes}
        assert list(axes) == ["loss", "loss term: sft", "loss term: sigmoid", "learning rate", "implicit rewards",
                              "reward accuracy", "log-probabilities", "KL estimate", "eval: chair — counts",
                              "eval: chair — rates", "eval: pope_adversarial — counts",
                              "eval: pope_adversarial — rates"]
        pope = [line.get_label() for line in axes["eval: pope_adversarial — rates"].get_lines()]
        assert pope == ["accuracy ↑ = precision ↑", "f1 ↑ = recall ↑ = yes_ratio"]  # 5 metrics, 2 distinct series
        assert [line.get_label() for line in axes["implicit rewards"].get_lines()] == [
            "train/rewards/chosen", "train/rewards/margin", "train/rewards/rejected"]
        assert axes["learning rate"].get_ylabel() == "learning rate" and "nats" in axes["loss"].get_ylabel()
    finally:
        plt.close(fig)


def test_curves_of_a_real_tiny_dpo_run(tmp_path, capsys):
    """A real DPO run (Lightning's CSVLogger, the eval callback with the smoke suite), plotted by `zoo plot`."""
    from tests.train.test_sft import tiny_overrides
    from zoo.cli import main

    overrides = ["recipe=dpo", *tiny_overrides(tmp_path, steps=4), "trainer.log_every_n_steps=1",
                 "eval.suite=smoke", "eval.every_n_steps=2"]
    assert main(["train", *overrides]) == 0
    run = tmp_path / "run"
    data = read_metrics(run)
    assert {"train/rewards/margin", "train/sft/loss", "eval/chair/n", "eval/pope_adversarial/f1"} <= set(data.metric)
    fig = curves_figure(run)
    try:
        assert_readable(fig, data)
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[:3] == ["loss", "loss term: sft", "loss term: sigmoid"]
        assert {"eval: chair — counts", "eval: pope_adversarial — rates"} <= set(titles)
    finally:
        plt.close(fig)
    capsys.readouterr()
    assert main(["plot", str(run)]) == 0
    assert f"curves written to {run / 'curves.png'}" in capsys.readouterr().out
    image = plt.imread(run / "curves.png")
    rows = (len(titles) + 2) // 3
    assert image.shape[0] == round(3.5 * rows * 110) and image.shape[1] == round(5.4 * 3 * 110)  # the whole grid


def test_plot_run_writes_a_png(tmp_path):
    run = _run(tmp_path, V0, V1)
    fig = curves_figure(run)
    try:
        assert_readable(fig, read_metrics(run))
        # metrics of no known unit (old names here) get an axes each, after the training panels, before eval's
        assert [ax.get_title() for ax in fig.axes] == ["loss", "learning rate", "train/reward_accuracy",
                                                       "train/reward_margin", "eval: chair — rates",
                                                       "eval: pope — rates"]
    finally:
        plt.close(fig)

    path = plot_run(run)
    assert path == run / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = plot_run(run, tmp_path / "figs" / "c.png")
    assert other.exists() and other.read_bytes()[:4] == b"\x89PNG"

    loss_only = _run(tmp_path / "b", "step,train/loss\n0,1.0\n1,0.5\n")
    fig = curves_figure(loss_only)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "loss (nats)"
    plt.close(fig)


def test_plot_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        plot_run(tmp_path)
    run = _run(tmp_path, "epoch,step,lr-AdamW\n0,0,0.1\n")
    with pytest.raises(ValueError, match="no loss"):
        plot_run(run)

    from zoo.cli import main

    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert main(["plot", str(_run(tmp_path / "c", V0)), "--output", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").exists()
