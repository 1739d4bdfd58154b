"""Multi-process online sampling: under `trainer.strategy=ddp` each rank samples its own share of the global
batch, from its own generator, and the replicas end with the same weights; the loaders' rank split; the
sampling seed of (seed, step, rank); generation under sharded parameters (`gathered_for_generation`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.train.test_sft import tiny_overrides
from zoo.align.judges import VerifierJudge
from zoo.align.pairs.online import RANK_STRIDE, OnlineDPOPairs, sampling_seed
from zoo.models.distributed import (
    gathered_for_generation,
    process_count,
    process_rank,
    replica_digests,
)
from zoo.train.data import EpochBatches

ROOT = Path(__file__).resolve().parents[2]


def read_records(folder: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (folder / f"rank{rank}.jsonl").read_text().splitlines()]


def test_two_ddp_processes_sample_their_own_prompts_and_stay_in_sync(tmp_path):
    """`zoo train recipe=online_dpo trainer.strategy=ddp trainer.devices=2` on 2 CPU processes (gloo): each step,
    the ranks' sampled prompts are disjoint and together are the one-process global batch of 2 × 2; their
    generators differ (rank 0's is the one-process stream); rank 0 alone writes the run folder; both replicas
    end with the same weights. Lightning's launcher runs the command line again for rank 1: a subprocess."""
    steps, batch = 3, 2
    record = tmp_path / "run" / "online"
    overrides = ["recipe=online_dpo", *tiny_overrides(tmp_path, steps=steps), "module.pairs.k=2",
                 "module.pairs.max_new_tokens=4", f"data.batch_size={batch}", "trainer.strategy=ddp",
                 "trainer.devices=2", "trainer.accelerator=cpu", "logger=csv", "trainer.enable_progress_bar=false",
                 f"module.pairs.record={record}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "train", *overrides], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("online_dpo done:") == 1  # the summary once, from rank 0

    ranks = [read_records(record, r) for r in (0, 1)]
    assert [[line["step"] for line in lines] for lines in ranks] == [list(range(steps))] * 2
    assert all(line["rank"] == r for r, lines in enumerate(ranks) for line in lines)
    # the one-process global batches of batch_size × 2 (every pair row encodes: 16 groups of K = 2)
    n_pairs = 16
    expected = EpochBatches([2] * n_pairs, batch * 2, shuffle=True, seed=0).batches(0)
    for step in range(steps):
        mine, theirs = (set(lines[step]["examples"]) for lines in ranks)
        assert len(mine) == len(theirs) == batch and not mine & theirs, step
        assert mine | theirs == {f"pairs[{i}]" for i in expected[step]}, step
        assert ranks[0][step]["seed"] == step  # rank 0: the one-process stream of seed 0 (0 · 1_000_003 + step)
        assert ranks[1][step]["seed"] != ranks[0][step]["seed"]
        assert all(len(scores) == 2 for lines in ranks for scores in lines[step]["scores"])

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == steps and metrics["processes"] == 2
    assert metrics["replicas_in_sync"] is True  # every rank's weights hashed after fit: DDP kept them equal
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert sorted(p.name for p in record.iterdir()) == ["rank0.jsonl", "rank1.jsonl"]


def test_the_sampling_seed_depends_on_the_rank_and_rank_0_is_the_one_process_stream():
    for seed, step in [(0, 0), (0, 7), (3, 7), (123, 10_000)]:
        assert sampling_seed(seed, step) == sampling_seed(seed, step, rank=0) == seed * 1_000_003 + step
        seeds = [sampling_seed(seed, step, rank) for rank in range(4)]
        assert len(set(seeds)) == 4
        draws = [torch.rand(8, generator=torch.Generator().manual_seed(s)) for s in seeds]
        assert not any(torch.equal(draws[0], d) for d in draws[1:])
    # rank r's stream is rank 0's at step + r · stride (mod 2³², all torch reads): far from any step of a run
    gaps = [(r * RANK_STRIDE) % 2**32 for r in range(1, 1024)]
    assert min(min(g, 2**32 - g) for g in gaps) >= 2**20
    assert process_rank() == 0 and process_count() == 1  # no process group here


@pytest.mark.parametrize("rank", [0, 1])
def test_the_online_source_samples_from_its_ranks_generator_and_records_it(rank, tiny_policy, tiny_world, tmp_path,
                                                                           monkeypatch):
    """`OnlineDPOPairs.__call__` seeds its generator from (seed, step, rank): on rank 0 exactly as a single process
    does; the record names the rank, its examples and their K scores."""
    from zoo.align.pairs import online
    from zoo.data.batches import ExampleBatch
    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows
    from zoo.models.policy import Generation

    rows = read_rows(tiny_world, "pairs")[:2]
    encoder = ExampleEncoder(tiny_policy.processor, max_length=128, media_root=tiny_world)
    groups = [encoder.encode_group(r, f"pairs[{i}]") for i, r in enumerate(rows)]
    eos = tiny_policy.tokenizer.eos_token_id
    seen = []

    def fake_generate(self, batch, k, generator=None, **kw):
        seen.append(generator.initial_seed())
        return Generation([[5, eos]] * (2 * k), ["The x."] * (2 * k), [True] * (2 * k))

    monkeypatch.setattr(type(tiny_policy), "generate_group", fake_generate, raising=True)
    monkeypatch.setattr(online, "process_rank", lambda: rank)
    source = OnlineDPOPairs(VerifierJudge(), source=str(tiny_world), split="pairs", k=3, seed=5,
                            record=str(tmp_path / "online"))
    source(tiny_policy, ExampleBatch(groups), step=4)
    assert seen == [5 * 1_000_003 + 4 + rank * RANK_STRIDE]
    assert (seen[0] == 5 * 1_000_003 + 4) == (rank == 0)
    (line,) = read_records(tmp_path / "online", rank)
    assert line["step"] == 4 and line["rank"] == rank and line["seed"] == seen[0]
    assert line["examples"] == ["pairs[0]", "pairs[1]"] and [len(s) for s in line["scores"]] == [3, 3]
    assert line["pairs"] == [None, None]  # equal scores: ties, the dataset's pairs trained


def test_epoch_batches_give_each_rank_a_disjoint_share_of_the_global_batch():
    sizes = [2] * 10 + [3] * 7  # two K: one K per batch
    one = EpochBatches(sizes, 3, shuffle=True, seed=1)
    for epoch in (0, 1):
        shares = [EpochBatches(sizes, 3, shuffle=True, seed=1, replicas=2, rank=r).batches(epoch) for r in (0, 1)]
        globals_ = EpochBatches(sizes, 6, shuffle=True, seed=1).batches(epoch)  # batch_size × replicas
        assert len(shares[0]) == len(shares[1]) == len(globals_) == len(EpochBatches(sizes, 3, True, 1, 2, 0))
        for b, (mine, theirs, whole) in enumerate(zip(*shares, globals_)):
            assert mine and theirs and len({sizes[i] for i in mine + theirs}) == 1, b  # one K, no empty share
            if len(whole) >= 2:
                assert not set(mine) & set(theirs) and sorted(mine + theirs) == sorted(whole), b
            else:  # a last batch of one example: repeated, so that no rank is empty
                assert mine == theirs == whole, b
    assert one.batches(0) == EpochBatches(sizes, 3, True, 1, replicas=1, rank=0).batches(0)  # one process: as before
    with pytest.raises(ValueError, match="rank 2 is not one of 2"):
        EpochBatches(sizes, 3, True, 1, replicas=2, rank=2)


def test_gathering_for_generation_is_a_no_op_on_one_process():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    x = torch.randn(2, 4)
    with torch.no_grad(), gathered_for_generation(model):
        out = model(x)
    assert all(a is b for a, b in zip(params, model.parameters()))  # the same tensors, nothing swapped in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    torch.testing.assert_close(out, model(x))
    assert replica_digests(model) == replica_digests(model) and len(replica_digests(model)) == 1


class _StepModule(nn.Module):
    """A training module whose forward (Lightning: ``training_step``) samples from its policy, then trains."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, x):
        with torch.no_grad(), gathered_for_generation(self.policy):
            sampled = self.policy(x)
        return self.policy(x).sum(), sampled


def _sharded_generation(rank: int, world: int, init: str, out: str) -> None:
    """One rank: FSDP1 (auto-wrapped per Linear) and FSDP2 (fully_shard per Linear and the root) on CPU, gloo;
    inside `gathered_for_generation` every parameter is whole and the outputs are the unsharded model's."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    want, result = make()(x), {}
    fsdp1 = FSDP(make(), device_id=torch.device("cpu"), auto_wrap_policy=ModuleWrapPolicy({nn.Linear}),
                 use_orig_params=True)
    result["fsdp1_sharded"] = sum(p.numel() for p in fsdp1.parameters())
    with torch.no_grad(), gathered_for_generation(fsdp1):
        result["fsdp1_inside"] = sum(p.numel() for p in fsdp1.parameters())
        result["fsdp1_equal"] = torch.allclose(fsdp1(x), want)
    result["fsdp1_after"] = sum(p.numel() for p in fsdp1.parameters())
    # as under Lightning's FSDPStrategy: generation inside the root's forward (training_step), inner units wrapped
    root = FSDP(_StepModule(make()), device_id=torch.device("cpu"), auto_wrap_policy=ModuleWrapPolicy({nn.Linear}),
                use_orig_params=True)
    loss, sampled = root(x)
    loss.backward()
    result["fsdp1_in_forward_equal"] = torch.allclose(sampled, want)
    fsdp2 = make()
    for layer in (fsdp2[0], fsdp2[2], fsdp2):
        fully_shard(layer)
    with torch.no_grad(), gathered_for_generation(fsdp2):
        result["fsdp2_inside_whole"] = all(not hasattr(p, "to_local") for p in fsdp2.parameters())
        result["fsdp2_equal"] = torch.allclose(fsdp2(x), want) and torch.allclose(fsdp2(x), want)
    result["fsdp2_after_sharded"] = all(hasattr(p, "to_local") for p in fsdp2.parameters())
    fsdp2(x).sum().backward()  # training goes on after generation
    result["fsdp2_grads"] = all(p.grad is not None for p in fsdp2.parameters())
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    # both ranks done with every collective before either tears gloo down: a rank that destroyed its group while
    # the other's last reduce-scatter was in flight aborted ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def test_sharded_parameters_are_gathered_for_generation_on_two_cpu_processes(tmp_path):
    """FSDP1 and FSDP2 in plain torch (gloo, CPU): Lightning refuses strategy=fsdp without CUDA, but the
    gathering itself runs here."""
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_sharded_generation, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    full = 4 * 8 + 8 + 8 * 3 + 3
    for rank in (0, 1):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["fsdp1_sharded"] < full and r["fsdp1_after"] == r["fsdp1_sharded"], r
        assert r["fsdp1_inside"] == full and r["fsdp1_equal"] and r["fsdp1_in_forward_equal"], r
        assert r["fsdp2_inside_whole"] and r["fsdp2_equal"] and r["fsdp2_after_sharded"] and r["fsdp2_grads"], r
