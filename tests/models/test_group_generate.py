"""Policy.generate_group: K responses per prompt from one prefill (media encoded once, the prompt's KV cache
copied K ways) equal K separate prefills — the same rows, greedy tokens and, with one generator, samples."""

from __future__ import annotations

import pytest
import torch

from tests.models.test_native import ROWS
from zoo.data.collate import ExampleEncoder, pad_batch

K = 3


def _prompts(backbone, tiny_policy, tiny_rows, tiny_world, tmp_path_factory):
    if backbone == "composed":
        rows = [r for r in tiny_rows if r["task"] == "caption"][:1] + [r for r in tiny_rows if r["task"] == "colour"][:1]
        policy, encoder = tiny_policy, ExampleEncoder(tiny_policy.processor, max_length=128, media_root=tiny_world)
    else:
        from zoo.models.native import build_tiny_native, load_native_policy

        policy = load_native_policy(build_tiny_native(backbone, tmp_path_factory.mktemp(backbone))).eval()
        rows, encoder = ROWS, ExampleEncoder(policy.processor)
    return policy, [encoder.encode(r, i, None) for i, r in enumerate(rows)]


@pytest.mark.parametrize("backbone", ["composed", "llava", "qwen2_vl"])  # qwen2_vl: M-RoPE positions, media grids
@torch.no_grad()
def test_group_generation_equals_k_separate_prefills(backbone, tiny_policy, tiny_rows, tiny_world, tmp_path_factory):
    policy, examples = _prompts(backbone, tiny_policy, tiny_rows, tiny_world, tmp_path_factory)
    pad = policy.tokenizer.pad_token_id
    batch = pad_batch(examples, pad, "left")
    repeated = pad_batch([e for e in examples for _ in range(K)], pad, "left")  # every copy prefilled
    assert not batch["attention_mask"][:, 0].all()  # really left-padded: the copies share the padding

    greedy = policy.generate_group(batch, K, do_sample=False, max_new_tokens=6)
    assert greedy.token_ids == policy.generate(repeated, do_sample=False, max_new_tokens=6).token_ids
    assert len(greedy.token_ids) == len(examples) * K

    def sampled(fn, b, *k):
        return fn(b, *k, do_sample=True, temperature=1.5, max_new_tokens=8,
                  generator=torch.Generator().manual_seed(7)).token_ids

    group = sampled(policy.generate_group, batch, K)
    assert group == sampled(policy.generate, repeated)
    # K ways, not K copies: the samples of a prompt differ (an untrained model at temperature 1.5)
    assert any(len({tuple(t) for t in group[i * K:(i + 1) * K]}) > 1 for i in range(len(examples)))


def test_group_generation_refuses_k_below_one(tiny_policy, tiny_rows, tiny_world, tmp_path_factory):
    policy, examples = _prompts("composed", tiny_policy, tiny_rows, tiny_world, tmp_path_factory)
    with pytest.raises(ValueError, match="k >= 1"):
        policy.generate_group(pad_batch(examples, policy.tokenizer.pad_token_id, "left"), 0)
