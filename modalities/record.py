"""The modality record: everything the project knows about one input modality, and the table of them.

The schema (a column per record), example encoding (loader, HF processor keyword and sub-processor,
which processor outputs describe media), the HF-native adapter (the media token, the batch key and the
model method that encodes it), the composed model (placeholder, encoder, processor) and
``ZooModel.generate``/``chat`` (a keyword per column) iterate over the records instead of naming image,
audio and video.

Adding a modality is one new module ``modalities/<name>.py`` that defines its loader and registers its
record, plus its test (and an in-memory item of it in ``SAMPLES`` of ``tests/modalities/test_records.py``,
whose tests check every record against the schema and example encoding). Every module of the package is
imported by `all_modalities`, so the new kind is a schema column, a processor argument and a ``generate``
keyword at once::

    MODALITIES.register("depth", Modality(
        name="depth", column="depths", load=load_depth, processor_kwarg="depth_maps",
        hf_subprocessor="depth_processor", input_key="depth_values", input_prefixes=("depth_",),
        token_id_attr="depth_token_id", hf_encode_method="get_depth_features", order=3,
    ))
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo.registry import Registry


@dataclass(frozen=True)
class Modality:
    """One input modality (see the module docstring)."""

    name: str  # the content-part type in prompts: {"type": "image"}
    column: str  # the dataset column holding a row's items, in placeholder order: "images"
    load: Callable[..., Any]  # load(item, root, **options) -> the decoded item; failures raise MediaError
    processor_kwarg: str  # the keyword HF processors take the decoded items by: "images"
    hf_subprocessor: str  # the attribute of an HF processor that reads this kind: "image_processor"
    input_key: str  # the processor output holding the processed items, composed and HF alike: "pixel_values"
    # Prefixes of every processor output that describes these media, not prompt tokens (grids, sizes, masks)
    input_prefixes: tuple[str, ...]
    token_id_attr: str  # the config/processor attribute holding its media token's id: "image_token_id"
    hf_encode_method: str  # the HF model method that encodes ``input_key``: "get_image_features"
    # Its place among a turn's media (generate puts images first) and among the columns a dataset
    # fingerprint hashes (a new order would change every cached reference's key).
    order: int
    load_options: tuple[str, ...] = ()  # example-encoder settings the loader takes by name: ("sampling_rate",)
    world: str | None = None  # the synthetic world (modalities.synthetic) that generates it, if any
    # The composed model's parts, None where it has none yet: the prompt placeholder of one item, the
    # encoder (config dataclass + nn.Module: processed tensors -> [N, tokens, dim]) and the processor
    # (raw items -> processed tensors).
    placeholder: str | None = None
    encoder_config: type | None = None
    encoder: type | None = None
    processor: type | None = None


MODALITIES: Registry[Modality] = Registry("modality")


def get_modality(name: str) -> Modality:
    """The registered modality ``name``."""
    _import_modality_modules()
    return MODALITIES.get(name)


def all_modalities() -> tuple[Modality, ...]:
    """Every registered modality record, by ``order``."""
    _import_modality_modules()
    return tuple(sorted((m for _, m in MODALITIES.items()), key=lambda m: (m.order, m.name)))


@functools.cache
def _import_modality_modules() -> None:
    """Import each module of the package once: a modality registers its record on import."""
    import modalities

    for module in pkgutil.iter_modules(modalities.__path__):
        if not module.ispkg and not module.name.startswith("_"):
            importlib.import_module(f"modalities.{module.name}")
