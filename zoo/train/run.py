"""The training entry point: compose the Hydra config, instantiate the parts, fit, write the run folder.

Run folder: ``model/`` (a loadable model: weights, config, processor), ``recipe.yaml`` (the resolved
config), ``checkpoints/`` (Lightning; resume with ``ckpt_path=last``), ``logs/`` (the ``logger`` group's
loggers, `zoo.train.loggers`: CSV always, TensorBoard by default, or MLflow / W&B) and ``metrics.json``
(which also records where this attempt's logs are and how to view them, under ``logs``). A checkpoint holds the data loader's position in its epoch and every
global RNG state, so a run resumed from one (even one killed mid-epoch) ends with the weights the
uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo.train.config import compose_config  # noqa: F401  (the entry point's composer, re-exported)
from zoo.train.validate import ConfigError, validate_config

log = logging.getLogger(__name__)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def pin_world(cfg: DictConfig) -> None:
    """Fill ``data.world_config`` with every setting of the run's world folder, so ``recipe.yaml`` records the
    world the run read: the folder's ``world.json`` when it exists (a setting asked for that differs from it is
    an error, never a regeneration), else the world's defaults with the settings asked for."""
    from modalities.synthetic import resolve_world_config

    data = cfg.get("data")
    if data is None or not data.get("world"):
        return
    folder = data.get("media_root") or data.path  # BDHS reads its prompts from the world as its media root
    try:
        full = resolve_world_config(data.world, folder, OmegaConf.to_container(data.world_config, resolve=True)
                                    if data.get("world_config") is not None else None)
    except (ValueError, KeyError) as e:
        raise ConfigError(str(e.args[0] if e.args else e)) from None
    with open_dict(cfg):
        cfg.data.world_config = full


def is_global_zero() -> bool:
    """Whether this process writes the run folder: the only one, or rank 0 of a multi-process run. Lightning's
    launcher starts ranks 1… by running the command again (``LOCAL_RANK`` etc. set), so this holds before the
    trainer exists."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured recipe; returns the metrics also written to ``metrics.json``."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from zoo.train.console import (
        ignore_known_warnings,
        no_transformers_bars,
        route_lightning_logs,
    )
    from zoo.train.loggers import build_loggers, describe_loggers, finish_loggers

    route_lightning_logs()  # each Lightning log line once
    ignore_known_warnings()
    validate_config(cfg)  # one clear line for a field that cannot be right, before anything is built
    pin_world(cfg)
    out = Path(cfg.output_dir)
    checkpoints = out / "checkpoints"
    first = is_global_zero()  # False: another rank of a multi-process run (ddp); rank 0 makes the run folder
    if first and cfg.ckpt_path is None and checkpoints.exists() and any(checkpoints.iterdir()):
        if not cfg.get("overwrite", False):
            raise FileExistsError(
                f"{out} already holds checkpoints: resume with ckpt_path=last, start over with overwrite=true, "
                "or choose another output_dir"
            )
        shutil.rmtree(checkpoints)
    out.mkdir(parents=True, exist_ok=True)
    if first:
        _atomic_write(out / "recipe.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    # a new version_N (CSV, TensorBoard) or run (MLflow, W&B) per attempt: a resumed run keeps the earlier logs.
    # Built first: a missing optional package (zoo[mlflow], zoo[wandb]) is said before anything is built
    loggers = build_loggers(cfg.get("logger"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    policy = instantiate(cfg.model)
    module = instantiate(cfg.module, policy=policy)
    datamodule = instantiate(cfg.data)
    pairs = getattr(module, "pairs", None)
    if pairs is not None:  # preference training: the source may make its data first (offline BDHS, resumable)
        pairs.prepare(policy)
        datamodule.attach(policy.processor, collate=pairs.collate)
    else:
        datamodule.attach(policy.processor)
    from zoo.train.callbacks import RNGStates, RunProgressBar

    callbacks = [
        RNGStates(),  # with the data loader's position (zoo.train.data.ResumableLoader): exact resume
        ModelCheckpoint(dirpath=checkpoints, filename="step-{step}", save_last=True,
                        every_n_train_steps=cfg.checkpoint_every, save_top_k=-1),
    ]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))  # it refuses to run without a logger
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(RunProgressBar(description=str(cfg.get("recipe_name", "train"))))
    if cfg.get("eval") and cfg.eval.suite:
        from zoo.train.callbacks import EvalCallback

        source = {"world": str(cfg.data.path)} if cfg.data.get("world") else None
        runner = instantiate(cfg.eval.runner)  # from the config: zoo.train never imports benchmarks
        callbacks.append(EvalCallback(runner, suite=cfg.eval.suite, every_n_steps=cfg.eval.every_n_steps,
                                      limit=cfg.eval.limit, source=source))
    trainer = instantiate(cfg.trainer, default_root_dir=str(out), callbacks=callbacks,
                          logger=list(loggers.values()) or False)
    for logger in loggers.values():  # the resolved config as the run's parameters (MLflow params, W&B config …)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except BaseException:
        finish_loggers(loggers, failed=True)
        raise
    seconds = time.perf_counter() - start
    processes = {}
    from zoo.models.distributed import full_state_dict, is_sharded, replica_digests

    # strategy=fsdp: the whole weights gathered for rank 0 to write (a collective: every rank)
    state = full_state_dict(module) if is_sharded(policy.model) else None
    if trainer.world_size > 1 and state is None:  # replicas (ddp) must end with the same weights (a collective)
        digests = replica_digests(policy)
        processes = {"replicas_in_sync": len(set(digests)) == 1}
        if not processes["replicas_in_sync"]:
            log.warning("the %d processes ended with different weights: %s", trainer.world_size, digests)
    logs = describe_loggers(loggers, out)
    finish_loggers(loggers)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.update(
        global_step=int(trainer.global_step),
        train_seconds=round(seconds, 2),
        parameters=sum(p.numel() for p in policy.parameters()),
        data=datamodule.skip_summary(),
        logs=logs,
        processes=trainer.world_size,
        **processes,
    )
    if not trainer.is_global_zero:  # one run folder: rank 0 writes the model and metrics.json
        return metrics
    with no_transformers_bars():  # save_pretrained's "Writing model shards" bar
        module.save_model(out / "model", state_dict=state)
    _atomic_write(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
