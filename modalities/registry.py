"""The modality records: what a composed model needs to know about each input modality."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from zoo.registry import Registry


@dataclass
class Modality:
    """What a composed model needs to know about one input modality."""

    name: str
    placeholder: str  # the text placeholder a prompt uses for one item, e.g. "<image>"
    encoder_config: type  # dataclass of the encoder's constructor arguments
    encoder: type  # nn.Module: processed tensors -> [N, tokens, dim]
    processor: type  # raw items -> processed tensors
    input_key: str  # the batch key holding this modality's processed tensors


MODALITIES: Registry[Modality] = Registry("modality")


def get_modality(name: str) -> Modality:
    """The registered modality ``name``; its module (``modalities.<name>``) is imported on first use."""
    if name not in MODALITIES:
        try:
            importlib.import_module(f"modalities.{name}")
        except ModuleNotFoundError:
            pass
    return MODALITIES.get(name)
