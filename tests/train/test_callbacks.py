"""EvalCallback: a benchmark suite every N steps, logged to the CSV log and eval_history.jsonl."""

from __future__ import annotations

import csv
import json

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from benchmarks.suites import run_suite
from tests.benchmarks.test_suites import fake_suite  # noqa: F401  (fixture)
from tests.conftest import build_tiny_policy
from zoo.train.callbacks import EvalCallback


class TinyModule(L.LightningModule):
    """Wraps a policy (which the callback evaluates); trains one scalar with a noisy loss."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.modes: list[bool] = []
        self.noise: list[float] = []

    def training_step(self, batch, batch_idx):
        self.modes.append(self.policy.training)
        noise = torch.rand(1)  # the callback must not change this stream
        self.noise.append(float(noise))
        loss = ((self.w - batch) ** 2).mean() + noise.sum() * 0
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD([self.w], lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.arange(16, dtype=torch.float32).unsqueeze(1), batch_size=2)


def _fit(tmp_path, policy, callbacks):
    torch.manual_seed(0)
    policy.train()  # Lightning keeps each submodule's mode; the callback must hand train mode back
    module = TinyModule(policy)
    trainer = L.Trainer(
        max_steps=4, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path / "logs", name="csv"),
        callbacks=callbacks, default_root_dir=tmp_path, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1,
    )
    trainer.fit(module)
    return trainer, module


@pytest.fixture(scope="module")
def policy():
    return build_tiny_policy()


def test_eval_callback_logs_every_n_steps(tmp_path, fake_suite, policy, tiny_world):  # noqa: F811
    callback = EvalCallback(run_suite, fake_suite, every_n_steps=2, limit=2, source={"world": str(tiny_world)},
                            batch_size=2)
    trainer, module = _fit(tmp_path, policy, [callback])

    rows = list(csv.DictReader((tmp_path / "logs" / "csv" / "version_0" / "metrics.csv").open()))
    evals = [r for r in rows if r.get("eval/fake-count/n_replies")]
    assert [int(r["step"]) for r in evals] == [2, 4]
    assert {r["eval/fake-count/n_replies"] for r in evals} == {"2.0"}
    assert {r["eval/fake-two/by_kind/nonempty"] != "" for r in evals} == {True}
    assert "eval/fake-count/note" not in rows[0]  # text metrics are not logged
    assert any(r.get("train/loss") for r in rows)
    assert float(trainer.callback_metrics["eval/fake-two/n_replies"]) == 2.0

    history = [json.loads(line) for line in (tmp_path / "eval_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4]
    assert history[0]["suite"] == fake_suite and history[0]["config"]["step"] == 2
    assert history[0]["results"]["fake-count"]["n_replies"] == 2
    assert history[0]["results"] == history[1]["results"]  # the policy is not trained, so the same replies

    assert module.modes == [True] * 4  # train mode restored after each evaluation
    _, plain = _fit(tmp_path / "plain", policy, [])
    assert plain.noise == module.noise  # evaluation leaves the RNG stream of training alone
    policy.eval()


def test_eval_callback_rejects_bad_interval():
    with pytest.raises(ValueError, match="every_n_steps"):
        EvalCallback(run_suite, "x", every_n_steps=0)
