"""Config validation at start-up: a composed run is checked before any model, data or trainer is built.

A field given on the command line reaches Python as whatever Hydra parsed (``trainer.max_steps=abc`` is the
string ``"abc"``); without a check it fails minutes later deep inside Lightning, or trains on silently.
`validate_config` compares every trainer and data field with the type its class declares, and builds the
objective (cheap: no model), whose constructor refuses unknown terms, unknown hyper-parameters and values
out of range. Each problem is one `ConfigError` line naming the field.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

_BASIC = (bool, int, float, str, type(None))


class ConfigError(ValueError):
    """A composed run that cannot be right: names the field and what it must be."""


def _allowed(annotation: Any) -> tuple[type, ...] | None:
    """The basic types an annotation allows; None when it allows anything else too (then no check)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if isinstance(annotation, type):
        return (annotation,) if annotation in _BASIC else None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_allowed(a) for a in typing.get_args(annotation)]
        if any(p is None for p in parts):
            return None
        return tuple(t for p in parts for t in p)
    if typing.get_origin(annotation) is typing.Literal:
        return None
    return None


def _matches(value: Any, allowed: tuple[type, ...]) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return isinstance(value, allowed)


def _type_name(allowed: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in allowed))


def check_fields(section: str, values: DictConfig | dict, target: Any) -> None:
    """Every field of ``values`` that ``target``'s ``__init__`` declares with basic types must have one of them."""
    hints: dict[str, Any] = {}
    for cls in getattr(target, "__mro__", (target,)):  # a subclass passing **kwargs on: its bases declare them
        try:
            for key, hint in typing.get_type_hints(cls.__init__).items():
                hints.setdefault(key, hint)
        except Exception:  # unresolvable annotations (forward references of optional packages): skip that class
            continue
    for key, value in (values.items() if isinstance(values, dict) else OmegaConf.to_container(values, resolve=True).items()):
        if key.startswith("_") or key not in hints:
            continue
        allowed = _allowed(hints[key])
        if allowed is not None and not isinstance(value, (dict, list)) and not _matches(value, allowed):
            raise ConfigError(f"{section}.{key} must be {_type_name(allowed)}, not {value!r}")


def check_known(section: str, values: DictConfig | dict, target: Any) -> None:
    """Every field of ``values`` must be a parameter of ``target``'s ``__init__`` (unless it takes ``**kwargs``):
    ``trainer.max_step=10`` is an error naming ``max_steps``, not a TypeError when the trainer is built."""
    params = inspect.signature(target.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k in params if k != "self"]
    for key in values:
        if not str(key).startswith("_") and key not in known:
            close = difflib.get_close_matches(str(key), known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; {section} takes: {', '.join(known)}"
            raise ConfigError(f"{section}.{key} is not an option of {target.__name__}{hint}")


def validate_config(cfg: DictConfig) -> None:
    """Refuse a composed run that cannot be right, before anything is built (see the module docstring)."""
    for section in ("trainer", "data"):
        node = cfg.get(section)
        if node is not None and node.get("_target_"):
            try:
                target = get_class(node._target_)
            except Exception as e:
                raise ConfigError(f"{section}._target_: cannot import {node._target_!r} ({e})") from None
            if section == "trainer":  # open to any Trainer argument (added with ++ by compose_config)
                check_known(section, node, target)
            check_fields(section, node, target)
    for key in ("checkpoint_every", "seed"):  # the run's own integers (trainer fields are checked above)
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key} must be an integer, not {value!r}")
    module = cfg.get("module") or {}
    for part in ("objective", "pairs"):  # cheap to build (no model): their constructors check their values
        node = module.get(part)
        if node is None:
            continue
        try:
            instantiate(node)
        except (ValueError, TypeError, KeyError, InstantiationException) as e:
            cause = e.__cause__ if e.__cause__ is not None else e  # Hydra wraps the constructor's error
            message = cause.args[0] if cause.args else str(cause)
            raise ConfigError(f"module.{part}: {message}") from None
