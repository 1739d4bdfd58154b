"""`module.gradient_checkpointing`: each decoder layer recomputed in backward gives the same loss and gradients as
keeping its activations; the shared-prefix layout (which needs the layers' KV cache) is refused with it."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from tests.conftest import build_tiny_policy
from tests.models.test_pair_logps import encode_pairs, shapes_rows
from zoo.align.objectives import Objective
from zoo.align.pairs import PairSource
from zoo.align.reference import FrozenReference
from zoo.data.collate import pad_groups
from zoo.train.modules import PreferenceModule, SFTModule

ADAMW = partial(torch.optim.AdamW, lr=1e-3)


def loss_and_grads(module, batch):
    module.zero_grad(set_to_none=True)
    loss, _ = module.loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.policy.named_parameters() if p.grad is not None}


def dpo_module(checkpointing: bool, layout: str = "concat") -> PreferenceModule:
    policy = build_tiny_policy().to(torch.float64).train()
    return PreferenceModule(policy, ADAMW, Objective("sigmoid", {"beta": 0.1}), FrozenReference(), PairSource(layout),
                            gradient_checkpointing=checkpointing)


def test_checkpointed_layers_give_the_same_loss_and_gradients(tiny_world):
    plain, checkpointed = dpo_module(False), dpo_module(True)
    layers = [m for m in checkpointed.policy.model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert layers  # the decoder's layers recompute in backward
    groups = encode_pairs(plain.policy, shapes_rows(tiny_world), tiny_world)
    batch = pad_groups(groups, plain.policy.tokenizer.pad_token_id, "concat")
    (loss_a, grads_a), (loss_b, grads_b) = loss_and_grads(plain, batch), loss_and_grads(checkpointed, batch)
    torch.testing.assert_close(loss_b, loss_a, atol=1e-12, rtol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-10, rtol=0, msg=name)


def test_the_shared_prefix_layout_is_refused_with_checkpointing():
    with pytest.raises(ValueError, match="set module.pairs.layout=concat"):
        dpo_module(True, layout="shared_prefix")


def test_sft_module_turns_it_on():
    module = SFTModule(build_tiny_policy(), ADAMW, gradient_checkpointing=True)
    assert module.policy.model.is_activation_checkpointing
