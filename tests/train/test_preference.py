"""PreferenceModule: both pair layouts and both reference strategies give the same objective."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch

from tests.conftest import build_tiny_policy
from tests.train.test_sft import tiny_overrides
from zoo.align.objectives import Objective
from zoo.align.pairs.bdhs import OnlineBDHSPairs
from zoo.align.pairs.offline import OfflinePairs
from zoo.align.reference import REFERENCES, CachedReference, FrozenReference, NoReference
from zoo.train.data import PairDataModule
from zoo.train.modules import PreferenceModule
from zoo.train.run import compose_config, train


def module_for(policy, reference=None, **kwargs):
    return PreferenceModule(policy, optimizer=partial(torch.optim.AdamW, lr=1e-3),
                            objective=Objective({"sigmoid": 1.0, "sft": 0.5}, {"beta": 0.1}),
                            reference=reference if reference is not None else FrozenReference(), **kwargs)


def moved(policy):
    """A copy of the policy one SGD step away, so that policy and reference differ."""
    policy = copy.deepcopy(policy)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 1e-2)
    return policy


def test_layouts_and_references_agree(tiny_world, tmp_path):
    base = build_tiny_policy().train()
    data = {mode: PairDataModule(str(tiny_world), batch_size=4).attach(base.processor, OfflinePairs(mode).collate)
            for mode in ("shared_prefix", "concat")}
    for dm in data.values():
        dm.setup()
    frozen = module_for(base)
    cached = module_for(base, reference=CachedReference(tmp_path / "cache"))
    cached.reference.prepare(cached.policy, data["shared_prefix"])
    assert len(list((tmp_path / "cache").glob("ref_logps-*.safetensors"))) == 1
    frozen.policy = cached.policy = moved(base).train()  # train the same moved policy against both references
    losses = {}
    for mode, dm in data.items():
        batch = next(iter(dm.ordered_loader()))
        for name, module in (("frozen", frozen), ("cached", cached)):
            loss, metrics = module.loss(batch)
            losses[mode, name] = loss
            assert torch.isfinite(metrics["rewards/margin"])
    first = losses["concat", "frozen"]
    assert abs(float(first.detach())) > 1e-3
    for key, value in losses.items():
        torch.testing.assert_close(value, first, atol=1e-4, rtol=0, msg=str(key))


def test_parts_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="needs a reference model"):
        module_for(build_tiny_policy(), reference=NoReference())
    with pytest.raises(ValueError, match="cannot be cached"):
        module_for(build_tiny_policy(), reference=CachedReference("x"), pairs=OnlineBDHSPairs())
    with pytest.raises(KeyError, match="unknown reference 'ema'"):
        REFERENCES.get("ema")


def test_dpo_recipe_with_cached_reference_and_resume(tmp_path):
    overrides = ["recipe=dpo", "reference=cached", *tiny_overrides(tmp_path, steps=2)]
    metrics = train(compose_config(overrides))
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    caches = list((tmp_path / "data").rglob(".zoo_cache/ref_logps-*.safetensors"))
    assert len(caches) == 1  # beside the dataset
    stamp = caches[0].stat().st_mtime_ns
    resume = [o for o in overrides if not o.startswith("trainer.max_steps")] + ["trainer.max_steps=3", "ckpt_path=last"]
    assert train(compose_config(resume))["global_step"] == 3
    assert caches[0].stat().st_mtime_ns == stamp  # the initial model's cache is reused, not recomputed
    caches[0].unlink()
    resume = [o for o in resume if not o.startswith("trainer.max_steps")] + ["trainer.max_steps=4"]
    with pytest.raises(FileNotFoundError, match="resumes from a checkpoint"):
        train(compose_config(resume))


def test_bdhs_recipes_run_end_to_end(tmp_path, capsys):
    """Offline: `zoo bdhs generate` writes audited pairs, resumable; recipe=bdhs trains on them.
    Online: recipe=online_bdhs writes the rejected responses during training."""
    import json

    from zoo.cli import main

    small = ["module.pairs.config.max_tries=2", "data.world_config.n_pairs=12"]
    assert main(["bdhs", "generate", *tiny_overrides(tmp_path, steps=2), *small]) == 0
    out = tmp_path / "run" / "bdhs_pairs"
    rows = [json.loads(line) for line in (out / "bdhs.jsonl").read_text().splitlines()]
    meta = json.loads((out / "bdhs.json").read_text())
    assert len(rows) == meta["pairs"] == 12 and meta["pairs_per_second"] > 0
    assert meta["repetitive_fraction"] == round(sum(r["bdhs"]["repetitive"] for r in rows) / 12, 3)
    for row in rows:
        assert {"tries", "similarity", "hidden", "guided", "corruption", "sentences", "repetitive"} <= set(row["bdhs"])
        assert "hallucination" not in row  # no annotation is carried over
        assert row["images"][0].startswith("images/pairs/")
    # resumable: a torn last line is dropped and only the missing rows are made again
    text = (out / "bdhs.jsonl").read_text().splitlines(keepends=True)
    (out / "bdhs.jsonl").write_text("".join(text[:5]) + text[5][:20])
    assert main(["bdhs", "generate", *tiny_overrides(tmp_path, steps=2), *small]) == 0
    again = [json.loads(line) for line in (out / "bdhs.jsonl").read_text().splitlines()]
    assert again == rows
    assert json.loads((out / "bdhs.json").read_text())["generated_now"] == 7
    assert main(["bdhs", "generate", *tiny_overrides(tmp_path, steps=2), *small,
                 "module.pairs.config.mask_threshold=0.5"]) == 2
    assert "made with other settings" in capsys.readouterr().err

    metrics = train(compose_config(["recipe=bdhs", *tiny_overrides(tmp_path, steps=2), *small]))
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train/loss"]))

    online = ["recipe=online_bdhs", *tiny_overrides(tmp_path / "online", steps=2), "module.pairs.config.max_tries=2",
              "data.world_config.n_pairs=12", "module.pairs.gamma=0.5"]
    metrics = train(compose_config(online))
    assert metrics["global_step"] == 2
    for key in ("train/loss", "train/bdhs/tries", "train/bdhs/similarity", "train/external/rewards/margin"):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key])), key


@pytest.mark.parametrize("recipe", ["lipo", "pro", "curry_dpo"])
def test_ranked_recipes_train_from_the_cli(recipe, tmp_path, capsys):
    """LiPO-λ, PRO and Curry-DPO on the world's ranked split (K = 4 captions per image) through `zoo train`."""
    import json

    from zoo.cli import main

    overrides = [f"recipe={recipe}", *tiny_overrides(tmp_path, steps=2), "data.batch_size=4"]
    if recipe == "curry_dpo":
        overrides.append("module.pairs.steps_per_stage=1")
    assert main(["train", *overrides]) == 0
    assert "model written to" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    terms = {"lipo": ("lipo_lambda/loss", "ranked/accuracy"), "pro": ("pro/loss", "ranked/accuracy"),
             "curry_dpo": ("sigmoid/loss", "curriculum/stage")}[recipe]
    for key in ("train/loss", "train/sft/loss", "train/rewards/margin", *(f"train/{t}" for t in terms)):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key])), key
    recipe_cfg = (tmp_path / "run" / "recipe.yaml").read_text()
    assert "train_split: ranked" in recipe_cfg
    if recipe == "curry_dpo":
        assert metrics["train/curriculum/stage"] == 1  # steps 0, 1: the second stage at the last step


