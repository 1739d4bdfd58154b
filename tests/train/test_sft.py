"""SFT through Lightning + Hydra: the real config composed and shrunk, the run folder, resume, skip_bad."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.conftest import TINY_IMAGE, TINY_TEXT
from zoo.train.run import compose_config, train


def tiny_overrides(tmp_path, steps=4, **extra):
    text = [f"model.text_config.{k}={v}" for k, v in TINY_TEXT.items() if k != "model_type"]
    enc = TINY_IMAGE["encoder"]["timm_kwargs"]
    image = [f"model.modalities.image.encoder.timm_kwargs.{k}={v}" for k, v in enc.items()]
    world = ["data.world_config.n_train=30", "data.world_config.n_test=8", "data.world_config.n_trigger=4",
             "data.world_config.n_pairs=16", "data.world_config.n_ranked=8"]
    over = {
        "output_dir": tmp_path / "run",
        "data_root": tmp_path / "data",
        "trainer.max_steps": steps,
        "trainer.val_check_interval": 2,
        "checkpoint_every": 2,
        "data.batch_size": 8,
        "data.val_limit": 8,
        "model.tokenizer.vocab_size": 300,
        "module.warmup_steps": 1,
        **extra,
    }
    return text + image + world + [f"{k}={v}" for k, v in over.items()]


def test_every_shipped_yaml_composes():
    cfg = compose_config(["recipe=sft"])
    assert cfg.module._target_ == "zoo.train.modules.SFTModule"
    assert cfg.model._target_ == "zoo.models.composed.build_composed_policy"
    assert cfg.trainer._target_ == "lightning.Trainer"
    assert cfg.data._target_ == "zoo.train.data.ChatDataModule"


def test_sft_run_folder_and_resume(tmp_path):
    from zoo.cli import main
    from zoo.models import load_policy

    assert main(["train", *tiny_overrides(tmp_path)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["data"]["train"]["skipped"] == 0
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["trainer"]["max_steps"] == 4 and recipe["recipe_name"] == "sft"
    assert "${" not in (run / "recipe.yaml").read_text()  # resolved
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert (run / "logs" / "csv" / "version_0" / "metrics.csv").exists()
    assert list((run / "logs" / "tensorboard" / "version_0").glob("events.out.tfevents.*"))
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json"):
        assert (run / "model" / name).exists()
    policy = load_policy(run / "model")
    assert policy.model.config.model_type == "zoo_composed"

    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        train(compose_config(tiny_overrides(tmp_path)))
    resumed = train(compose_config(tiny_overrides(tmp_path, steps=6, ckpt_path="last")))
    assert resumed["global_step"] == 6  # continued from step 4, not from 0
    assert (run / "logs" / "csv" / "version_0" / "metrics.csv").exists()  # the first attempt's logs are kept


def _bad_dataset(tmp_path, tiny_world):
    import shutil

    from zoo.data.formats import read_rows

    data = tmp_path / "bad"
    shutil.copytree(tiny_world, data)
    rows = read_rows(tiny_world, "train")[:20]
    rows[3]["images"] = ["images/train/missing.png"]
    rows[5]["completion"] = ""
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_datamodule_bad_input_fails_or_is_skipped_and_counted(tmp_path, tiny_world, tiny_policy):
    from zoo.data.schema import DataError
    from zoo.train.data import ChatDataModule

    data = _bad_dataset(tmp_path, tiny_world)
    strict = ChatDataModule(str(data), val_split=None).attach(tiny_policy.processor)
    with pytest.raises(DataError, match=r"example train\[3\], field 'images\[0\]'"):
        strict.setup("fit")
    lenient = ChatDataModule(str(data), val_split=None, skip_bad=True).attach(tiny_policy.processor)
    lenient.setup("fit")
    assert len(lenient.encoded["train"]) == 18
    assert lenient.skip_summary() == {
        "train": {"skipped": 2, "reasons": {"images: not found": 1, "completion: empty": 1}}
    }


@pytest.mark.slow
def test_sft_learns_the_world(tmp_path):
    """A small form of the demo: loss falls well below its start and captions name real shapes."""
    from benchmarks.hallucination import CHAIRTask
    from zoo.models import load_policy

    cfg = compose_config(tiny_overrides(tmp_path, steps=150, **{
        "data.world_config.n_train": 200, "trainer.val_check_interval": 150, "checkpoint_every": 150,
        "data.batch_size": 16, "module.optimizer.lr": 3e-3}))
    metrics = train(cfg)
    assert metrics["train/loss"] < 0.8  # from ≈ log(300) ≈ 5.7 at initialisation
    policy = load_policy(tmp_path / "run" / "model")
    result = CHAIRTask(world=cfg.data.path).run(policy, progress=False)
    assert result["metrics"]["n_mentions"] > 0
    assert all(s["reply"].startswith("The ") for s in result["samples"])


def test_eval_suite_during_training_is_logged(tmp_path):
    over = tiny_overrides(tmp_path, **{"eval.suite": "smoke", "eval.every_n_steps": 2, "eval.limit": 2})
    train(compose_config(over))
    csv = (tmp_path / "run" / "logs" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    # a 4-step model mostly names nothing: CHAIR is then not applicable, and its empty rate says why
    assert "eval/chair/empty_rate" in header and "eval/chair/recall" in header
    assert "eval/pope_adversarial/accuracy" in header
    assert (tmp_path / "run" / "eval_history.jsonl").read_text().count("\n") == 2  # steps 2 and 4


def test_dpo_recipe_trains_on_the_world_pairs(tmp_path):
    cfg = compose_config(["recipe=dpo", *tiny_overrides(tmp_path, steps=3)])
    assert cfg.module._target_ == "zoo.train.modules.PreferenceModule"
    metrics = train(cfg)
    assert metrics["global_step"] == 3
    for key in ("train/loss", "train/rewards/margin", "train/rewards/accuracy", "train/kl"):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key]))
    assert metrics["data"]["pairs"]["skipped"] == 0


def test_shapes_recipe_world_is_the_world_default():
    """`zoo train` and a world generated by `zoo eval` / the tasks must be the same world: the recipe lists
    every world setting (documented), each null ("as the folder has it") or the world's default."""
    import dataclasses

    from modalities.synthetic.shapes import ShapesConfig

    defaults = dataclasses.asdict(ShapesConfig())
    recipe = compose_config([]).data.world_config
    assert set(recipe) == set(defaults)
    for key, value in recipe.items():
        assert value is None or defaults[key] == value, key


