"""Backbones behind one Policy interface: composed (ours) and HF-native VLMs."""

from __future__ import annotations

from pathlib import Path


def load_policy(path: str | Path, dtype=None, device=None, trust_remote_code: bool = False,
                lora: dict | None = None, freeze: list[str] | tuple[str, ...] | str = ()):
    """Load a saved model folder (or hub id) as a `Policy`, composed or HF-native alike.

    ``freeze``: submodules to freeze (e.g. ``["vision_tower", "multi_modal_projector"]``), or ``"default"``
    for the model's family default (its media towers: `zoo.models.families.default_freeze`); ``lora``:
    ``{"r", "alpha", "target_modules", "dropout"}`` wraps the language model with LoRA adapters
    (base weights frozen; pair it with ``reference=lora_disabled``).
    """
    from transformers import AutoConfig

    from zoo.models.composed import ComposedBackbone, ComposedConfig
    from zoo.models.policy import Policy

    if isinstance(dtype, str):
        import torch

        dtype = getattr(torch, dtype)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if config.model_type == ComposedConfig.model_type:
        policy = Policy(ComposedBackbone.from_pretrained(path, dtype=dtype, device=device))
    else:
        from zoo.models.native import load_native_policy

        policy = load_native_policy(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    if freeze == "default":
        from zoo.models.families import default_freeze

        freeze = default_freeze(policy.model)
    elif isinstance(freeze, str):
        raise ValueError(f"freeze must be a list of module names or 'default', got {freeze!r}")
    if freeze or lora:
        from zoo.models.adapters import apply_lora, freeze_modules

        freeze_modules(policy, freeze)
        if lora:
            apply_lora(policy, **lora)
    return policy


def load_reward_model(path: str | Path, dtype=None, device=None, trust_remote_code: bool = False,
                      freeze: list[str] | tuple[str, ...] | str = ()):
    """Load a reward-model folder (`zoo.models.reward`: the backbone's folder + ``reward_head.safetensors`` +
    ``reward.json``) as a `RewardModel` in eval mode."""
    from zoo.models.reward import load_reward_model as load

    return load(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code, freeze=freeze)


def load_frozen_policy(path: str | Path, dtype=None, device: str | None = None):
    """A model asked questions, never trained (a judge, a critic, a refiner): `load_policy` in eval mode without
    gradients, on ``device`` (default: CUDA when there is one)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load_policy(path, dtype=dtype, device=device).eval().requires_grad_(False)