def test_lipo_on_vlfeedback_ranked_rows_of_different_sizes(tmp_path):
    """VLFeedback's ratings load as ranked rows with K = 2 or 3 responses: batches keep one K each, the
    cached reference holds every group, and LiPO-λ trains on them through the recipe."""
    from tests.data.test_formats import _completion, _png, _write_jsonl
    from zoo.data.formats import convert
    from zoo.train.data import EpochBatches

    records = []
    for i in range(6):
        _png(tmp_path, f"img{i}.png", (40 * i, 255 - 40 * i, 90))
        completions = [_completion("a", "A red square.", "5", "5", "4"), _completion("b", "A dog.", "2", "5", "1"),
                       _completion("c", "Something red.", "3", "5", "3")][: 2 + i % 2]
        records.append({"id": f"r{i}", "prompt": "What is shown?", "completions": completions,
                        "image_path": f"img{i}.png"})
    rows = convert(records, "vlfeedback_ranked", media_root=tmp_path)
    data = tmp_path / "vlf"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", rows)
    assert sorted(len(r["responses"]) for r in rows) == [2, 2, 2, 3, 3, 3]

    sampler = EpochBatches([2, 3, 2, 3, 2, 3], batch_size=2, shuffle=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 and sorted(i for b in batches for i in b) == list(range(6))
    assert all(len({[2, 3, 2, 3, 2, 3][i] for i in b}) == 1 for b in batches)

    overrides = ["recipe=lipo", *tiny_overrides(tmp_path, steps=3), f"data.path={data}", "data.world=null",
                 "data.train_split=train", "data.batch_size=2", "data.max_length=null"]
    metrics = train(compose_config(overrides))
    assert metrics["global_step"] == 3 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert list((data / ".zoo_cache").glob("ref_logps-*.safetensors"))  # the cached reference, K padded
