"""The console of `zoo train`: each line once and no third-party noise, the run-level progress bar (plain lines
off a terminal, a live bar on one), and the closing summary with the next commands."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import torch

from tests.train.test_sft import tiny_overrides
from zoo.train.callbacks import RunProgressBar

ROOT = Path(__file__).resolve().parents[2]


def test_zoo_train_prints_each_line_once_without_noise(tmp_path):
    """A tiny SFT run of the real command, its stdout and stderr captured as a user's pipe would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "zoo.cli", "train", *tiny_overrides(tmp_path)], cwd=tmp_path,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    assert sum("GPU available" in line for line in lines) == 1  # Lightning's INFO lines: once, not twice
    for noise in ("💡", "litlogger", "LeafSpec", "Writing model shards", "Epoch 0/-2"):
        assert noise not in out, noise

    steps = [line for line in lines if line.startswith("[sft] step")]
    assert steps[0] == "[sft] step 0/4 · starting"
    assert [s.split()[2] for s in steps[1:]] == ["1/4", "2/4", "3/4", "4/4"]  # the run's steps, not an epoch's
    assert "ETA" in steps[-1] and "samples/s" in steps[-1] and "val_loss" in steps[-1]

    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    summary = out[out.index("sft done:"):]
    assert f"train/loss {metrics['train/loss']:.4f}" in summary.splitlines()[0]
    assert f"model written to {run}/model" in summary
    assert f"tensorboard --logdir {run}/logs" in summary
    assert f"{run}/logs/csv/version_0/metrics.csv" in summary
    assert f"zoo eval {run}/model --suite smoke" in summary
    assert f"zoo train recipe=dpo model=pretrained model.path={run}/model" in summary  # an SFT run's next step


def test_dpo_bar_shows_reward_margin_and_accuracy(tmp_path, capsys):
    from zoo.cli import main

    assert main(["train", "recipe=dpo", "reference=cached", *tiny_overrides(tmp_path, steps=2)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = [line for line in out.splitlines() if line.startswith("[dpo] step")][-1]
    assert last.startswith("[dpo] step 2/2 (100%)")
    assert f"loss {metrics['train/loss']:.3f}" in last
    assert f"margin {metrics['train/rewards/margin']:.3f}" in last
    assert f"acc {metrics['train/rewards/accuracy']:.3f}" in last
    summary = out[out.index("dpo done:"):]
    assert "reward margin" in summary and "reward accuracy" in summary
    assert "zoo eval" in summary and "recipe=dpo model=pretrained" not in summary  # the DPO hint is for SFT runs


def test_grpo_bar_shows_the_reward_and_kl(tmp_path, capsys):
    from zoo.cli import main

    small = ["module.pairs.k=2", "module.pairs.max_new_tokens=4", "data.batch_size=2"]
    assert main(["train", "recipe=grpo", *tiny_overrides(tmp_path, steps=2), *small]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = [line for line in out.splitlines() if line.startswith("[grpo] step")][-1]
    assert f"reward {metrics['train/pg/reward']:.3f}" in last and f"kl {metrics['train/pg/kl']:.3f}" in last


class TinyModule(L.LightningModule):
    """One scalar fitted to 0..15, logging what a preference module logs; a message from step 3 on."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        loss = ((self.w - batch) ** 2).mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({"train/rewards/margin": torch.tensor(0.25), "train/rewards/accuracy": torch.tensor(0.75)})
        if self.global_step == 3:
            logging.getLogger("tests.console").warning("a record from step 3")
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD([self.w], lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.arange(16, dtype=torch.float32).unsqueeze(1), batch_size=2)


def _fit(bar: RunProgressBar) -> L.Trainer:
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[bar])
    trainer.fit(TinyModule())
    return trainer


def test_plain_lines_off_a_terminal_cover_the_run_estimated_from_its_epochs():
    console_file = io.StringIO()
    from rich.console import Console

    bar = RunProgressBar("tiny", console=Console(file=console_file, width=200), lines=4, heartbeat_s=float("inf"))
    assert not bar.live
    _fit(bar)
    lines = console_file.getvalue().splitlines()
    assert lines[0] == "[tiny] step 0/16 · starting"  # 2 epochs × 8 batches, without max_steps
    assert [line.split(" · ")[0] for line in lines[1:]] == [
        "[tiny] step 4/16 (25%)", "[tiny] step 8/16 (50%)", "[tiny] step 12/16 (75%)", "[tiny] step 16/16 (100%)"]
    assert "epoch 2/2" in lines[-1] and "margin 0.250" in lines[-1] and "acc 0.750" in lines[-1]
    assert "samples/s" in lines[-1] and "ETA 0:00:00" in lines[-1]


def test_live_bar_on_a_terminal_with_log_records_above_it():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=200, record=True)
    handler = logging.StreamHandler(sys.__stderr__)  # as logging.basicConfig builds it: the terminal's stderr
    logger = logging.getLogger("tests.console")
    logger.addHandler(handler)
    try:
        bar = RunProgressBar("tiny", console=console)
        assert bar.live
        _fit(bar)
    finally:
        logger.removeHandler(handler)
    text = console.export_text()
    assert "a record from step 3" in text  # routed through the live display, not over it
    assert handler.stream is sys.__stderr__  # and handed back afterwards
    final = text.splitlines()[-1]
    assert "tiny" in final and "16/16 steps" in final and "margin 0.250" in final and "acc 0.750" in final


def test_transformers_bars_are_off_only_inside_the_block():
    from transformers.utils import logging as hf_logging

    from zoo.train.console import no_transformers_bars

    assert hf_logging.is_progress_bar_enabled()
    with no_transformers_bars():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
