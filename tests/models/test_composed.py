"""The composed backbone: Auto-class round trips, generation with the KV cache, media_keep, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from zoo.data.collate import ExampleEncoder, pad_batch
from zoo.models.composed import ComposedForConditionalGeneration


def encode(policy, rows, root, response_field="completion", padding_side="right"):
    enc = ExampleEncoder(policy.processor, max_length=128, media_root=root)
    examples = [enc.encode(r, i, response_field) for i, r in enumerate(rows)]
    return pad_batch(examples, policy.tokenizer.pad_token_id, padding_side)


@pytest.fixture(scope="module")
def batch(tiny_policy, tiny_rows, tiny_world):
    rows = [r for r in tiny_rows if r["task"] == "caption"][:2] + [r for r in tiny_rows if r["task"] == "count"][:1]
    return encode(tiny_policy, rows, tiny_world)


@pytest.fixture(scope="module")
def prompts(tiny_policy, tiny_rows, tiny_world):
    rows = [r for r in tiny_rows if r["task"] == "caption"][:1] + [r for r in tiny_rows if r["task"] == "colour"][:1]
    return encode(tiny_policy, rows, tiny_world, response_field=None, padding_side="left")


def model_logits(model, batch, **kw):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     pixel_values=batch["pixel_values"], **kw).logits


def test_round_trip_in_a_fresh_process_is_bit_identical(tiny_policy, batch, tmp_path):
    tiny_policy.backbone.save_pretrained(tmp_path / "model")
    torch.save({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}, tmp_path / "batch.pt")
    script = textwrap.dedent(
        f"""
        import torch, zoo.models.composed  # registers the Auto classes
        from transformers import AutoModel, AutoModelForImageTextToText
        b = torch.load("{tmp_path}/batch.pt")
        out = {{}}
        for name, cls in [("itt", AutoModelForImageTextToText), ("auto", AutoModel)]:
            m = cls.from_pretrained("{tmp_path}/model").eval()
            with torch.no_grad():
                out[name] = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                              pixel_values=b["pixel_values"]).logits
            out[name + "_type"] = type(m).__name__
        torch.save(out, "{tmp_path}/out.pt")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    out = torch.load(tmp_path / "out.pt")
    expected = model_logits(tiny_policy.model, batch)
    assert out["itt_type"] == out["auto_type"] == "ComposedForConditionalGeneration"
    assert torch.equal(out["itt"], expected)
    assert torch.equal(out["auto"], expected)


def test_load_policy_restores_processor_and_tokenizer(tiny_policy, batch, tmp_path):
    from zoo.models import load_policy

    tiny_policy.backbone.save_pretrained(tmp_path)
    loaded = load_policy(tmp_path)
    assert loaded.tokenizer.get_vocab() == tiny_policy.tokenizer.get_vocab()
    assert loaded.tokenizer.chat_template == tiny_policy.tokenizer.chat_template
    assert loaded.processor.media == tiny_policy.processor.media
    assert torch.equal(loaded.sequence_logps(batch).logps, tiny_policy.sequence_logps(batch).logps)


def test_sequence_logps_counts_response_tokens_only(tiny_policy, batch):
    out = tiny_policy.sequence_logps(batch)
    logits = model_logits(tiny_policy.model, batch).log_softmax(-1)
    for row in range(batch["input_ids"].shape[0]):
        n = int(batch["attention_mask"][row].sum())
        ids, labels = batch["input_ids"][row, :n], batch["labels"][row, :n]
        expected = torch.zeros(out.token_logps.shape[1])
        for t in range(1, n):
            if labels[t] != -100:
                expected[t - 1] = logits[row, t - 1, ids[t]]
        assert out.lengths[row] == int((labels != -100).sum())
        torch.testing.assert_close(out.token_logps[row], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.logps[row], expected.sum(), atol=1e-4, rtol=1e-6)


def test_policy_generate_matches_hf_generate_and_uses_the_cache(tiny_policy, prompts):
    model = tiny_policy.model
    no_stop = [tiny_policy.tokenizer.pad_token_id]  # never produced: both run the full length
    ours = tiny_policy.generate(prompts, max_new_tokens=6, stop_token_ids=no_stop)
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        hf = model.generate(input_ids=prompts["input_ids"], attention_mask=prompts["attention_mask"],
                            pixel_values=prompts["pixel_values"], max_new_tokens=6, do_sample=False)
        hf_nocache = model.generate(input_ids=prompts["input_ids"], attention_mask=prompts["attention_mask"],
                                    pixel_values=prompts["pixel_values"], max_new_tokens=6, do_sample=False,
                                    use_cache=False)
    model.generation_config.eos_token_id = tiny_policy.tokenizer.eos_token_id
    new = hf[:, prompts["input_ids"].shape[1]:].tolist()
    assert ours.token_ids == new
    assert hf_nocache[:, prompts["input_ids"].shape[1]:].tolist() == new

    seen = []
    hook = model.language_model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        tiny_policy.generate(prompts, max_new_tokens=4, stop_token_ids=no_stop)
    finally:
        hook.remove()
    assert seen == [prompts["input_ids"].shape[1], 1, 1, 1]  # prefill once, then one token per step


