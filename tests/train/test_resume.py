"""Exact resume: a run killed (SIGKILL) mid-epoch and resumed from its last checkpoint ends with the weights of
the uninterrupted run, bit for bit — the data loader's position and every RNG state are in the checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.test_sft import tiny_overrides
from zoo.train.callbacks import RNGStates, rng_states, set_rng_states
from zoo.train.data import EpochBatches, ResumableLoader
from zoo.train.modules import warmup_cosine

ROOT = Path(__file__).resolve().parents[2]


def _loader(n=10, batch_size=3, seed=5, **kwargs):
    return ResumableLoader(list(range(n)), EpochBatches([1] * n, batch_size, shuffle=True, seed=seed),
                           collate_fn=list, **kwargs)


def test_loader_resumes_mid_epoch_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    loader = _loader()
    straight = [list(loader) for _ in range(3)]  # epochs 0, 1, 2: each iter() is the next epoch
    assert torch.equal(torch.get_rng_state(), before)  # shuffles and worker seeds come from (seed, epoch)
    assert straight[0] != straight[1] != straight[2]  # a new order each epoch
    torch.manual_seed(1)
    assert list(_loader()) == straight[0]  # whatever the global RNG: a function of (seed, epoch) only

    interrupted = _loader(num_workers=1)  # the worker reads ahead: what counts is what was handed out
    list(interrupted)  # epoch 0
    batches = iter(interrupted)
    seen = [next(batches), next(batches)]  # two batches of epoch 1 handed out, then the process dies
    del batches
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batch": 2}
    resumed = _loader()
    resumed.load_state_dict(state)
    assert seen + list(resumed) == straight[1]  # the rest of the same shuffle, nothing twice, nothing lost
    assert list(resumed) == straight[2]  # and the next epoch as the uninterrupted loader reads it

    whole = _loader()
    list(whole)
    assert whole.state_dict() == {"epoch": 1, "batch": 0}  # a finished epoch resumes at the next one
    assert _loader(seed=6).state_dict() == {"epoch": 0, "batch": 0}
    assert list(_loader(seed=6)) != straight[0]


def test_batches_keep_one_k_and_every_index_once():
    sizes = [2, 3, 2, 3, 2, 3, 3]
    batches = EpochBatches(sizes, batch_size=2, shuffle=True, seed=1)
    for epoch in range(3):
        out = batches.batches(epoch)
        assert len(out) == len(batches) and sorted(i for b in out for i in b) == list(range(len(sizes)))
        assert all(len({sizes[i] for i in b}) == 1 for b in out)
    assert EpochBatches(sizes, 2, shuffle=False).batches(0) == [[0, 2], [1, 3], [5, 6], [4]]


def test_rng_states_round_trip_through_the_callback(tmp_path):
    callback = RNGStates()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(callback.state_dict(), tmp_path / "rng.pt")  # what a checkpoint holds
    saved = torch.load(tmp_path / "rng.pt", weights_only=True)  # plain values: no NumPy object to unpickle
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    callback.load_state_dict(saved)
    callback.on_train_start(None, None)  # a resumed run sets them just before its first batch
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(3), expected[2])

    state = rng_states()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_states(state)  # the pair without the callback (as `EvalCallback` uses it around a suite)
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(3), expected[2])


def test_schedule_asks_for_an_open_ended_total_only_after_the_warm_up():
    asked = []

    def total():
        asked.append(1)
        return 100

    factor = warmup_cosine(2, total)
    assert [factor(0), factor(1), factor(2)] == [0.5, 1.0, 1.0] and not asked  # no train loader built early
    assert factor(100) == pytest.approx(0.1) and asked


HANG = """
import os, sys, time
from pathlib import Path
from zoo.train.modules import PolicyModule

hang_at, mark = int(os.environ["ZOO_TEST_HANG_AT"]), Path(os.environ["ZOO_TEST_MARK"])
step = PolicyModule.training_step

def training_step(self, batch, batch_idx):
    if self.global_step == hang_at:  # steps past the last checkpoint are done: wait here for the kill
        mark.write_text(str(self.global_step))
        time.sleep(600)
        os._exit(3)  # never killed: the test has gone, leave no process behind
    return step(self, batch, batch_idx)

PolicyModule.training_step = training_step
from zoo.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


TRAIN = "import sys; from zoo.cli import main; sys.exit(main(['train', *sys.argv[1:]]))"


def _zoo_train(overrides, **env):
    """`zoo train OVERRIDES` in a fresh interpreter (with ``env``: the hanging variant above)."""
    return [sys.executable, "-c", HANG if env else TRAIN, *overrides], {**os.environ, "PYTHONPATH": str(ROOT), **env}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "model" / "model.safetensors")


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_ends_bit_identical(tmp_path):
    # 6 images → 18 rows → 5 batches of 4 an epoch: 14 steps are almost 3 epochs; checkpoints at steps 4, 8, 12
    steps, every, hang_at = 14, 4, 10
    extra = {"checkpoint_every": every, "trainer.val_check_interval": 4,  # validation at the checkpoints too
             "+model.text_config.attention_dropout": 0.1}  # dropout: the torch RNG matters

    def overrides(run):
        over = tiny_overrides(tmp_path, steps=steps, output_dir=tmp_path / run, **{"data.batch_size": 4}, **extra)
        return [o if not o.startswith("data.world_config.n_train=") else "data.world_config.n_train=6" for o in over]

    cmd, env = _zoo_train(overrides("straight"))
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)  # makes the world
    assert done.returncode == 0, done.stderr[-3000:]

    mark = tmp_path / "hung"
    cmd, env = _zoo_train(overrides("killed"), ZOO_TEST_HANG_AT=str(hang_at), ZOO_TEST_MARK=str(mark))
    log = tmp_path / "killed.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not mark.exists():
            assert child.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # the premise: the last checkpoint is mid-epoch, after a reshuffle, and the kill came steps after it
    last = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    fit = last["loops"]["fit_loop"]
    done_in_epoch = fit["epoch_loop.batch_progress"]["current"]["processed"]
    assert last["global_step"] == 8 < hang_at and last["epoch"] == 1 and 0 < done_in_epoch < 5
    assert fit["state_dict"]["combined_loader"] == [{"epoch": 1, "batch": done_in_epoch}]
    assert not (tmp_path / "killed" / "model").exists()

    cmd, env = _zoo_train([*overrides("killed"), "ckpt_path=last"])
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not resumable" not in done.stderr

    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys() and len(a) > 10
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"
