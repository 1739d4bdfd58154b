"""Training curves from a run folder's CSV logs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from benchmarks.plots import curves_figure, panels, plot_run, read_metrics

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


def test_read_metrics_concatenates_and_later_versions_win(tmp_path):
    data = read_metrics(_run(tmp_path, V0, V1))
    loss = data[data.metric == "train/loss"].set_index("step")["value"].to_dict()
    assert loss == {0: 5.0, 1: 4.0, 2: 3.0, 3: 2.5}  # step 2 from version_1
    assert data[data.metric == "val/loss"]["value"].tolist() == [4.5]


def test_panels_group_metrics():
    layout = panels(["train/loss", "val/loss", "lr-AdamW", "train/tokens", "train/reward_margin",
                     "train/reward_accuracy", "eval/pope/random/f1", "eval/chair/chair_i", "eval/chair/n_mentions",
                     "eval/chair/n"])  # counts stay off the rate axes
    assert layout == {
        "loss": ["train/loss", "val/loss"],
        "reward margin": ["train/reward_margin"],
        "accuracy": ["train/reward_accuracy"],
        "eval: chair": ["eval/chair/chair_i"],
        "eval: pope": ["eval/pope/random/f1"],
    }


def test_plot_run_writes_a_png_with_one_axes_per_panel(tmp_path):
    run = _run(tmp_path, V0, V1)
    fig = curves_figure(run)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "reward margin", "accuracy", "eval: chair", "eval: pope"]
    assert len(fig.axes[-1].get_lines()) == 2
    plt.close(fig)

    path = plot_run(run)
    assert path == run / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = plot_run(run, tmp_path / "figs" / "c.png")
    assert other.exists() and other.read_bytes()[:4] == b"\x89PNG"

    loss_only = _run(tmp_path / "b", "step,train/loss\n0,1.0\n1,0.5\n")
    fig = curves_figure(loss_only)
    assert len(fig.axes) == 1
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
