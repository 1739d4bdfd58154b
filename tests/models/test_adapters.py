"""Adapters on a policy's model (zoo.models.adapters): LoRA on the language model, freezing named parts."""

from __future__ import annotations

import pytest
from peft import PeftModel

from tests.conftest import build_tiny_policy
from zoo.models.adapters import apply_lora, find_peft_model, freeze_modules


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
