"""Reference strategies: frozen copy, LoRA disabled, cached log-probs — all agree with the policy."""

from __future__ import annotations

import dataclasses

import copy
import shutil

import pytest
import torch
from safetensors import safe_open

from zoo.align.reference import (
    REFERENCES,
    CachedReference,
    FrozenReference,
    LoRAReference,
    cache_key,
    dataset_fingerprint,
    media_frozen,
    model_hash,
)
from zoo.data.collate import ExampleEncoder, encode_rows, pad_batch
from zoo.models.adapters import apply_lora
from zoo.models.native import TINY_ARCHS

N_ROWS = 6


@pytest.fixture(scope="module")
def rows(tiny_rows):
    return [dict(r, example_index=i) for i, r in enumerate(tiny_rows[:N_ROWS])]


@pytest.fixture(scope="module")
def encoded(tiny_policy, tiny_world, rows):
    examples, _ = encode_rows(rows, ExampleEncoder(tiny_policy.processor, media_root=tiny_world).encode)
    return examples


def batches_of(policy, examples, size=3):
    pad = policy.tokenizer.pad_token_id
    return [pad_batch(examples[i : i + size], pad) for i in range(0, len(examples), size)]


def policy_logps(policy, batch):
    with torch.no_grad():
        return policy.sequence_logps(batch).logps


def sgd_step(policy, batches):
    policy.train()
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.05)
    loss = -sum(policy.sequence_logps(b).logps.mean() for b in batches)
    loss.backward()
    opt.step()
    opt.zero_grad()
    policy.eval()


def test_registry():
    assert REFERENCES.names() == ["cached", "frozen", "lora_disabled", "none"]
    assert REFERENCES.get("frozen") is FrozenReference


