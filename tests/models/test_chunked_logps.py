"""Chunked response log-probs (`Policy.logps_chunk`, `chunked_response_logps`) equal the full-logits computation.

The chunked path scores only the response positions, a chunk at a time, from the final hidden states and the LM
head's weight, and recomputes each chunk's logits in backward; it must give the same log-probs and the same
gradients (of the states, the head's weight and bias, and through them every parameter) as `response_logps` on
the full logits, for every backbone stand-in, both group layouts and any chunk size.
"""

from __future__ import annotations

import pytest
import torch

from tests.models.test_pair_logps import ARCHS, assert_same, encode_pairs, native_rows, policy_for, run, shapes_rows
from zoo.data.batches import IGNORE_INDEX
from zoo.models.policy import chunked_response_logps, response_logps


def random_problem(dtype, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T, H, V = 3, 7, 5, 11
    states = torch.randn(B, T, H, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    weight = torch.randn(V, H, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.randn(V, generator=g, dtype=torch.float64).to(dtype).requires_grad_() if bias else None
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[0, :3] = IGNORE_INDEX  # a prompt
    labels[1, 5:] = IGNORE_INDEX  # padding
    labels[2, :] = IGNORE_INDEX  # a row with no response token
    return states, weight, b, labels


def grads_of(fn, states, weight, b, labels):
    for t in (states, weight, b):
        if t is not None:
            t.grad = None
    out = fn(states, weight, b, labels)
    upstream = torch.linspace(-1.0, 2.0, out.token_logps.numel(), dtype=out.token_logps.dtype)
    (out.token_logps * upstream.view_as(out.token_logps)).sum().backward()
    return out, [t.grad.clone() for t in (states, weight, b) if t is not None]


def full(states, weight, b, labels):
    return response_logps(torch.nn.functional.linear(states, weight, b), labels)


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["fp64", "fp32", "bf16"])
def test_chunked_equals_full_logits(dtype, bias, chunk):
    states, weight, b, labels = random_problem(dtype, bias)
    naive, g_naive = grads_of(full, states, weight, b, labels)
    fast, g_fast = grads_of(lambda *a: chunked_response_logps(*a, chunk=chunk), states, weight, b, labels)
    assert torch.equal(fast.mask, naive.mask) and torch.equal(fast.lengths, naive.lengths)
    assert fast.token_logps.dtype == naive.token_logps.dtype == torch.promote_types(dtype, torch.float32)
    assert torch.all(fast.token_logps[~fast.mask] == 0) and naive.logps[:2].abs().min() > 1.0
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 0.0}[dtype]
    torch.testing.assert_close(fast.token_logps, naive.token_logps, atol=tol, rtol=0)
    for got, want in zip(g_fast, g_naive, strict=True):
        assert got.dtype == want.dtype
        # bf16: the same bf16 operations, summed over chunks in another order
        atol = tol if dtype != torch.bfloat16 else 0.02 * float(want.abs().max())
        torch.testing.assert_close(got, want, atol=atol, rtol=0)


def test_a_frozen_head_gets_no_gradient():
    states, weight, b, labels = random_problem(torch.float64)
    weight.requires_grad_(False)
    out = chunked_response_logps(states, weight, None, labels, chunk=2)
    out.logps.sum().backward()
    assert weight.grad is None and states.grad is not None


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("layout", ["shared_prefix", "concat"])
@pytest.mark.parametrize("arch", ARCHS)
def test_policy_logps_chunk_equals_full_logits(arch, layout, dtype, tiny_world, monkeypatch):
    """Every backbone stand-in: group log-probs and every parameter's gradient with ``logps_chunk = 3`` equal
    those from the full logits, in both group layouts."""
    import zoo.models.policy as policy_module

    policy = policy_for(arch, dtype)
    rows = shapes_rows(tiny_world) if arch == "composed" else native_rows()
    pairs = encode_pairs(policy, rows, tiny_world if arch == "composed" else None)
    naive, g_naive = run(policy, pairs, layout)
    calls = []
    chunked = policy_module.chunked_response_logps
    monkeypatch.setattr(policy_module, "chunked_response_logps",
                        lambda *a, **k: calls.append(a[0].shape) or chunked(*a, **k))
    policy.logps_chunk = 3
    fast, g_fast = run(policy, pairs, layout)
    hidden = policy.model.get_output_embeddings().in_features
    assert calls and all(shape[-1] == hidden for shape in calls)  # scored from the hidden states
    assert "forward" not in vars(policy.model.get_output_embeddings())  # the head is itself again
    assert_same(fast, g_fast, naive, g_naive, dtype)


def test_post_processed_logits_are_refused(tiny_world):
    policy = policy_for("composed", torch.float32)
    policy.model.config.get_text_config().final_logit_softcapping = 30.0
    policy.logps_chunk = 8
    pairs = encode_pairs(policy, shapes_rows(tiny_world), tiny_world)
    with pytest.raises(ValueError, match="final_logit_softcapping=30.0: set logps_chunk=0"):
        run(policy, pairs, "shared_prefix")


def test_the_training_modules_set_and_check_logps_chunk():
    from functools import partial

    from zoo.train.modules import SFTModule

    policy = policy_for("composed", torch.float32)
    SFTModule(policy, optimizer=partial(torch.optim.AdamW, lr=1e-3), logps_chunk=64)
    assert policy.logps_chunk == 64
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="module.logps_chunk must be an integer >= 0"):
            SFTModule(policy, optimizer=partial(torch.optim.AdamW, lr=1e-3), logps_chunk=bad)
