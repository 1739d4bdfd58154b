"""The run's experiment loggers: built from the config's ``logger`` group, finished, and described.

``recipes/logger/`` holds the options (``logger=tensorboard`` is the default; ``csv``, ``mlflow``, ``wandb``;
several at once with ``logger=[tensorboard,wandb]``). Each entry of the composed ``logger`` mapping is one
Lightning logger; every option keeps the CSV logger, the local record that ``zoo plot`` and ``zoo demo`` read.
Every attempt of a run logs anew: CSV and TensorBoard start a new ``version_N`` folder, MLflow and W&B a
new run, so a resumed run keeps the logs of the attempts before it.

MLflow and W&B are optional extras (``pip install 'zoo[mlflow]'``, ``'zoo[wandb]'``): their factories here
check for the package first and say which extra to install. By default both stay inside the run folder
and off the network: MLflow writes a SQLite store (``logs/mlflow.db``), W&B runs offline
(``logs/wandb/offline-run-*``).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig


class MissingExtraError(ImportError):
    """An optional logger whose package is not installed: names the extra that installs it."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _require(modules: tuple[str, ...], logger: str, extra: str, why: str = "") -> None:
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise MissingExtraError(f"logger={logger}{why} needs {' and '.join(missing)} (not installed): "
                                f"pip install 'zoo[{extra}]'")


def mlflow_logger(tracking_uri: str, artifact_location: str | None = None, telemetry: bool = False, **kwargs: Any):
    """Lightning's `MLFlowLogger` on ``tracking_uri``; a SQLite store's folder is created first, and a plain
    ``artifact_location`` path becomes an absolute ``file://`` URI (MLflow would resolve it against the cwd).
    ``telemetry=False`` turns off MLflow's usage telemetry (``MLFLOW_DISABLE_TELEMETRY``), which would otherwise
    reach for the network even with a local store."""
    _require(("mlflow",), "mlflow", "mlflow")
    if not telemetry:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        from mlflow.telemetry.client import set_telemetry_client

        set_telemetry_client()  # MLflow decided at import: decide again
    if tracking_uri.startswith(("sqlite:", "postgresql:", "mysql:", "mssql:")):
        _require(("sqlalchemy", "alembic"), "mlflow", "mlflow", " with a database store")
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if artifact_location and "://" not in artifact_location:
        artifact_location = Path(artifact_location).resolve().as_uri()
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(tracking_uri=tracking_uri, artifact_location=artifact_location, **kwargs)


def wandb_logger(save_dir: str, offline: bool = True, settings: dict | None = None, **kwargs: Any):
    """Lightning's `WandbLogger`, offline unless told otherwise (``offline`` is W&B's ``mode="offline"``:
    nothing leaves the machine; ``wandb sync`` uploads the run later). ``settings`` are `wandb.Settings` fields."""
    _require(("wandb",), "wandb", "wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)  # W&B falls back to a temp folder for a missing one
    logger = WandbLogger(save_dir=save_dir, offline=offline, settings=wandb.Settings(**(settings or {})), **kwargs)
    init = getattr(logger, "_wandb_init", {})
    if "anonymous" in init and init["anonymous"] is None:  # Lightning always passes it; W&B warns it is deprecated
        del init["anonymous"]
    return logger


def build_loggers(cfg: DictConfig | None) -> dict[str, Any]:
    """The configured loggers by their name in the config (``{}`` for ``logger=null``); an entry set to null
    (``logger.csv=null``) is left out. Building one opens nothing: MLflow and W&B start their run when first used."""
    from hydra.utils import instantiate

    return {name: instantiate(entry) for name, entry in (cfg or {}).items() if entry is not None}


def finish_loggers(loggers: dict[str, Any], failed: bool = False) -> None:
    """End what Lightning leaves open: a W&B run stays active in the process until `finish` (and the next
    `wandb.init` would join it instead of starting the next attempt's run). MLflow runs are ended by Lightning."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers.values():
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)


def describe_loggers(loggers: dict[str, Any], run_dir: str | Path) -> dict[str, dict[str, str]]:
    """For each logger, where this attempt's logs are (``path``) and the command that shows them (``view``).
    Call it after training, before `finish_loggers` (a W&B run's folder is known once it has started)."""
    from lightning.pytorch.loggers import (
        CSVLogger,
        MLFlowLogger,
        TensorBoardLogger,
        WandbLogger,
    )

    described: dict[str, dict[str, str]] = {}
    for name, logger in loggers.items():
        if isinstance(logger, CSVLogger):
            entry = {"path": str(Path(logger.log_dir) / "metrics.csv"), "view": f"zoo plot {shlex.quote(str(run_dir))}"}
        elif isinstance(logger, TensorBoardLogger):
            entry = {"path": str(logger.log_dir), "view": f"tensorboard --logdir {shlex.quote(str(logger.save_dir))}"}
        elif isinstance(logger, MLFlowLogger):
            uri = logger._tracking_uri
            entry = {"path": f"{uri} (experiment {logger._experiment_name}, run {logger.run_id})",
                     "view": f"mlflow ui --backend-store-uri {shlex.quote(uri)}" if not uri.startswith("http") else uri}
        elif isinstance(logger, WandbLogger):
            run = logger.experiment
            folder = Path(run.dir).parent  # .../offline-run-<time>-<id>/files → the run's folder
            offline = bool(run.offline)
            quoted = shlex.quote(str(folder))
            entry = {"path": str(folder),
                     "view": f"wandb leet {quoted} · upload: wandb sync {quoted}" if offline else str(run.url)}
        else:
            entry = {"path": str(getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None) or "–"),
                     "view": ""}
        described[name] = entry
    return described
