"""Adapters on a policy's model: LoRA on its language model (peft) and freezing named parts.

`load_policy(..., freeze=…, lora=…)` applies them when a model is loaded; the LoRA-disabled reference
(`zoo.align.reference.LoRAReference`) finds the adapters again with `find_peft_model`.
"""

from __future__ import annotations

import warnings

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
