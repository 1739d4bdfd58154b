"""The `logger=` group: every option composes and keeps the CSV log; MLflow and W&B (offline) runs of a tiny
real training read back with their own libraries; a missing optional package names its extra."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from tests.train.test_sft import tiny_overrides
from zoo.train.run import compose_config, train


@pytest.mark.parametrize("option, entries", [
    ("tensorboard", {"csv", "tensorboard"}), ("csv", {"csv"}), ("mlflow", {"csv", "mlflow"}),
    ("wandb", {"csv", "wandb"}), ("[tensorboard,wandb]", {"csv", "tensorboard", "wandb"}),
])
def test_logger_options_compose_and_keep_the_csv_log(option, entries):
    cfg = compose_config([f"logger={option}", "output_dir=runs/x"])
    assert set(cfg.logger) == entries
    assert cfg.logger.csv.save_dir == "runs/x/logs" and cfg.logger.csv.name == "csv"  # what zoo plot reads
    assert set(compose_config([]).logger) == {"csv", "tensorboard"}  # the default
    if "mlflow" in entries:
        assert cfg.logger.mlflow.tracking_uri == "sqlite:///runs/x/logs/mlflow.db"  # inside the run folder
    if "wandb" in entries:
        assert cfg.logger.wandb.offline is True and cfg.logger.wandb.save_dir == "runs/x/logs"


def test_a_missing_logger_package_names_its_extra(tmp_path, monkeypatch, capsys):
    from zoo.cli import main
    from zoo.train import loggers

    monkeypatch.setattr(loggers, "_installed", lambda module: module not in ("wandb", "alembic"))
    with pytest.raises(loggers.MissingExtraError, match=r"^logger=wandb needs wandb \(not installed\): "
                                                         r"pip install 'zoo\[wandb\]'$"):
        loggers.wandb_logger(save_dir=str(tmp_path))
    with pytest.raises(loggers.MissingExtraError, match=r"database store needs alembic .*'zoo\[mlflow\]'"):
        loggers.mlflow_logger(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")

    assert main(["train", *tiny_overrides(tmp_path), "logger=wandb"]) == 2  # before any model or data is built
    err = capsys.readouterr().err.strip()
    assert err == "zoo train: logger=wandb needs wandb (not installed): pip install 'zoo[wandb]'"
    assert not (tmp_path / "data").exists()


def test_mlflow_run_reads_back_with_mlflows_client(tmp_path, monkeypatch, capsys):
    """A local SQLite store in the run folder; params are the resolved config, metrics have their history; a
    resumed attempt is a new MLflow run beside the first."""
    import mlflow

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (MLflow's default ./mlruns)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    metrics = train(compose_config([*tiny_overrides(tmp_path), "logger=mlflow", "trainer.log_every_n_steps=1"]))
    run_dir = tmp_path / "run"
    uri = f"sqlite:///{run_dir}/logs/mlflow.db"
    assert (run_dir / "logs" / "mlflow.db").is_file() and not (tmp_path / "mlruns").exists()
    assert (run_dir / "logs" / "csv" / "version_0" / "metrics.csv").is_file()  # kept for zoo plot
    assert metrics["logs"]["mlflow"]["view"] == f"mlflow ui --backend-store-uri {uri}"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"  # the config's telemetry: false

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("zoo")
    assert experiment.artifact_location == (run_dir / "logs" / "mlflow-artifacts").as_uri()
    (first,) = client.search_runs([experiment.experiment_id])
    assert first.info.status == "FINISHED" and first.info.run_name == "sft"
    assert first.info.run_id in metrics["logs"]["mlflow"]["path"]
    params = first.data.params
    assert params["recipe_name"] == "sft" and params["trainer/max_steps"] == "4"
    assert params["module/_target_"] == "zoo.train.modules.SFTModule"
    history = client.get_metric_history(first.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]
    assert first.data.metrics["train/loss"] == pytest.approx(metrics["train/loss"])
    assert first.data.metrics["val/loss"] == pytest.approx(metrics["val/loss"])

    capsys.readouterr()
    train(compose_config([*tiny_overrides(tmp_path, steps=6, ckpt_path="last"), "logger=mlflow",
                               "trainer.log_every_n_steps=1"]))
    assert "[sft] step 4/6 · starting (resumed at step 4)" in capsys.readouterr().out
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["zoo"], order_by=["attributes.start_time ASC"])
    assert runs["run_id"].iloc[0] == first.info.run_id and len(runs) == 2  # one MLflow run per attempt
    assert list(runs["status"]) == ["FINISHED", "FINISHED"]
    resumed = runs.iloc[1]["run_id"]
    assert sorted(m.step for m in client.get_metric_history(resumed, "train/loss")) == [4, 5]


def wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (``run-<id>.wandb``): a 7-byte file header (``:W&B``, magic,
    version), then 32 KiB blocks of chunks (CRC, length, type: full / first / middle / last), each record a
    ``wandb_internal_pb2.Record``. wandb 0.31 reads these files only in its Go core (`wandb sync`, `wandb leet`),
    so the framing is read here and every record with wandb's own protobuf class."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block, pos, chunks, records = 32 * 1024, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += block - pos % block
            continue
        chunks += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def test_wandb_offline_run_reads_back_from_its_files(tmp_path, monkeypatch):
    """Offline from the config alone (no WANDB_MODE, no API key in the environment): the run's transaction log in
    the run folder holds the run, the resolved config, every logged step and a clean exit."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    metrics = train(compose_config([*tiny_overrides(tmp_path), "logger=wandb", "trainer.log_every_n_steps=1"]))
    run_dir = tmp_path / "run"
    (folder,) = (run_dir / "logs" / "wandb").glob("offline-run-*")
    assert metrics["logs"]["wandb"]["path"] == str(folder)
    assert metrics["logs"]["wandb"]["view"].startswith(f"wandb leet {folder}")
    assert not (tmp_path / "wandb").exists()  # nothing outside the run folder

    records = wandb_records(next(folder.glob("run-*.wandb")))
    kinds = [r.WhichOneof("record_type") for r in records]
    run = records[kinds.index("run")].run
    assert run.project == "zoo" and run.display_name == "sft" and folder.name.endswith(run.run_id)
    config = {item.key: json.loads(item.value_json) for r in records if r.HasField("config") for item in r.config.update}
    assert config["recipe_name"] == "sft" and config["trainer"]["max_steps"] == 4
    history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
               for r in records if r.HasField("history")]
    losses = {h["trainer/global_step"]: h["train/loss"] for h in history if "train/loss" in h}
    assert sorted(losses) == [0, 1, 2, 3]
    assert losses[3] == pytest.approx(metrics["train/loss"])
    assert any(h.get("val/loss") == pytest.approx(metrics["val/loss"]) for h in history)
    assert records[kinds.index("exit")].exit.exit_code == 0
