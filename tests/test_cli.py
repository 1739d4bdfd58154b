"""The `zoo` command as a newcomer meets it: help that says what can be changed, one-line errors, --config."""

from __future__ import annotations

import argparse
from importlib.resources import files

import pytest

from zoo.cli import main


def test_bare_zoo_shows_help_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: zoo" in out and "train" in out and "--version" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("zoo ")


def test_train_help_lists_the_groups_their_options_and_the_recipes(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    recipes = sorted(p.name[:-5] for p in files("recipes").joinpath("recipe").iterdir() if p.name.endswith(".yaml"))
    groups = [p.name for p in files("recipes").iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert f"recipe     {', '.join(recipes)}   (default: sft)" in out
    for group in groups:
        assert f"\n  {group} " in out, group
    assert "dpo_no_sft" in out.split("recipes (recipe=NAME):")[1]
    assert "--cfg job" in out and "--config FILE" in out and "trainer.max_steps" in out


def test_cfg_job_prints_the_composed_config_with_open_sections(capsys):
    assert main(["train", "recipe=dpo", "trainer.accumulate_grad_batches=4", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "recipe_name: dpo" in out and "accumulate_grad_batches: 4" in out  # no + needed for Trainer options
    assert "${recipe_name}" in out  # unresolved unless --resolve
    assert main(["train", "--cfg", "job", "--resolve"]) == 0
    assert "output_dir: runs/sft" in capsys.readouterr().out


def test_config_file_is_a_command_line_written_as_yaml(tmp_path, capsys):
    file = tmp_path / "my.yaml"
    file.write_text("recipe: dpo\nmodel: pretrained\nmodel.path: runs/sft/model\n"
                    "trainer:\n  max_steps: 7\n  precision: bf16-mixed\nmodule:\n  objective:\n    hparams: {beta: 0.3}\n"
                    "output_dir: 'runs/a=b, c'\n")
    assert main(["train", "--config", str(file), "trainer.max_steps=9", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "recipe_name: dpo" in out and "path: runs/sft/model" in out and "beta: 0.3" in out
    assert "max_steps: 9" in out and "precision: bf16-mixed" in out  # the command line wins over the file
    assert "output_dir: runs/a=b, c" in out  # quoted: '=' and ',' stay inside the value
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "must be a mapping" in capsys.readouterr().err


@pytest.mark.parametrize("override,message", [
    ("recipe=nope", "unknown recipe 'nope'; recipe options: bdhs, critic_sft, curry_dpo, dpo"),
    ("foo=1", "unknown key 'foo'"),
    ("trainer.max_step=3", "trainer.max_step is not an option of Trainer; did you mean max_steps"),
    ("data.world_config.n_trains=3", "unknown shapes world setting(s) n_trains"),
])
def test_config_errors_are_one_line_that_says_what_to_do(override, message, capsys, tmp_path):
    assert main(["train", override, f"output_dir={tmp_path}/run", f"data_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo train: ") and message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_errors_after_start_up_are_one_line_with_the_traceback_behind_debug(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_text("x")
    argv = ["train", f"output_dir={run}", f"data_root={tmp_path}", "data.world_config.n_train=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(FileExistsError):
        main(["--debug", *argv])
    monkeypatch.setenv("ZOO_DEBUG", "1")
    with pytest.raises(FileExistsError):
        main(argv)


def test_eval_lists_suites_and_tasks_and_refuses_unknown_ones(capsys):
    from benchmarks.suites import SUITES, task_names

    assert main(["eval", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"suite {name}:" in out for name in SUITES) and all(t in out for t in task_names())
    assert main(["eval", "model", "--tasks", "chair,nope"]) == 2
    assert "unknown task(s) nope; tasks: " in capsys.readouterr().err
    assert main(["eval", "model"]) == 2
    assert "give --suite NAME or --tasks" in capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help(monkeypatch):
    import zoo.cli

    captured = {}
    real = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        captured["parser"] = self
        return real(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    zoo.cli.main(["eval", "--list"])
    missing = [f"{name} {a.dest}" for name, sub in _subparsers(captured["parser"]).items() if name != "train"
               for a in sub._actions if a.help is None and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"options without help: {missing}"
