"""Lightning callbacks: benchmark evaluation during training.

`EvalCallback` runs a benchmark suite on the module's policy every N optimizer steps with the suite
runner it is given (`benchmarks.suites.run_suite`, built from the config's ``eval.runner``: training
never imports the benchmarks, which sit above it). It logs each numeric metric as
``eval/<task>/<metric>`` (nested metric keys joined with ``/``) to every logger at
``step=global_step``, also puts them in ``trainer.callback_metrics`` (so checkpoint monitors and the
run's ``metrics.json`` see them), and appends the full results to ``<run>/eval_history.jsonl``.

It only runs on global rank zero (other ranks go on and wait at their next collective), uses the
policy in eval mode without gradients and restores its train mode, and saves and restores the
Python/NumPy/torch RNG states around the suite so evaluating does not change the training stream.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from zoo.results import flatten_metrics, is_number

log = logging.getLogger(__name__)


class _RNGState:
    """Save the Python, NumPy and torch (CPU and CUDA) RNG states; restore them on exit."""

    def __enter__(self):
        import numpy as np

        self.py, self.np, self.cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return self

    def __exit__(self, *exc):
        import numpy as np

        random.setstate(self.py)
        np.random.set_state(self.np)
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        return False


class EvalCallback(L.Callback):
    """Run ``suite`` on ``pl_module.policy`` every ``every_n_steps`` optimizer steps (rank zero).

    ``runner(policy, suite, model_name, limit=, seed=, source=, config=, batch_size=, progress=)`` runs the
    suite and returns a results dict (`zoo.results`); `benchmarks.suites.run_suite` is the one zoo uses.
    ``source`` (e.g. ``{"world": PATH}``) goes to the suite's tasks; ``limit`` caps items per task.
    ``history`` is the JSONL file the results go to (default ``<trainer.default_root_dir>/eval_history.jsonl``).
    """

    def __init__(
        self,
        runner: Callable[..., dict],
        suite: str,
        every_n_steps: int,
        limit: int | None = None,
        source: dict | None = None,
        batch_size: int = 64,
        seed: int = 0,
        history: str | Path | None = None,
        model_name: str = "training",
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be ≥ 1, not {every_n_steps}")
        self.runner, self.suite, self.every_n_steps, self.limit = runner, suite, every_n_steps, limit
        self.source = dict(source or {})
        self.batch_size, self.seed, self.history, self.model_name = batch_size, seed, history, model_name
        self._last_step = -1

    def history_path(self, trainer: L.Trainer) -> Path:
        return Path(self.history) if self.history is not None else Path(trainer.default_root_dir) / "eval_history.jsonl"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # with gradient accumulation this hook runs on every micro-batch: evaluate once per optimizer step
        if step == 0 or step % self.every_n_steps or step == self._last_step:
            return
        self._last_step = step
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        step = trainer.global_step
        policy = pl_module.policy
        was_training = policy.training
        policy.eval()
        try:
            with _RNGState(), torch.no_grad():
                results = self.runner(
                    policy, self.suite, self.model_name, limit=self.limit, seed=self.seed, source=self.source,
                    config={"step": step}, batch_size=self.batch_size, progress=False,
                )
        finally:
            policy.train(was_training)

        metrics = {
            f"eval/{task}/{name}": float(value)
            for task, task_metrics in results["results"].items()
            for name, value in flatten_metrics(task_metrics).items()
            if is_number(value)
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        device = pl_module.device
        trainer.callback_metrics.update({k: torch.tensor(v, device=device) for k, v in metrics.items()})

        path = self.history_path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "epoch": trainer.current_epoch, **results}, sort_keys=True) + "\n")
        log.info("eval at step %d: %s", step, ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
        return results
