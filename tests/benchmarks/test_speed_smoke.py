"""Smoke run of the DPO step speed benchmark (``--quick``): both sides run, report figures and agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--lora-r", "4", "--precision", "bf16-mixed"]], ids=["full", "lora-bf16"])
def test_dpo_step_quick(tmp_path, extra):
    """Full fine-tuning in float32, and the llava-7b-lora profile's path at tiny sizes (LoRA on the language model,
    the rest frozen, the reference = adapters disabled, bf16 autocast): both sides train the same parameters."""
    out = tmp_path / "dpo_step.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed.dpo_step", "--quick", "--output", str(out), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for side in ("zoo", "zoo_cached", "trl"):
        r = report["results"][side]
        assert r["pairs_per_s"] > 0 and r["peak_mb"] > 0, side
        assert r["info"]["trainable_params"] > 0, side
    assert report["ratio"]["pairs_per_s"] > 0
    info = report["results"]["trl"]["info"]
    assert info["pixel_values_shape"] is not None
    trainable = {side: report["results"][side]["info"]["trainable_params"] for side in ("zoo", "zoo_cached", "trl")}
    assert len(set(trainable.values())) == 1, trainable  # the same parameters train on both sides
    if extra:
        assert report["config"]["lora_r"] == 4 and report["config"]["precision"] == "bf16-mixed"
        assert trainable["trl"] < info["params"] / 10  # only the adapters train
        assert report["results"]["zoo"]["info"]["reference"] == info["reference"] == "adapters disabled"
    else:
        assert info["ref_is_separate_frozen_copy"] and trainable["trl"] == info["params"]
    # uneven response lengths (the default): the first batch's responses differ in length
    lengths = info["response_tokens"]["chosen"] + info["response_tokens"]["rejected"]
    assert len(set(lengths)) > 1, lengths
    # Same tokens, same weights: same log-probs at step 0 and same loss after one AdamW step.
    sanity = report["sanity"]
    assert sanity["tokens_identical"], sanity.get("first_pair_ids")
    assert sanity["agree"], sanity
    # the cached reference gives the frozen reference's losses (same initial model)
    zoo, cached = report["results"]["zoo"], report["results"]["zoo_cached"]
    tolerance = 1e-3 if extra else 1e-5  # bf16 autocast: the cache and the frozen pass round differently
    for (a, *_), (b, *_) in zip(zoo["trace_first_round"], cached["trace_first_round"]):
        assert abs(a - b) < tolerance
    assert cached["info"]["reference"] == "cached" and cached["reference_precompute_s_per_pair"] > 0
    assert report["machine"]["torch"] and report["command"].endswith(" ".join(["--output", str(out), *extra]))


@pytest.mark.slow
def test_bdhs_sampling_quick(tmp_path, tiny_world):
    """Batched and sentence-by-sentence BDHS write the same rejected texts; both rates are reported."""
    from benchmarks.speed.bdhs_sampling import main
    from tests.conftest import build_tiny_policy

    model = tmp_path / "model"
    build_tiny_policy().backbone.save_pretrained(model)
    out = tmp_path / "bdhs.json"
    assert main(["--model", str(model), "--world", str(tiny_world), "--pairs", "6", "--rounds", "1",
                 "--batch-size", "8", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["identical_outputs"] and report["pairs"] == 6 and report["sentences"] >= 6
    assert all(v > 0 for v in report["pairs_per_second"].values()) and report["ratio"] > 0
    assert report["ratio_image_once"] > 0 and len(report["pairs_per_second"]) == 3


@pytest.mark.slow
def test_group_sampling_quick(tmp_path, tiny_world):
    """The shared prefill and K separate prefills sample the same responses; both rates are reported."""
    from benchmarks.speed.group_sampling import main
    from tests.conftest import build_tiny_policy

    model = tmp_path / "model"
    build_tiny_policy().backbone.save_pretrained(model)
    out = tmp_path / "group.json"
    assert main(["--model", str(model), "--world", str(tiny_world), "--prompts", "4", "--k", "3", "--rounds", "1",
                 "--max-new-tokens", "6", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["identical_outputs"] and report["prompts"] == 4 and report["k"] == 3
    assert report["generated_tokens"] > 0 and all(v > 0 for v in report["tokens_per_second"].values())
