"""Data-parallel strategies on CPU processes (gloo): `strategy=ddp` (replicas) and `strategy=fsdp` (FSDP2 shards,
`zoo.train.strategies.FSDP`) with 2 processes of batch 2 end with the same weights as 1 process of batch 4 (the same
global batches), for SFT (uneven token counts per rank: the losses are rescaled by `data_parallel_mean`) and DPO
(cached reference); rank 0 alone writes the run folder; the strategy and precision groups compose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_TEXT, build_tiny_policy
from tests.train.test_sft import tiny_overrides
from zoo.models.distributed import data_parallel_mean, layer_classes, shard_units
from zoo.train.config import compose_config

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3
# AdamW divides by √v + eps: a gradient that cancels to about eps (1e-8) turns the summation order's float32
# roundoff into updates of ~1e-5 (seen: 1.4e-5 on DPO). eps 1e-6 keeps the comparisons about the averaging, not the
# roundoff. Every run compared here uses it.
OPTIMIZER = ["module.optimizer.lr=1e-3", "+module.optimizer.eps=1e-6"]


def train(tmp: Path, recipe: str, processes: int, batch: int, strategy: str, data: Path) -> subprocess.CompletedProcess:
    overrides = [o for o in tiny_overrides(tmp, steps=STEPS) if not o.startswith(("data_root=", "data.batch_size="))]
    overrides += [f"recipe={recipe}", f"data_root={data}", f"data.batch_size={batch}", f"strategy={strategy}",
                  f"trainer.devices={processes}", "trainer.accelerator=cpu", "logger=csv", *OPTIMIZER,
                  "trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "train", *overrides], capture_output=True, text=True,
                          env=env, cwd=tmp, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("recipe", ["sft", "dpo"])
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, recipe):
    data = tmp_path / "data"  # one world for every run
    runs = {}
    for name, processes, batch, strategy in [("one", 1, 4, "auto"), ("ddp", 2, 2, "ddp"), ("fsdp", 2, 2, "fsdp")]:
        (tmp_path / name).mkdir()
        done = train(tmp_path / name, recipe, processes, batch, strategy, data)
        runs[name] = tmp_path / name / "run"
        assert done.stdout.count(f"{recipe} done:") == 1, name  # the summary once, from rank 0
    one = weights(runs["one"])
    # training moved the weights far beyond the tolerance: the last step alone changes them by more than 1e-4
    checkpoint = torch.load(runs["one"] / "checkpoints" / "step-step=2.ckpt", map_location="cpu", weights_only=False)
    earlier = {k.removeprefix("policy.model."): v for k, v in checkpoint["state_dict"].items()
               if k.startswith("policy.model.")}
    assert max_difference(one, {k: earlier[k] for k in one}) > 1e-4
    for name in ("ddp", "fsdp"):
        assert max_difference(one, weights(runs[name])) < 1e-5, name
        metrics = json.loads((runs[name] / "metrics.json").read_text())
        assert metrics["processes"] == 2 and metrics["global_step"] == STEPS
        assert metrics["parameters"] == json.loads((runs["one"] / "metrics.json").read_text())["parameters"]
        assert [p.name for p in (runs[name] / "logs" / "csv").iterdir()] == ["version_0"]  # one log, rank 0's
    assert json.loads((runs["ddp"] / "metrics.json").read_text())["replicas_in_sync"] is True


def test_data_parallel_mean_is_the_mean_itself_on_one_process():
    mean = torch.tensor(2.5, requires_grad=True)
    assert data_parallel_mean(mean, 7) is mean


def test_the_shard_units_are_the_layers_towers_and_embeddings_deepest_first():
    model = build_tiny_policy().model
    names = {c.__name__ for c in layer_classes(model)}
    assert names == {"LlamaDecoderLayer", "Block"}  # the decoder's layers, the timm tower's blocks
    units = shard_units(model)
    named = {m: n for n, m in model.named_modules()}
    unit_names = [named[u] for u in units]
    decoder_layers = [n for n in unit_names if ".layers." in n]
    assert len(decoder_layers) == TINY_TEXT["num_hidden_layers"]
    assert "encoders.image" in unit_names and "projectors.image" in unit_names
    assert {named[model.get_input_embeddings()], named[model.get_output_embeddings()]} <= set(unit_names)
    # a unit inside another comes first (fully_shard bottom-up): the timm tower's blocks before the tower
    assert any(n.startswith("encoders.image.") for n in unit_names)
    for i, inner in enumerate(unit_names):
        for outer in unit_names[:i]:
            assert not inner.startswith(outer + "."), (inner, outer)


def test_strategy_and_precision_groups_compose():
    cfg = compose_config(["recipe=dpo"])
    assert cfg.trainer.strategy == "auto" and cfg.trainer.precision == "32-true"
    cfg = compose_config(["recipe=dpo", "strategy=fsdp", "precision=bf16-mixed"])
    assert cfg.trainer.strategy._target_ == "zoo.train.strategies.FSDP" and cfg.trainer.precision == "bf16-mixed"
    assert compose_config(["recipe=sft", "strategy=ddp"]).trainer.strategy._target_.endswith("DDPStrategy")
    assert compose_config(["recipe=sft", "strategy=deepspeed_zero3"]).trainer.strategy.stage == 3
    assert compose_config(["recipe=sft", "precision=bf16-true"]).trainer.precision == "bf16-true"


def test_two_single_process_nodes_launched_by_torchrun_train_like_one(tmp_path):
    """Multi-node the way clusters launch it: one ``torchrun --nnodes 2 --node-rank R`` per node (here two on
    localhost, one process each; SLURM's srun sets the same environment), ``strategy=ddp trainer.num_nodes=2``.
    Lightning reads the ranks from torchrun's environment; the ranks meet at the master address; rank 0 writes."""
    data = tmp_path / "data"
    (tmp_path / "one").mkdir()
    train(tmp_path / "one", "sft", 1, 4, "auto", data)
    overrides = [o for o in tiny_overrides(tmp_path / "nodes", steps=STEPS)
                 if not o.startswith(("data_root=", "data.batch_size="))]
    overrides += ["recipe=sft", f"data_root={data}", "data.batch_size=2", "strategy=ddp", "trainer.devices=1",
                  "trainer.num_nodes=2", "trainer.accelerator=cpu", "logger=csv", "trainer.enable_progress_bar=false",
                  *OPTIMIZER]
    (tmp_path / "nodes").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = str(29500 + os.getpid() % 1000)
    torchrun = Path(sys.executable).with_name("torchrun")
    nodes = [subprocess.Popen([str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                               "--master-addr", "127.0.0.1", "--master-port", port, "-m", "zoo.cli", "train",
                               *overrides], cwd=tmp_path / "nodes", env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    assert sum(out.count("sft done:") for out, _ in outputs) == 1  # one summary, from global rank 0
    run = tmp_path / "nodes" / "run"
    assert json.loads((run / "metrics.json").read_text())["processes"] == 2
    assert max_difference(weights(tmp_path / "one" / "run"), weights(run)) < 1e-5


def test_an_hf_native_llava_trains_alike_under_ddp_and_fsdp(tmp_path):
    """The llava family's tiny stand-in (a transformers LlavaForConditionalGeneration): SFT with 2 processes under
    `ddp` and `fsdp` ends where 1 process does. Under FSDP2 its vision tower is a unit called through
    `get_image_features`, and transformers' hidden-state capture (keyed by class name, which `fully_shard` changes)
    must still reach it."""
    from zoo.models.native import NativeBackbone, make_tiny_native
    from zoo.models.policy import Policy

    model_dir = tmp_path / "llava"
    Policy(NativeBackbone(*make_tiny_native("llava"))).backbone.save_pretrained(model_dir)
    world = ["data.world_config.n_train=30", "data.world_config.n_test=8", "data.world_config.n_trigger=4",
             "data.world_config.n_pairs=16", "data.world_config.n_ranked=8"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, processes, batch, strategy in [("one", 1, 4, ["strategy=auto"]),
                                             ("ddp", 2, 2, ["strategy=ddp",  # LLaVA's last tower layer is unused
                                                            "trainer.strategy.find_unused_parameters=true"]),
                                             ("fsdp", 2, 2, ["strategy=fsdp"])]:
        run = tmp_path / name / "run"
        done = subprocess.run(
            [sys.executable, "-m", "zoo.cli", "train", "recipe=sft", "model=pretrained", f"model.path={model_dir}",
             *world, f"output_dir={run}", f"data_root={tmp_path / 'data'}", f"trainer.max_steps={STEPS}",
             "trainer.val_check_interval=null", "data.val_split=null", f"data.batch_size={batch}",
             f"trainer.devices={processes}", "trainer.accelerator=cpu", *strategy, "logger=csv",
             "trainer.enable_progress_bar=false", *OPTIMIZER, "module.warmup_steps=1"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = weights(run)
    for name in ("ddp", "fsdp"):
        assert max_difference(runs["one"], runs[name]) < 1e-5, name
