"""HF backbone families: one spec per family, read by the adapter, the reference, training and benchmarks.

A `FamilySpec` is everything the project knows about one Hugging Face image-text-to-text family
beyond what ``transformers`` exposes generically: which media its model encodes and with which
method, which modules turn media into language-model inputs (the reference's ``media_frozen``, the
default ``freeze`` of ``model=hf``), the extra tokens its processor writes around media, the inputs
its M-RoPE index names differently, and a tiny random stand-in built offline for tests.
`zoo.models.native.NativeBackbone` finds a loaded model's spec by ``config.model_type``.

Adding a family is one new file in this folder (nothing else): ``zoo/models/families/<name>.py``
that builds its tiny stand-in and registers its spec::

    def tiny(texts):                       # a tiny random model + processor, offline, in seconds
        ...
        return model, processor

    register_family(FamilySpec(
        name="paligemma", model_types=("paligemma",), tiny=tiny,
        media_modules=("vision_tower", "multi_modal_projector"),
    ))

Every module of this package is imported when the package is (``_tiny`` and other ``_``-modules
hold shared pieces and register nothing), so the new family joins ``TINY_ARCHS`` and every test
parametrised over `FAMILIES` (``tests/models/test_families.py``) at once.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.registry import Registry
from zoo.models.families._tiny import TinySizes  # noqa: F401  (public: a builder's sizes, e.g. llava's)


@dataclass(frozen=True)
class FamilySpec:
    """One HF family (see the module docstring)."""

    name: str  # the family's name: a key of TINY_ARCHS (``make_tiny_native(name)``)
    model_types: tuple[str, ...]  # the ``config.model_type`` values it matches
    tiny: Callable[[list[str]], tuple[Any, Any]]  # texts -> (tiny random model, its processor), offline
    # Modules (or parameters) that turn media into language-model inputs, on the model or its inner
    # ``model``: frozen together they let a reference reuse the policy's media features.
    media_modules: tuple[str, ...]
    also_freeze: tuple[str, ...] = ()  # frozen by default besides the media modules (Janus: image generation)
    # The media kinds its model encodes: each modality record names the batch key and the model method
    media: tuple[str, ...] = ("image",)
    # Kinds whose features the model's forward does not take pre-encoded (it re-encodes them from its raw
    # inputs): the adapter writes them into the input embeddings itself and drops these raw inputs.
    scattered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Arguments of the model's M-RoPE index it names differently from its processor's outputs: name ->
    # batch -> value (None: leave it out).
    rope_inputs: Mapping[str, Callable[[dict], Any]] = field(default_factory=dict)
    # Attribute names (on the config or the tokenizer) of tokens only the processor writes around media,
    # such as begin/end-of-image: never generated, like the media tokens themselves.
    media_boundary_tokens: tuple[str, ...] = ()
    # Per-token inputs the model needs on every decoding step (fed as zeros: a new token is text).
    decode_token_inputs: tuple[str, ...] = ()
    # The sub-config that is loaded from a full checkpoint when not all of it is (Qwen2.5-Omni: its
    # thinker); a checkpoint of that part alone (a trained thinker) loads as it is.
    loaded_config: str | None = None
    # The tiny model wrapped in the layout the family's real checkpoints ship (saved by build_tiny_native).
    checkpoint: Callable[[Any], Any] | None = None

    @property
    def freeze(self) -> tuple[str, ...]:
        """What ``model=hf`` freezes unless told otherwise (``model.freeze``)."""
        return self.media_modules + self.also_freeze


FAMILIES: Registry[FamilySpec] = Registry("backbone family")


def register_family(spec: FamilySpec) -> FamilySpec:
    """Register ``spec`` under its name (what a family module does on import)."""
    return FAMILIES.register(spec.name, spec)


# The composed model (zoo.models.composed) is not an HF family; these are its media modules.
COMPOSED_MEDIA_MODULES = ("encoders", "projectors")


def family_for(model_type: str) -> FamilySpec:
    """The spec of the family a ``config.model_type`` belongs to; a clear error for an unknown one."""
    for _, spec in FAMILIES.items():
        if model_type in spec.model_types:
            return spec
    known = ", ".join(f"{name} ({', '.join(spec.model_types)})" for name, spec in FAMILIES.items())
    raise ValueError(
        f"no backbone family for model_type {model_type!r}; known families (model types): {known}. "
        "To add one, write zoo/models/families/<name>.py with its FamilySpec and tiny builder "
        "(see zoo.models.families' docstring)"
    )


def family_of(model) -> FamilySpec:
    """The spec of a loaded HF model (by its ``config.model_type``)."""
    return family_for(model.config.model_type)


def media_module_names() -> tuple[str, ...]:
    """Every name a media module goes by: the composed model's and each family's (for ``media_frozen``)."""
    names = COMPOSED_MEDIA_MODULES + tuple(n for _, spec in FAMILIES.items() for n in spec.media_modules)
    return tuple(dict.fromkeys(names))


def default_freeze(model) -> tuple[str, ...]:
    """What ``freeze="default"`` freezes on ``model``: its family's `FamilySpec.freeze`, or the composed
    model's encoders and projectors."""
    from zoo.models.composed import ComposedConfig  # heavy; imported on use

    if isinstance(model.config, ComposedConfig):
        return COMPOSED_MEDIA_MODULES
    return family_of(model).freeze


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
