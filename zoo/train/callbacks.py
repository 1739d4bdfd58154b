"""Lightning callbacks: benchmark evaluation during training; the RNG states in checkpoints.

`EvalCallback` runs a benchmark suite on the module's policy every N optimizer steps with the suite
runner it is given (`benchmarks.suites.run_suite`, built from the config's ``eval.runner``: training
never imports the benchmarks, which sit above it). It logs each numeric metric as
``eval/<task>/<metric>`` (nested metric keys joined with ``/``) to every logger at
``step=global_step``, also puts them in ``trainer.callback_metrics`` (so checkpoint monitors and the
run's ``metrics.json`` see them), and appends the full results to ``<run>/eval_history.jsonl``.

It only runs on global rank zero (other ranks go on and wait at their next collective), uses the
policy in eval mode without gradients and restores its train mode, and saves and restores the
Python/NumPy/torch RNG states around the suite so evaluating does not change the training stream.

`RNGStates` writes those RNG states into every checkpoint and sets them again when a run resumes from
one (with `zoo.train.data.ResumableLoader`'s position, what makes a resumed run end as the uninterrupted
one would have).
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


def rng_states() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and every initialised CUDA device) global RNG states, as plain values
    (lists, numbers, tensors) that a checkpoint holds without pickling NumPy objects."""
    import numpy as np

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": [version, list(internal), gauss],
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    import numpy as np

    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        for device, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


class _RNGState:
    """Save the Python, NumPy and torch (CPU and CUDA) RNG states; restore them on exit."""

    def __enter__(self):
        self.states = rng_states()
        return self

    def __exit__(self, *exc):
        set_rng_states(self.states)
        return False


class RNGStates(L.Callback):
    """Every global RNG state (Python, NumPy, torch CPU and CUDA) in each checkpoint, restored when training
    resumes from it, so dropout and anything else drawing from them go on as in the uninterrupted run.

    The states are taken when the checkpoint is written (after the step's optimizer update) and set again
    at ``on_train_start`` — after everything a resumed run does first (building the model, restoring the
    checkpoint, the sanity check) and before its first training batch. Nothing between a checkpoint and the
    next training batch may draw from them: validation runs the policy in eval mode, and the data loaders
    (`zoo.train.data.ResumableLoader`) and `EvalCallback` leave the global RNGs alone.
    """

    def __init__(self):
        self._resume: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._resume is not None:
            set_rng_states(self._resume)
            self._resume = None


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