def _later_text_logits(policy, batch, media=None, media_keep=None):
    logits = policy.logits(batch, media=media, media_keep=media_keep)
    is_media = policy.backbone.media_token_mask(batch)
    last_media = int(is_media.nonzero()[:, 1].max())
    return logits[:, last_media + 1 :]


def test_hiding_all_media_makes_later_logits_independent_of_the_image(tiny_policy, batch):
    other = dict(batch, pixel_values=batch["pixel_values"].flip(0) + 0.5)
    keep = ~tiny_policy.backbone.media_token_mask(batch)
    a = _later_text_logits(tiny_policy, batch, media_keep=keep)
    b = _later_text_logits(tiny_policy, other, media_keep=keep)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    unmasked_a = _later_text_logits(tiny_policy, batch)
    unmasked_b = _later_text_logits(tiny_policy, other)
    assert (unmasked_a - unmasked_b).abs().max() > 1e-3


def test_masked_media_tokens_do_not_influence_later_tokens_but_visible_ones_do(tiny_policy, batch):
    media = tiny_policy.encode_media(batch)
    is_media = tiny_policy.backbone.media_token_mask(batch)
    keep = torch.ones_like(is_media)
    media_pos = is_media[0].nonzero().squeeze(-1)
    keep[0, media_pos[::2]] = False  # hide every other image token of row 0

    def perturbed(token_idx):
        emb = {k: v.clone() for k, v in media.items()}
        emb["image"][0, token_idx] += 3.0
        return emb

    base = _later_text_logits(tiny_policy, batch, media, keep)
    hidden = _later_text_logits(tiny_policy, batch, perturbed(0), keep)  # token 0 is hidden
    visible = _later_text_logits(tiny_policy, batch, perturbed(1), keep)  # token 1 is visible
    torch.testing.assert_close(hidden, base, atol=1e-6, rtol=0)
    assert (visible - base).abs().max() > 1e-4
    # masking changes neither the length nor the positions of the sequence
    assert tiny_policy.logits(batch, media, keep).shape == tiny_policy.logits(batch, media).shape


def test_generation_honours_media_keep_like_hf_generate(tiny_policy, prompts):
    keep = ~tiny_policy.backbone.media_token_mask(prompts)
    no_stop = [tiny_policy.tokenizer.pad_token_id]
    ours = tiny_policy.generate(prompts, media_keep=keep, max_new_tokens=5, stop_token_ids=no_stop)
    blank = dict(prompts, pixel_values=torch.zeros_like(prompts["pixel_values"]))
    ours_blank = tiny_policy.generate(blank, media_keep=keep, max_new_tokens=5, stop_token_ids=no_stop)
    assert ours.token_ids == ours_blank.token_ids  # the image is hidden at every decoding step
    model = tiny_policy.model
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        hf = model.generate(input_ids=prompts["input_ids"], attention_mask=prompts["attention_mask"],
                            pixel_values=prompts["pixel_values"], media_keep=keep, max_new_tokens=5, do_sample=False,
                            suppress_tokens=tiny_policy.backbone.media_token_ids)  # ours never writes a placeholder
    model.generation_config.eos_token_id = tiny_policy.tokenizer.eos_token_id
    assert hf[:, prompts["input_ids"].shape[1]:].tolist() == ours.token_ids


def test_media_keep_may_not_hide_text(tiny_policy, batch):
    keep = torch.ones_like(batch["input_ids"], dtype=torch.bool)
    keep[0, -1] = False
    with pytest.raises(ValueError, match="non-media"):
        tiny_policy.logits(batch, media_keep=keep)


def test_image_tokens_and_features_must_agree(tiny_policy, batch):
    with pytest.raises(ValueError, match="image tokens and image features disagree"):
        model_logits(tiny_policy.model, dict(batch, pixel_values=batch["pixel_values"][:1]))


def test_generate_refuses_right_padded_prompts(tiny_policy, tiny_rows, tiny_world):
    rows = [r for r in tiny_rows if r["task"] == "caption"][:1] + [r for r in tiny_rows if r["task"] == "count"][:1]
    right = encode(tiny_policy, rows, tiny_world, response_field=None, padding_side="right")
    if bool(right["attention_mask"].all()):
        pytest.fail("fixture rows should differ in length")
    with pytest.raises(ValueError, match="left-padded"):
        tiny_policy.generate(right, max_new_tokens=2)


def test_composed_model_class_is_registered():
    from transformers import AutoConfig

    assert AutoConfig.for_model("zoo_composed").model_type == "zoo_composed"
    assert issubclass(ComposedForConditionalGeneration, torch.nn.Module)
