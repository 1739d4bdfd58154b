"""Adapters on a policy's model (zoo.models.adapters): LoRA on the language model, freezing named parts."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from tests.conftest import build_tiny_policy
from zoo.models.adapters import apply_lora, find_peft_model, freeze_modules, peft_prefix


def test_apply_lora_wraps_the_language_model_only():
    policy = build_tiny_policy()
    with pytest.raises(ValueError, match="no LoRA adapters"):
        find_peft_model(policy.model)
    peft_model = apply_lora(policy, r=4, alpha=8)
    assert isinstance(peft_model, PeftModel) and find_peft_model(policy.model) is peft_model
    trainable = {n for n, p in policy.model.language_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_freeze_modules_names_what_it_cannot_find():
    policy = build_tiny_policy()
    assert freeze_modules(policy, ["encoders"]) == ["encoders"]
    assert not any(p.requires_grad for p in policy.model.encoders.parameters())
    assert all(p.requires_grad for p in policy.model.language_model.parameters())
    with pytest.raises(ValueError, match=r"cannot freeze 'vision_tower'.*has: .*encoders"):
        freeze_modules(policy, ["vision_tower"])


@pytest.mark.parametrize("kind", ["composed", "llava"])
def test_a_lora_model_is_saved_merged_and_reloads_identical(kind, tmp_path):
    """A LoRA-trained model folder is a plain model with the adapters folded in (it once saved the PEFT
    wrapper's names, and reloading left the language model randomly initialised), plus the adapter alone."""
    from safetensors.torch import load_file

    from zoo.models import load_policy
    from zoo.models.native import build_tiny_native

    if kind == "composed":
        policy = build_tiny_policy()
    else:
        build_tiny_native("llava", tmp_path / "base")
        policy = load_policy(tmp_path / "base")
    apply_lora(policy, r=4, alpha=8)
    torch.manual_seed(1)
    for name, p in policy.model.named_parameters():
        if "lora_B" in name:  # B starts at 0 (the adapter a no-op): give it an update to fold in
            p.data.normal_(0, 0.5)
    policy.eval()
    ids = torch.tensor([[1, 5, 7, 9, 11, 13]])
    embeds = policy.model.get_input_embeddings()(ids)
    decoder, where = find_peft_model(policy.model), peft_prefix(policy.model)  # the wrapped language model

    def run(module):  # a causal LM (composed) gives logits, a base decoder (LLaVA) hidden states
        with torch.no_grad():
            out = module(inputs_embeds=embeds)
        return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state

    wrapped = run(decoder)
    policy.backbone.save_pretrained(tmp_path / "saved")

    keys = load_file(str(tmp_path / "saved" / "model.safetensors")).keys()
    assert not [k for k in keys if "lora_" in k or "base_layer" in k or "base_model.model" in k]
    reloaded = load_policy(tmp_path / "saved").eval()
    assert torch.allclose(run(reloaded.model.get_submodule(where)), wrapped, atol=1e-5)
    # the adapter alone, in PEFT's format, on the base language model gives the same outputs
    adapter = tmp_path / "saved" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    base = build_tiny_policy() if kind == "composed" else load_policy(tmp_path / "base")
    on_base = PeftModel.from_pretrained(base.model.get_submodule(where), adapter).eval()
    assert torch.allclose(run(on_base), wrapped, atol=1e-5)
    # and the policy that was saved keeps training with its adapters unmerged
    assert find_peft_model(policy.model) is decoder and any("lora_A" in n for n, _ in policy.model.named_parameters())
