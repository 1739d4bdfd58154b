"""The config of ``zoo train``: Hydra composition of ``recipes/``, a YAML file of overrides, and the help text.

Kept apart from `zoo.train.run` so that ``zoo train --help`` and ``--cfg job`` import Hydra, not Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo.train.validate import ConfigError

# Sections open to keys the recipes do not list: any lightning.Trainer argument (checked against Trainer's
# signature by validate_config) and any world setting (checked by the world's config class). An override
# there is sent to Hydra as ``++key=value`` (add or replace), so ``trainer.accumulate_grad_batches=4`` needs no ``+``.
OPEN_SECTIONS = ("trainer.", "data.world_config.")


def _open(override: str) -> str:
    return "++" + override if override.startswith(OPEN_SECTIONS) and "=" in override else override


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
                   config_file: str | Path | None = None) -> DictConfig:
    """The resolved-on-access config for ``overrides`` (Hydra syntax: ``group=option``, ``a.b=value``).

    ``config_file``: a YAML file of overrides (`config_file_overrides`) applied before ``overrides``, which win.
    """
    overrides = [*(config_file_overrides(config_file) if config_file else []), *overrides]
    with initialize_config_module(config_module="recipes", version_base=None):
        return compose(config_name=config_name, overrides=[_open(o) for o in overrides])


def config_groups() -> dict[str, list[str]]:
    """Each config group of ``zoo train`` and its options, as Hydra's config loader lists them."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    with initialize_config_module(config_module="recipes", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        return {g: loader.get_group_options(g, results_filter=ObjectType.CONFIG) for g in sorted(loader.list_groups(""))
                if g != "hydra"}


def _hydra_value(value: Any) -> str:
    """A YAML value as Hydra override text (strings quoted, so ``a=b`` or commas in them stay one value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def config_file_overrides(path: str | Path) -> list[str]:
    """The overrides a ``zoo train --config FILE`` file stands for: the file is a command line written as YAML.

    A top-level key naming a config group with a string value picks that option (``recipe: dpo``); every
    other key, nested or dotted (``trainer: {max_steps: 300}``, ``model.path: runs/sft/model``), sets a value.
    Group choices come first, as on a command line.
    """
    path = Path(path)
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except Exception as e:  # YAML syntax: the parser's first line names the place
        raise ConfigError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: must be a mapping of keys to values (like recipe.yaml), "
                          f"not {type(data).__name__}")
    groups = set(config_groups())
    choices, values = [], []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            values.append(f"{prefix}={_hydra_value(node)}")

    for key, value in data.items():
        if key in groups and isinstance(value, str):
            choices.append(f"{key}={value}")
        else:
            walk(str(key), value)
    return choices + values


def _summary(file: str) -> str:
    """The first line of a recipes/ file's leading comment (what the option is), cut at its first sentence."""
    from importlib.resources import files

    for line in files("recipes").joinpath(file).read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            text = line.lstrip("# ").strip()
            return (text.split(": ", 1)[0] if len(text) > 70 else text).rstrip(":")
    return ""


def describe_config() -> str:
    """What ``zoo train`` can change: each config group with its options and default, and the top-level keys."""
    groups = config_groups()
    with initialize_config_module(config_module="recipes", version_base=None):
        full = compose(config_name="train", return_hydra_config=True)
    defaults = dict(full.hydra.runtime.choices)  # group -> the option train.yaml's defaults (or a recipe) pick
    with open_dict(full):
        del full["hydra"]  # what is left is the job's config: the keys `zoo train` takes
    cfg = full
    lines = ["config groups (pick one option: GROUP=OPTION):"]
    for group, options in groups.items():
        chosen = f"default: {defaults[group]}" if defaults.get(group) else "set by the recipe"
        lines.append(f"  {group:<10} {', '.join(options)}   ({chosen})")
    lines += ["", "recipes (recipe=NAME):"]
    for name in groups.get("recipe", []):
        lines.append(f"  {name:<12} {_summary(f'recipe/{name}.yaml')}")
    lines += ["", "keys (KEY=VALUE; print every key and its value with --cfg job):"]
    for key, value in cfg.items():
        if not isinstance(value, DictConfig):
            lines.append(f"  {key}={OmegaConf.to_yaml({key: cfg._get_node(key)._value()}).split(': ', 1)[1].strip()}")
    sections = [k for k, v in cfg.items() if isinstance(v, DictConfig)]
    lines.append(f"  and the keys of the sections {', '.join(sections)} (e.g. trainer.max_steps=300, data.batch_size=16)")
    lines += ["", "trainer.* takes any lightning.Trainer argument (e.g. trainer.accumulate_grad_batches=4), "
              "data.world_config.* any setting of the world; other new keys need +KEY=VALUE."]
    return "\n".join(lines)
