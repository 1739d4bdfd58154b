"""Backbones behind one Policy interface: composed (ours) and HF-native VLMs."""

from __future__ import annotations

from pathlib import Path


def load_policy(path: str | Path, dtype=None, device=None, trust_remote_code: bool = False):
    """Load a saved model folder (or hub id) as a `Policy`, composed or HF-native alike."""
    from transformers import AutoConfig

    from zoo.models.composed import ComposedBackbone, ComposedConfig
    from zoo.models.policy import Policy

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if config.model_type == ComposedConfig.model_type:
        return Policy(ComposedBackbone.from_pretrained(path, dtype=dtype, device=device))
    from zoo.models.native import load_native_policy

    return load_native_policy(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
