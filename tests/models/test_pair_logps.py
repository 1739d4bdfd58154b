"""Prefix-sharing group batching equals the naive separate forwards (log-probs and gradients).

`Policy.group_logps` on a `PrefixGroups` batch runs each prompt once and continues its K responses
from its KV cache; on a `ConcatGroups` batch it runs the K full sequences separately. Both are computed
here from the same encoded pairs (K = 2) and ranked groups (K = 4), for the composed backbone and every
HF-native stand-in (sliding-window and bidirectional image attention among them), in float64 (so a
difference is a bug, not rounding) and in float32.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import build_tiny_policy
from tests.models.test_native import image
from zoo.data.batches import EncodedGroup
from zoo.data.collate import ExampleEncoder, pad_groups
from zoo.data.schema import DataError
from zoo.models.native import TINY_ARCHS, NativeBackbone, make_tiny_native
from zoo.models.policy import Policy


def pair_row(question: str, img, chosen: str, rejected: str) -> dict:
    def say(text):
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]

    content = [{"type": "image"}, {"type": "text", "text": question}]
    return {"prompt": [{"role": "user", "content": content}], "images": [img],
            "chosen": say(chosen), "rejected": say(rejected)}


def native_rows():
    # different prompt lengths, response lengths, image sizes (Qwen2-VL: different grids and token counts)
    return [
        pair_row("Describe the image.", image(0, (16, 64)), "A red square.", "A red square and a blue circle sit here."),
        pair_row("What colour is the shape in the middle of the picture?", image(1), "The shape is green and round.",
                 "Blue."),
        pair_row("Count the objects.", image(2, (48, 32)), "There are two.", "There are two dogs."),
    ]


def ranked_row(question: str, img, responses: list[str], scores: list[float]) -> dict:
    row = pair_row(question, img, "", "")
    del row["chosen"], row["rejected"]
    row["responses"] = [[{"role": "assistant", "content": [{"type": "text", "text": r}]}] for r in responses]
    row["scores"] = scores
    return row


def native_ranked_rows():
    # K = 4 responses of different lengths per prompt, scores out of order (encoding sorts them best first)
    return [
        ranked_row("Describe the image.", image(0, (16, 64)), ["A red square.", "A blue circle sits here.", "Blue.",
                   "A red square and a blue circle."], [3.0, 0.0, 1.0, 2.0]),
        ranked_row("Count the objects.", image(2, (48, 32)), ["Two.", "There are three dogs and a cat.",
                   "There are two.", "None."], [1.0, 0.5, 2.0, -1.0]),
    ]


def shapes_rows(world):
    from zoo.data.formats import read_rows

    return read_rows(world, "pairs")[:3]


def policy_for(arch: str, dtype: torch.dtype) -> Policy:
    if arch == "composed":
        policy = build_tiny_policy()
    else:
        model, processor = make_tiny_native(arch)
        policy = Policy(NativeBackbone(model, processor))
    return policy.to(dtype).train()  # train mode: dropout is 0 in the tiny configs, as in the models' defaults


def encode_pairs(policy, rows, root=None) -> list[EncodedGroup]:
    encoder = ExampleEncoder(policy.processor, media_root=root)
    return [encoder.encode_group(r, i) for i, r in enumerate(rows)]


def run(policy: Policy, groups, mode: str):
    """Summed log-probs of every response slot and the gradient of a weighted sum w.r.t. every parameter."""
    policy.zero_grad(set_to_none=True)
    batch = pad_groups(groups, policy.tokenizer.pad_token_id, mode)
    slots = policy.group_logps(batch)
    # weights make every row and every slot matter in the gradient
    weights = torch.tensor([[1.0, -0.7, 0.3], [0.5, 0.9, -1.1], [-0.4, 0.2, 0.8], [0.6, -0.3, 1.2]], dtype=torch.float64)
    loss = sum((s.logps * weights[k, : len(groups)].to(s.logps.dtype)).sum() for k, s in enumerate(slots))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in policy.named_parameters() if p.grad is not None}
    return slots, grads


def assert_same(fast_slots, g_fast, naive_slots, g_naive, dtype):
    """fp64: summed log-probs equal to 1e-10 and every gradient to 1e-5 (measured: ≤ 1e-13 and ≤ 1.1e-6;
    the gradient rounding comes from RMSNorm, which computes in float32 whatever the dtype).
    fp32: per-token log-probs to 1e-5 and gradients to 1e-5 of the largest gradient."""
    assert len(fast_slots) == len(naive_slots)
    for fast, naive in zip(fast_slots, naive_slots):
        assert torch.equal(fast.lengths, naive.lengths)
        assert naive.logps.abs().min() > 1.0  # real, non-trivial log-probs
        if dtype == torch.float64:
            torch.testing.assert_close(fast.logps, naive.logps, atol=1e-10, rtol=0)
        else:  # response tokens in order, both layouts
            torch.testing.assert_close(fast.token_logps[fast.mask], naive.token_logps[naive.mask], atol=1e-5, rtol=0)
    grad_tol = 1e-5 if dtype == torch.float64 else 1e-5 * max(float(g.abs().max()) for g in g_naive.values())
    assert g_fast.keys() == g_naive.keys()
    # the media encoder and the prompt's layers get their gradient through the shared prefix
    assert any(part in n for n in g_fast for part in ("vision", "visual", "encoders"))
    for name in g_naive:
        torch.testing.assert_close(g_fast[name], g_naive[name], atol=grad_tol, rtol=0,
                                   msg=lambda m, n=name: f"{n}: {m}")


ARCHS = ("composed", *TINY_ARCHS)  # every backbone family's stand-in (zoo/models/families)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefix_equals_concat(arch, dtype, tiny_world):
    policy = policy_for(arch, dtype)
    rows = shapes_rows(tiny_world) if arch == "composed" else native_rows()
    pairs = encode_pairs(policy, rows, tiny_world if arch == "composed" else None)
    naive, g_naive = run(policy, pairs, "concat")
    fast, g_fast = run(policy, pairs, "shared_prefix")
    assert_same(fast, g_fast, naive, g_naive, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("arch", ARCHS)
def test_k_way_prefix_sharing_equals_k_separate_forwards(arch, dtype, tiny_world):
    """Ranked groups (K = 4): the prompt once and four continuations from its cache equal four separate
    full forwards, in log-probs and in every gradient."""
    policy = policy_for(arch, dtype)
    if arch == "composed":
        from zoo.data.formats import read_rows

        rows, root = read_rows(tiny_world, "ranked")[:2], tiny_world
    else:
        rows, root = native_ranked_rows(), None
    groups = encode_pairs(policy, rows, root)
    assert {g.k for g in groups} == {4} and all(g.scores == sorted(g.scores, reverse=True) for g in groups)
    naive, g_naive = run(policy, groups, "concat")
    fast, g_fast = run(policy, groups, "shared_prefix")
    assert_same(fast, g_fast, naive, g_naive, dtype)


@pytest.mark.parametrize("arch", ARCHS)
def test_per_token_logps_match_a_single_pair(arch, tiny_world):
    """Each pair's log-probs do not depend on what else is in the batch (padding is exact)."""
    policy = policy_for(arch, torch.float64).eval()
    rows = shapes_rows(tiny_world) if arch == "composed" else native_rows()
    pairs = encode_pairs(policy, rows, tiny_world if arch == "composed" else None)
    with torch.no_grad():
        c_all, r_all = policy.pair_logps(pad_groups(pairs, policy.tokenizer.pad_token_id))
        for i, pair in enumerate(pairs):
            c_one, r_one = policy.pair_logps(pad_groups([pair], policy.tokenizer.pad_token_id))
            n = int(c_one.lengths[0])
            torch.testing.assert_close(c_all.token_logps[i, :n], c_one.token_logps[0, :n], atol=1e-9, rtol=0)
            torch.testing.assert_close(r_all.logps[i], r_one.logps[0], atol=1e-9, rtol=0)


