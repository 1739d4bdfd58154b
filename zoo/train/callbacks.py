"""Lightning callbacks: benchmark evaluation during training; the RNG states in checkpoints; the run's progress bar.

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
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.callbacks.progress import ProgressBar

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


def batch_size(batch: Any) -> int:
    """The number of examples in a training batch: a token batch's rows (``input_ids``), a typed batch's
    ``len`` (a pair batch counts its pairs), else what Lightning infers from the first tensor."""
    if isinstance(batch, Mapping) and "input_ids" in batch:
        return int(batch["input_ids"].shape[0])
    if hasattr(batch, "__len__") and not isinstance(batch, (Mapping, list, tuple)):
        return len(batch)
    from lightning.pytorch.utilities.data import extract_batch_size

    return int(extract_batch_size(batch))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunProgressBar(ProgressBar):
    """One bar for the whole run: global step / total steps (``max_steps``, or Lightning's estimate from
    ``max_epochs`` and the loader's length), the run's elapsed time and ETA, samples per second, and the
    metrics in `SHOWN` (the loss, the validation loss, for preference runs the reward margin and accuracy, and for
    policy-gradient runs the judge's mean reward and the KL: their loss is ≈ 0 by construction at one update per sample)
    plus anything a module logs with ``prog_bar=True``.

    On a terminal it is a rich live display (with a transient bar while validating); log records and
    warnings printed meanwhile go above it. Elsewhere (a pipe, a file, CI) it prints plain lines: one every
    ``total / lines`` steps, one at least every ``heartbeat_s`` seconds, and the last step's — not a redraw
    per step. A resumed run starts the bar at its global step; the rates count this attempt only.
    """

    SHOWN: ClassVar[dict[str, str]] = {"train/loss": "loss", "val/loss": "val_loss",
             "train/rewards/margin": "margin", "train/rewards/accuracy": "acc",
             "train/pg/reward": "reward", "train/pg/kl": "kl"}

    def __init__(self, description: str = "train", console: Any = None, lines: int = 20,
                 heartbeat_s: float = 60.0, window_s: float = 30.0):
        super().__init__()
        if lines < 1:
            raise ValueError(f"lines must be ≥ 1, not {lines}")
        self.description, self.lines, self.heartbeat_s, self.window_s = description, lines, heartbeat_s, window_s
        self._console = console
        self._enabled = True
        self._progress = None  # the rich Progress while it is live, its run task and validation task
        self._task = self._val_task = None
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []
        self._total: int | None = None
        self._start_step, self._t0, self._samples, self._rate = 0, time.monotonic(), 0, None

    # -- Lightning's ProgressBar interface --------------------------------------------------------------------
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        return self._console

    @property
    def live(self) -> bool:
        """A live display (a terminal), or plain lines."""
        return self.console.is_terminal and not self.console.is_dumb_terminal

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.console.print(*args, **kwargs)
        else:
            print(*args, file=self.console.file, flush=True, **kwargs)

    # -- the numbers ------------------------------------------------------------------------------------------
    def stats(self, trainer: L.Trainer) -> dict[str, str]:
        """What the bar shows beside the steps, formatted: samples/s, then the metrics."""
        shown: dict[str, str] = {}
        if self._rate is not None:
            shown["samples/s"] = f"{self._rate:.1f}"
        if trainer.max_steps <= 0 and trainer.max_epochs and trainer.max_epochs > 0:
            shown["epoch"] = f"{min(trainer.current_epoch + 1, trainer.max_epochs)}/{trainer.max_epochs}"
        metrics = {**trainer.callback_metrics, **trainer.progress_bar_metrics}
        names = [*self.SHOWN, *(k for k in trainer.progress_bar_metrics if k not in self.SHOWN)]
        for name in names:
            value = metrics.get(name)
            if value is None:
                continue
            value = float(value.item() if hasattr(value, "item") else value)
            shown[self.SHOWN.get(name, name)] = f"{value:.3f}" if abs(value) < 1e4 else f"{value:.3g}"
        return shown

    def _update_rate(self, now: float) -> None:
        """Samples per second over the last ``window_s`` seconds (the whole attempt until then)."""
        self._window.append((now, self._samples))
        while len(self._window) > 2 and now - self._window[1][0] >= self.window_s:
            self._window.popleft()
        (t0, s0), (t1, s1) = self._window[0], self._window[-1]
        self._rate = (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def _eta(self, step: int, now: float) -> float | None:
        done = step - self._start_step
        if self._total is None or done <= 0:
            return None
        return (self._total - step) * (now - self._t0) / done

    # -- training ---------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here the train loader exists and a resumed run's position is restored: estimating is safe now
        total = trainer.estimated_stepping_batches
        self._total = int(total) if math.isfinite(total) and total > 0 else None
        self._start_step = trainer.global_step
        self._t0 = time.monotonic()
        self._samples, self._rate = 0, None
        self._window: deque[tuple[float, int]] = deque([(self._t0, 0)])
        self._every = max(1, math.ceil(self._total / self.lines)) if self._total else 50
        self._last_line_step, self._last_line_time = self._start_step, self._t0
        if not self._enabled:
            return
        if self.live:
            self._start_live(run_task=True)
        else:
            of = f"{self._start_step}/{self._total}" if self._total else str(self._start_step)
            self.print(f"[{self.description}] step {of} · starting" +
                       (f" (resumed at step {self._start_step})" if self._start_step else ""))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._samples += batch_size(batch)
        now = time.monotonic()
        self._update_rate(now)
        if not self._enabled:
            return
        step = trainer.global_step
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=self._stats_text(trainer))
        elif (step - self._last_line_step >= self._every or now - self._last_line_time >= self.heartbeat_s) \
                and step not in (self._last_line_step, self._total):  # the last step's line waits for its validation
            self._line(trainer, step, now)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled:
            return
        step = trainer.global_step
        if self._progress is not None:
            self._progress.update(self._task, completed=step, stats=self._stats_text(trainer))
            self._stop_live()
        elif step != self._last_line_step:
            self._line(trainer, step, time.monotonic())

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._stop_live()  # the traceback is printed below the bar, not through it

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stop_live()

    def _line(self, trainer: L.Trainer, step: int, now: float) -> None:
        of = f"{step}/{self._total} ({100 * step / self._total:.0f}%)" if self._total else str(step)
        parts = [f"[{self.description}] step {of}", f"{_duration(now - self._t0)} elapsed",
                 f"ETA {_duration(self._eta(step, now))}"]
        parts += [f"{k} {v}" for k, v in self.stats(trainer).items()]
        self.print(" · ".join(parts))
        self._last_line_step, self._last_line_time = step, now

    # -- validation: a transient bar on a terminal ------------------------------------------------------------
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and self.live:
            self._start_live(run_task=False)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self._progress is None:
            return
        if self.has_dataloader_changed(dataloader_idx) and self._val_task is not None:
            self._progress.remove_task(self._val_task)  # the next validation loader gets its own bar
            self._val_task = None
        if self._val_task is None:
            total = self.total_val_batches_current_dataloader
            label = "sanity check" if trainer.sanity_checking else "validate"
            self._val_task = self._progress.add_task(label, total=total if math.isfinite(total) else None,
                                                     stats="", unit="batches")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._progress is not None and self._val_task is not None:
            self._progress.advance(self._val_task)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reset_dataloader_idx_tracker()
        if self._progress is not None and self._val_task is not None:
            self._progress.remove_task(self._val_task)
            self._val_task = None
            if self._task is not None:
                self._progress.update(self._task, stats=self._stats_text(trainer))

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_live()  # restarted at on_train_start with the run's bar

    # -- the live display -------------------------------------------------------------------------------------
    def _stats_text(self, trainer: L.Trainer) -> str:
        now = time.monotonic()
        return " · ".join([f"ETA {_duration(self._eta(trainer.global_step, now))}",
                           *(f"{k} {v}" for k, v in self.stats(trainer).items())])

    def _start_live(self, run_task: bool) -> None:
        if self._progress is not None:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"), console=self.console, refresh_per_second=4,
        )
        self._progress.start()
        self._route_log_handlers()
        if run_task:
            self._task = self._progress.add_task(self.description, total=self._total, completed=self._start_step,
                                                 stats="", unit="steps")

    def _stop_live(self) -> None:
        if self._progress is None:
            return
        self._restore_log_handlers()
        self._progress.stop()
        self._progress, self._task, self._val_task = None, None, None

    def _route_log_handlers(self) -> None:
        """Log handlers that write to the terminal's stdout or stderr write through the live display while it
        runs (it redirects ``sys.stdout`` / ``sys.stderr``; a handler keeps the stream it was built with)."""
        originals = {id(sys.__stdout__): sys.stdout, id(sys.__stderr__): sys.stderr}
        loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                          if isinstance(lg, logging.Logger))]
        for logger in loggers:
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler and id(handler.stream) in originals:
                    proxy = originals[id(handler.stream)]
                    if proxy is not handler.stream:
                        self._swapped.append((handler, handler.setStream(proxy)))

    def _restore_log_handlers(self) -> None:
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []
