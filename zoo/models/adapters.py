"""Adapters on a policy's model: LoRA on its language model (peft) and freezing named parts.

`load_policy(..., freeze=…, lora=…)` applies them when a model is loaded; the LoRA-disabled reference
(`zoo.align.reference.LoRAReference`) finds the adapters again with `find_peft_model`.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from zoo.models.policy import Policy


def apply_lora(policy: Policy, r: int = 8, alpha: int = 16, target_modules=("q_proj", "v_proj"), dropout: float = 0.0):
    """Wrap the policy's language model with peft LoRA; returns the PeftModel.

    The model's decoder, wherever its ``get_decoder()`` finds it — the composed model's
    ``language_model`` (a causal LM), an HF-native VLM's ``model.language_model`` (LLaVA, Qwen2-VL, the
    Omni thinker …) or ``model.text_model`` (Idefics3) — is wrapped in place; its base
    weights are frozen and the Policy keeps working unchanged (every model calls its decoder with
    ``inputs_embeds``). Media towers are untouched: freeze them separately if wanted.
    """
    from peft import LoraConfig, get_peft_model

    model = policy.model
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    path = next((name for name, module in model.named_modules() if module is decoder and name), None)
    if path is None:
        raise TypeError(f"apply_lora: {type(model).__name__} has no language model (decoder) to wrap")
    parent, _, attr = path.rpartition(".")
    owner = model.get_submodule(parent)
    causal = decoder.get_output_embeddings() is not None if hasattr(decoder, "get_output_embeddings") else False
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=dropout,
                        task_type="CAUSAL_LM" if causal else None)
    with warnings.catch_warnings():  # peft calls a transformers property deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        setattr(owner, attr, get_peft_model(decoder, config))
    if not causal:  # the LM head sits outside the wrapped decoder: frozen too
        model.get_output_embeddings().requires_grad_(False)
    return getattr(owner, attr)


def freeze_modules(policy: Policy, names) -> list[str]:
    """Freeze the named submodules or parameters (``vision_tower``, ``multi_modal_projector``, ``visual``,
    ``image_newline`` …), looked up on the model and on an HF-native model's inner ``model``; returns the
    names frozen."""
    model = policy.model
    owners = [model, getattr(model, "model", None)]
    frozen = []
    for name in names:
        part = next((getattr(o, name) for o in owners if isinstance(getattr(o, name, None), (nn.Module, nn.Parameter))),
                    None)  # fmt: skip
        if part is None:
            found = sorted({n for o in owners if isinstance(o, nn.Module) for n, _ in o.named_children()})
            what = f"{type(model).__name__} has no such module or parameter"
            raise ValueError(f"cannot freeze {name!r}: {what} (has: {', '.join(found)})")
        part.requires_grad_(False)
        frozen.append(name)
    return frozen


def find_peft_model(model: nn.Module):
    from peft import PeftModel

    for module in model.modules():
        if isinstance(module, PeftModel):
            return module
    raise ValueError("the policy has no LoRA adapters (wrap it with apply_lora first)")


def peft_prefix(model: nn.Module) -> str | None:
    """The module name of the policy's PeftModel (its wrapped language model), or None without LoRA."""
    from peft import PeftModel

    return next((name for name, m in model.named_modules() if isinstance(m, PeftModel)), None)


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict ``model`` would have without its LoRA wrapping, each adapter's update folded into its
    base weight (W + B·A·α/r): what a plain model of the same architecture loads. Computed aside, so the
    model itself keeps training with its adapters unmerged."""
    from peft.tuners.lora import LoraLayer

    prefix = peft_prefix(model)
    if prefix is None:
        return model.state_dict()
    wrapper = f"{prefix}.base_model.model."  # PeftModel → LoraModel → the original module
    deltas = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and not module.merged:
            for adapter in module.active_adapters:
                delta = module.get_delta_weight(adapter).detach()
                key = f"{name}.base_layer.weight"
                deltas[key] = deltas[key] + delta if key in deltas else delta
    clean = {}
    for key, tensor in model.state_dict().items():
        if ".lora_" in key:  # lora_A / lora_B / lora_embedding_*: folded into the base weights below
            continue
        value = tensor + deltas[key].to(tensor.dtype) if key in deltas else tensor
        clean[key.replace(wrapper, f"{prefix}.").replace(".base_layer.", ".")] = value
    return clean