def test_shared_prefix_encodes_media_and_runs_the_prompt_once(tiny_world):
    policy = policy_for("composed", torch.float32)
    pairs = encode_pairs(policy, shapes_rows(tiny_world), tiny_world)
    calls = {"encode": 0, "tokens": []}
    model = policy.model
    encode, forward = model.encode_media, model.language_model.forward

    def counting_encode(inputs):
        calls["encode"] += 1
        return encode(inputs)

    def counting_forward(*args, **kwargs):
        calls["tokens"].append(tuple(kwargs["inputs_embeds"].shape[:2]))
        return forward(*args, **kwargs)

    model.encode_media, model.language_model.forward = counting_encode, counting_forward
    try:
        batch = pad_groups(pairs, policy.tokenizer.pad_token_id)
        policy.pair_logps(batch)
    finally:
        model.encode_media, model.language_model.forward = encode, forward
    B, P = batch.prompt["input_ids"].shape
    R = batch.responses.input_ids.shape[1]
    assert calls["encode"] == 1
    assert calls["tokens"] == [(B, P), (2 * B, R)]  # the prompt once, then both responses from its cache


def test_pad_groups_layout_and_errors(tiny_world):
    policy = build_tiny_policy()
    pairs = encode_pairs(policy, shapes_rows(tiny_world), tiny_world)
    pad = policy.tokenizer.pad_token_id
    batch = pad_groups(pairs, pad)
    prompt, resp = batch.prompt, batch.responses
    assert bool(prompt["attention_mask"][:, -1].all())  # left-padded: every prompt ends at the last column
    assert prompt["pixel_values"].shape[0] == len(pairs)  # one image per pair, not per side
    assert resp.input_ids.shape[0] == 2 * len(pairs)
    for i, pair in enumerate(pairs):
        for row, ids in ((i, pair.chosen), (len(pairs) + i, pair.rejected)):
            n = len(ids)
            assert torch.equal(resp.input_ids[row, :n], ids) and int(resp.attention_mask[row].sum()) == n
            assert (resp.labels[row, n:] == -100).all()
    concat = pad_groups(pairs, pad, "concat")
    assert torch.equal(concat.sides[0]["input_ids"][0, : len(pairs[0].side(0).input_ids)], pairs[0].side(0).input_ids)
    with pytest.raises(ValueError, match="unknown layout 'zip'"):
        pad_groups(pairs, pad, "zip")
    with pytest.raises(DataError, match="same number"):
        pad_groups([pairs[0], pairs[1].with_responses(list(pairs[1].responses) * 2)], pad)
    right = copy.deepcopy(batch)
    right.prompt["attention_mask"][0, -1] = 0
    with pytest.raises(ValueError, match="left-padded"):
        policy.pair_logps(right)