def test_all_strategies_match_fresh_policy(tiny_policy, encoded, tmp_path):
    assert any(b["pixel_values"].numel() for b in batches_of(tiny_policy, encoded))  # multimodal rows
    policy = copy.deepcopy(tiny_policy)
    batches = batches_of(policy, encoded)
    expected = [policy_logps(policy, b) for b in batches]

    frozen = FrozenReference(policy)
    cached = CachedReference(tmp_path)
    cached.precompute(policy, encoded, "k", batch_size=4, progress=False)  # Encoded examples, other batching
    for batch, want in zip(batches, expected):
        torch.testing.assert_close(frozen.logps(policy, batch), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(cached.logps(policy, batch), want, atol=1e-6, rtol=0)

    lora_policy = copy.deepcopy(tiny_policy)
    apply_lora(lora_policy, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    lora = LoRAReference()
    for batch, want in zip(batches, expected):
        # LoRA B starts at 0: the adapted policy, its reference and the base model all agree
        torch.testing.assert_close(policy_logps(lora_policy, batch), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(lora.logps(lora_policy, batch), want, atol=1e-6, rtol=0)


def test_frozen_and_cached_survive_a_training_step(tiny_policy, encoded, tmp_path):
    policy = copy.deepcopy(tiny_policy)
    batches = batches_of(policy, encoded)
    before = [policy_logps(policy, b) for b in batches]
    frozen = FrozenReference(policy)
    cached = CachedReference(tmp_path, field="completion")
    cached.precompute(policy, {"completion": batches}, "k", progress=False)

    sgd_step(policy, batches)
    for batch, want in zip(batches, before):
        assert not torch.allclose(policy_logps(policy, batch), want, atol=1e-4)
        torch.testing.assert_close(frozen.logps(policy, batch), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(cached.logps(policy, batch), want, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in frozen.policy.parameters())


def test_frozen_reuses_media_only_when_exact(tiny_policy, encoded):
    policy = copy.deepcopy(tiny_policy)
    assert not media_frozen(policy.model) and not FrozenReference(policy).reuse_media
    for name in ("encoders", "projectors"):
        getattr(policy.model, name).requires_grad_(False)
    ref = FrozenReference(policy)
    assert ref.reuse_media
    for batch in batches_of(policy, encoded):
        media = policy.encode_media(batch)
        assert torch.equal(ref.logps(policy, batch, media), ref.logps(policy, batch))


@pytest.mark.parametrize("arch,towers", [
    ("llava", ("vision_tower", "multi_modal_projector")), ("qwen2_vl", ("visual",)),
    ("llava_next", ("vision_tower", "multi_modal_projector", "image_newline")),  # a parameter, not a module
])
def test_frozen_reuses_native_media_only_when_towers_are_frozen(arch, towers):
    from zoo.models.native import NativeBackbone, make_tiny_native
    from zoo.models.policy import Policy

    model, processor = make_tiny_native(arch)
    policy = Policy(NativeBackbone(model, processor))
    assert not media_frozen(model)
    for name in towers[:-1]:
        getattr(model.model, name).requires_grad_(False)
    assert not media_frozen(model)  # one tower still trains
    getattr(model.model, towers[-1]).requires_grad_(False)
    assert media_frozen(model) and FrozenReference(policy).reuse_media


def test_lora_reference_is_the_unadapted_model(tiny_policy, encoded):
    base = copy.deepcopy(tiny_policy)
    policy = copy.deepcopy(tiny_policy)
    peft_model = apply_lora(policy, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    assert not any(p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ref = LoRAReference()
    for batch in batches_of(policy, encoded):
        want = policy_logps(base, batch)
        assert not torch.allclose(policy_logps(policy, batch), want, atol=1e-4)
        torch.testing.assert_close(ref.logps(policy, batch, policy.encode_media(batch)), want, atol=1e-6, rtol=0)
    policy.train()
    ref.logps(policy, batches_of(policy, encoded)[0])
    assert policy.training  # the reference pass restores the mode


def test_lora_reference_needs_adapters(tiny_policy, encoded):
    with pytest.raises(ValueError, match="LoRA"):
        LoRAReference().logps(tiny_policy, batches_of(tiny_policy, encoded)[0])


def test_cache_key_invalidation(tiny_policy, tiny_world, rows, tmp_path):
    world = tmp_path / "world"
    for row in rows:
        for rel in row["images"]:
            (world / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tiny_world / rel, world / rel)
    policy = copy.deepcopy(tiny_policy)
    fp, mh = dataset_fingerprint(rows, world), model_hash(policy)
    assert fp == dataset_fingerprint(copy.deepcopy(rows), world) and mh == model_hash(copy.deepcopy(policy))
    assert dataset_fingerprint(rows[:-1], world) != fp
    edited = copy.deepcopy(rows)
    edited[0]["completion"][0]["content"][0]["text"] += "!"
    assert dataset_fingerprint(edited, world) != fp

    image = world / rows[0]["images"][0]
    image.write_bytes(image.read_bytes() + b"\0")  # same rows, one image's bytes changed
    assert dataset_fingerprint(rows, world) != fp

    with torch.no_grad():
        next(policy.model.parameters()).view(-1)[0] += 1e-3
    assert model_hash(policy) != mh


@pytest.mark.parametrize("arch", ["composed", "llava_next"])
def test_processor_hash_sees_media_settings(arch, tiny_policy):
    """A cached reference must not survive a change of image size (or any media setting): other inputs."""
    from zoo.align.reference import processor_hash
    from zoo.models.native import make_tiny_native

    processor = copy.deepcopy(tiny_policy.processor) if arch == "composed" else make_tiny_native(arch)[1]
    before = processor_hash(processor)
    assert processor_hash(copy.deepcopy(processor)) == before
    if arch == "composed":
        processor.media["image"]["processor"]["image_size"] += 8
    else:
        processor.image_processor.image_grid_pinpoints = [[32, 32]]
    assert processor_hash(processor) != before


def test_cached_recomputes_only_on_a_new_key(tiny_policy, tiny_world, rows, encoded, tmp_path):
    policy = copy.deepcopy(tiny_policy)
    batches = batches_of(policy, encoded)
    cache = CachedReference(tmp_path / "cache")
    key = cache_key(rows, policy, tiny_world)
    path = cache.precompute(policy, {"chosen": batches, "rejected": batches}, key, progress=False)
    assert path.name == f"ref_logps-{key}.safetensors" and path.parent == tmp_path / "cache"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["chosen", "rejected"] and f.metadata()["key"] == key

    calls = []

    class Counting(LoRAReference):
        def logps(self, policy, batch, media=None):
            calls.append(1)
            return policy_logps(policy, batch)

    fresh = CachedReference(tmp_path / "cache")
    fresh.precompute(Counting(), {"chosen": batches, "rejected": batches}, key, policy=policy, progress=False)
    assert calls == []  # same key: loaded, not recomputed
    torch.testing.assert_close(fresh.logps(None, batches[0], field="rejected"), policy_logps(policy, batches[0]))

    sgd_step(policy, batches)
    new_key = cache_key(rows, policy, tiny_world)
    assert new_key != key
    fresh.precompute(Counting(), {"chosen": batches, "rejected": batches}, new_key, policy=policy, progress=False)
    assert len(calls) == 2 * len(batches)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    torch.testing.assert_close(fresh.logps(None, batches[1], field="chosen"), policy_logps(policy, batches[1]))

    with pytest.raises(KeyError, match="not in the reference cache"):
        fresh.logps(None, dict(batches[0], example_index=[99, 100, 101]), field="chosen")


# ---------------------------------------------------------------- pair batches


@pytest.fixture(scope="module")
def pair_batches(tiny_policy, tiny_world):
    from zoo.data.collate import pad_groups
    from zoo.data.formats import read_rows

    rows = [dict(r, example_index=f"pairs[{i}]") for i, r in enumerate(read_rows(tiny_world, "pairs")[:6])]
    encoder = ExampleEncoder(tiny_policy.processor, media_root=tiny_world)
    pairs, _ = encode_rows(rows, encoder.encode_group)
    pad = tiny_policy.tokenizer.pad_token_id
    return {mode: [pad_groups(pairs[i : i + 3], pad, mode) for i in (0, 3)] for mode in ("shared_prefix", "concat")}


def test_pair_logps_of_every_strategy_match_the_policy(tiny_policy, pair_batches, tmp_path):
    policy = copy.deepcopy(tiny_policy).eval()
    cached = CachedReference(tmp_path)
    cached.precompute_groups(policy, pair_batches["shared_prefix"], key="k", progress=False)
    lora_policy = copy.deepcopy(tiny_policy)
    apply_lora(lora_policy)
    for mode, batches in pair_batches.items():
        for batch in batches:
            with torch.no_grad():
                want = [s.logps for s in policy.pair_logps(batch)]
            for name, ref, pol in (("frozen", FrozenReference(policy), policy), ("cached", cached, policy),
                                   ("lora_disabled", LoRAReference().attach(lora_policy), lora_policy),
                                   ("frozen, attached", FrozenReference().attach(policy), policy)):
                got = ref.pair_logps(pol, batch)
                for side, w, g in zip(("chosen", "rejected"), want, got):
                    torch.testing.assert_close(g, w, atol=1e-4, rtol=0, msg=f"{name} {mode} {side}")


def test_no_reference_and_attach_errors(tiny_policy, pair_batches):
    from zoo.align.reference import NoReference

    assert NoReference().group_logps(tiny_policy, pair_batches["concat"][0]) is None
    with pytest.raises(ValueError, match="no LoRA adapters"):
        LoRAReference().attach(tiny_policy)
    with pytest.raises(RuntimeError, match="attach"):
        FrozenReference().group_logps(tiny_policy, pair_batches["concat"][0])


def test_cached_pairs_survive_training_and_are_keyed(tiny_policy, pair_batches, tmp_path):
    policy = copy.deepcopy(tiny_policy)
    before = [[s.logps for s in policy.eval().pair_logps(b)] for b in pair_batches["concat"]]
    cached = CachedReference(tmp_path)
    path = cached.precompute_groups(policy, pair_batches["concat"], key="k1", progress=False)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"responses"}  # [N, K]: every response of every group
    policy.train()
    opt = torch.optim.SGD(policy.parameters(), lr=0.05)
    c, r = policy.pair_logps(pair_batches["concat"][0])
    (r.logps - c.logps).mean().backward()
    opt.step()
    for batch, want in zip(pair_batches["shared_prefix"], before):  # the other layout, same indices
        got = cached.pair_logps(policy, batch)
        torch.testing.assert_close(got[0], want[0].detach(), atol=1e-4, rtol=0)
        torch.testing.assert_close(got[1], want[1].detach(), atol=1e-4, rtol=0)
    with pytest.raises(KeyError, match="not in the reference cache"):
        cached.pair_logps(policy, dataclasses.replace(pair_batches["concat"][0], example_index=["pairs[99]"] * 3))


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_lora_reference_on_native_models_is_the_unadapted_model(arch):
    from tests.models.test_pair_logps import encode_pairs, native_rows
    from zoo.data.collate import pad_groups
    from zoo.models.native import NativeBackbone, make_tiny_native
    from zoo.models.policy import Policy

    model, processor = make_tiny_native(arch)
    base = Policy(NativeBackbone(model, processor)).eval()
    adapted = Policy(NativeBackbone(copy.deepcopy(model), processor)).eval()
    apply_lora(adapted, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    # apply_lora leaves the media towers as they are; the language model and its head are frozen
    in_lm = {"language_model", "text_model", "lm_head"}
    trainable = {n for n, p in adapted.model.named_parameters() if p.requires_grad and in_lm & set(n.split("."))}
    assert trainable and all("lora_" in n for n in trainable)
    assert not adapted.model.get_output_embeddings().weight.requires_grad
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in adapted.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # the adapters have moved
    batch = pad_groups(encode_pairs(base, native_rows()), processor.tokenizer.pad_token_id)
    with torch.no_grad():
        want = [s.logps for s in base.pair_logps(batch)]
        moved = [s.logps for s in adapted.pair_logps(batch)]
    got = LoRAReference().pair_logps(adapted, batch)
    assert (moved[0] - want[0]).abs().max() > 1e-3  # the adapted policy differs …
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)  # … its reference is the un-adapted model


def test_fingerprint_of_rows_with_malformed_media_columns_does_not_crash():
    """A row with ``images: 5`` is a DataError (skippable) at encoding; the fingerprint pass before it must
    not fail on it, and the malformed value still changes the key."""
    from zoo.align.reference import dataset_fingerprint

    good = {"prompt": [{"role": "user", "content": "hi"}], "images": []}
    assert dataset_fingerprint([dict(good, images=5)]) != dataset_fingerprint([good])