def test_training_reads_the_world_folder_it_is_pointed_at(tmp_path):
    """`zoo world shapes DIR --set n_train=…` then `zoo train data.path=DIR`: the run reads that world and its
    recipe.yaml records it; asking for other settings is one error naming them."""
    from modalities.synthetic import ensure_world
    from zoo.train.run import pin_world
    from zoo.train.validate import ConfigError

    world = ensure_world("shapes", tmp_path / "small", {"n_train": 12, "n_test": 4, "n_trigger": 4, "n_pairs": 4,
                                                        "n_ranked": 0})
    cfg = compose_config([f"data.path={world}"])
    pin_world(cfg)
    assert cfg.data.world_config.n_train == 12 and cfg.data.world_config.n_ranked == 0
    assert cfg.data.world_config.bias == 0.95  # every setting, from world.json
    cfg = compose_config([f"data.path={world}", "data.world_config.n_train=200"])
    with pytest.raises(ConfigError, match=r"made with n_train=12 \(asked 200\)"):
        pin_world(cfg)
    cfg = compose_config([f"data.path={tmp_path / 'none'}", "data.world_config.n_train=7"])
    pin_world(cfg)  # no world there yet: the defaults with the asked settings (prepare_data generates it)
    assert cfg.data.world_config.n_train == 7 and cfg.data.world_config.n_test == 500
