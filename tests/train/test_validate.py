"""Config validation at start-up: nonsense hyper-parameters and wrongly typed fields fail at once, in one line."""

from __future__ import annotations

import pytest

from zoo.align.objectives import Objective
from zoo.align.pairs.bdhs import BDHSConfig
from zoo.train.run import compose_config
from zoo.train.validate import ConfigError, validate_config

DPO = ["recipe=dpo", "model=pretrained", "model.path=unused"]


@pytest.mark.parametrize("overrides,message", [
    (["module.objective.hparams.beta=-1"], "beta must be > 0, not -1"),
    (["module.objective.hparams.beta=0", "objective=ipo"], "beta must be > 0, not 0"),
    (["+module.objective.hparams.label_smoothing=0.9", "+module.objective.terms.cdpo=1.0",
      "module.objective.terms.sigmoid=0"],
     r"label_smoothing must be in \[0, 0.5\), not 0.9"),
    (["+module.objective.hparams.gama=0.5"], r"takes \['gama'\] \(they take beta, rpo_alpha\)"),
    (["module.objective.terms.sigmoid=-1"], "weight of term 'sigmoid' must be a number >= 0"),
    (["+module.objective.terms.dpoo=1.0"], "unknown objective 'dpoo'"),
    (["trainer.max_steps=abc"], "trainer.max_steps must be an integer, not 'abc'"),
    (["trainer.gradient_clip_val=high"], "trainer.gradient_clip_val must be"),
    (["data.batch_size=big"], "data.batch_size must be an integer, not 'big'"),
    (["data.skip_bad=maybe"], "data.skip_bad must be true/false, not 'maybe'"),
    (["seed=one"], "seed must be an integer"),
])
def test_nonsense_fails_at_composition_with_one_line(overrides, message):
    cfg = compose_config([*DPO, *overrides])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_every_shipped_recipe_validates():
    for recipe in ("sft", "dpo", "sft_chosen", "dpo_no_sft", "bdhs", "online_bdhs", "lipo", "pro", "curry_dpo"):
        overrides = [f"recipe={recipe}"] + (["model=pretrained", "model.path=unused"] if recipe != "sft" else [])
        validate_config(compose_config(overrides))  # raises on a problem


def test_objective_and_bdhs_refuse_values_directly():
    with pytest.raises(ValueError, match="beta must be > 0"):
        Objective("ipo", {"beta": 0.0})
    with pytest.raises(ValueError, match="beta must be a number"):
        Objective("sigmoid", {"beta": "big"})
    assert Objective({"sigmoid": 1.0, "sft": 0.0}, {"beta": 0.1}).weights == {"sigmoid": 1.0}  # 0 drops a term
    with pytest.raises(ValueError, match="mask_threshold must be in"):
        BDHSConfig(mask_threshold=1.5)
    with pytest.raises(ValueError, match="max_tries must be an integer >= 1"):
        BDHSConfig(max_tries=0)
    with pytest.raises(ValueError, match="corruption must be"):
        BDHSConfig(corruption="blur")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from zoo.cli import main

    assert main(["train", *DPO, f"output_dir={tmp_path / 'run'}", "module.objective.hparams.beta=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "zoo train: module.objective: objective: beta must be > 0, not -1"
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert main(["train", "recipe=sft", "trainer.max_stepz=3"]) == 2  # a Hydra composition error, one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_stepz" in err[0]
    assert main(["train", "recipe=dpo", "model=pretrained", "model.path=unused", f"output_dir={tmp_path / 'b'}",
                 "module.pairs.config.max_tries=0", "pairs=bdhs"]) == 2
    assert capsys.readouterr().err.strip() == (
        "zoo train: module.pairs: BDHS config: max_tries must be an integer >= 1, not 0")
