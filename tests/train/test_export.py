"""zoo export: a run's checkpoint as a model folder (zoo.train.export)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.train.test_sft import tiny_overrides
from zoo.cli import main


def test_export_writes_the_weights_of_the_chosen_checkpoint(tmp_path, capsys):
    assert main(["train", "recipe=sft", *tiny_overrides(tmp_path, steps=4)]) == 0
    run = tmp_path / "run"
    assert main(["export", str(run), "--output", str(tmp_path / "last")]) == 0
    assert main(["export", str(run), "--checkpoint", "2", "--output", str(tmp_path / "step2")]) == 0
    final, last, step2 = (load_file(str(p / "model.safetensors")) for p in (run / "model", tmp_path / "last",
                                                                            tmp_path / "step2"))
    assert final.keys() == last.keys() == step2.keys()
    assert all(torch.equal(final[k], last[k]) for k in final)  # the last checkpoint is the run's model
    assert any(not torch.equal(final[k], step2[k]) for k in final)  # step 2 is two steps earlier
    from zoo import load

    assert load(str(tmp_path / "step2")).policy is not None
    capsys.readouterr()
    assert main(["export", str(run), "--checkpoint", "3", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint '3'" in err and "last.ckpt" in err and "--debug" in err
    assert main(["export", str(tmp_path), "--output", str(tmp_path / "x")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_export_refuses_a_checkpoint_of_another_model(tmp_path):
    from zoo.train.export import export_checkpoint

    assert main(["train", "recipe=sft", *tiny_overrides(tmp_path, steps=2)]) == 0
    run = tmp_path / "run"
    recipe = (run / "recipe.yaml").read_text()
    (run / "recipe.yaml").write_text(recipe.replace("num_hidden_layers: 2", "num_hidden_layers: 3"))
    with pytest.raises(ValueError, match="does not fit the model"):
        export_checkpoint(run, tmp_path / "out")
