"""zoo: align multimodal models with preferences. ``from zoo import load`` gets a zoo model.

Nothing heavy is imported here. After ``import zoo``, the composed model is registered with
``transformers``' Auto classes as soon as ``transformers`` is imported (at once if it already is), so
``AutoModelForImageTextToText.from_pretrained`` loads zoo models without importing anything else.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register_composed() -> None:
    import zoo.models.composed  # noqa: F401  (registers with AutoConfig / AutoModel / AutoModelForImageTextToText)


class _RegisterOnTransformersImport(importlib.abc.MetaPathFinder):
    """Registers the composed model right after ``transformers`` itself is imported (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                _register_composed()

            spec.loader.exec_module = exec_and_register
        return spec


if "transformers" in sys.modules:
    _register_composed()
elif not any(isinstance(f, _RegisterOnTransformersImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnTransformersImport())


def load(name_or_path, revision=None, device=None, dtype=None, hub=None):
    """A `ZooModel` from a zoo name, a hub repo id or a local folder (see `zoo.zoo_model.load`)."""
    from zoo.zoo_model import load as _load

    return _load(name_or_path, revision=revision, device=device, dtype=dtype, hub=hub)


def list_models():
    """The zoo's registered entries (`zoo.entries.ZooEntry`), sorted by name."""
    from zoo.entries import list_models as _list

    return _list()


__all__ = ["load", "list_models"]
