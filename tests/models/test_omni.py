"""Qwen2.5-Omni's thinker through NativeBackbone: image, audio and video in one prompt, from real files
(WAV through soundfile, MP4 through decord), on a tiny random stand-in built offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.audio import write_wav
from modalities.video import write_video
from zoo.data.collate import ExampleEncoder, pad_batch, pad_groups
from zoo.models.native import NativeBackbone, make_tiny_native
from zoo.models.policy import Policy

SR = 16_000


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.5 * np.sin(2 * np.pi * hz * t).astype(np.float32)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("omni-media")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (16, 48, 3), dtype=np.uint8)).save(root / "b.png")
    write_wav(root / "long.wav", tone(1.0, 440), SR)
    write_wav(root / "short.wav", tone(0.5, 880), SR)
    write_wav(root / "other.wav", tone(1.0, 220), SR)
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    for t in range(12):
        frames[t, 8:16, 2 * t : 2 * t + 8] = 255  # a square moving right
    write_video(root / "clip.mp4", frames, fps=4)
    return root


def omni_row(text, images=(), audios=(), videos=(), **responses) -> dict:
    parts = [{"type": "image"} for _ in images] + [{"type": "audio"} for _ in audios]
    parts += [{"type": "video"} for _ in videos] + [{"type": "text", "text": text}]
    row = {"prompt": [{"role": "user", "content": parts}], "images": list(images), "audios": list(audios),
           "videos": list(videos)}
    for field, answer in responses.items():
        row[field] = [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return row


ROWS = [  # different audio lengths (1 s, 0.5 s) and media mixes: padding of tokens and of audio features
    omni_row("Describe the image.", ["a.png"], ["long.wav"], ["clip.mp4"], completion="A red square.",
             chosen="A red square.", rejected="Two dogs."),
    omni_row("What colour is the shape in the middle of the picture?", ["b.png"], ["short.wav"],
             completion="The shape is green and round.", chosen="It is green.", rejected="It is yellow and bright."),
]


@pytest.fixture(scope="module")
def omni():
    model, processor = make_tiny_native("qwen2_5_omni")
    return Policy(NativeBackbone(model, processor))


def encode(policy, root, rows=ROWS, field="completion", padding_side="right"):
    encoder = ExampleEncoder(policy.processor, media_root=root)
    examples = [encoder.encode(r, i, field) for i, r in enumerate(rows)]
    return pad_batch(examples, policy.tokenizer.pad_token_id, padding_side), examples


@torch.no_grad()
def test_every_modality_reaches_the_thinker(omni, media):
    batch, examples = encode(omni, media)
    config = omni.model.config
    ids = batch["input_ids"]
    for token, name in ((config.image_token_id, "image"), (config.audio_token_id, "audio")):
        assert (ids == token).sum(1).min() > 0, f"{name} tokens missing"
    assert (ids[0] == config.video_token_id).sum() > 0 and (ids[1] == config.video_token_id).sum() == 0
    # 1 s of audio gives about twice the audio tokens of 0.5 s (the features are padded to one length)
    n_audio = (ids == config.audio_token_id).sum(1)
    assert n_audio.tolist() == [25, 12]
    assert batch["feature_attention_mask"].sum(-1).tolist() == [100, 50]
    assert {"input_features", "feature_attention_mask", "pixel_values_videos"} <= set(batch)
    assert not {"input_features", "feature_attention_mask"} & set(examples[0].token_inputs)
    assert set(omni.backbone.media_token_ids) >= {config.image_token_id, config.audio_token_id, config.video_token_id}

    # ours (media pre-encoded, M-RoPE from the padding mask, audio features as side inputs) equals the
    # model's own forward on the same padded batch
    real = batch["attention_mask"].bool()
    raw = {k: v for k, v in batch.items() if k not in ("labels", "example_index")}
    ours = omni.logits(batch)
    torch.testing.assert_close(ours[real], omni.model(**raw).logits[real], atol=1e-5, rtol=0)
    # and every row equals that row alone: the batch's padding changes nothing
    got = omni.sequence_logps(batch)
    for i, example in enumerate(examples):
        alone = omni.sequence_logps(pad_batch([example], omni.tokenizer.pad_token_id))
        torch.testing.assert_close(got.logps[i], alone.logps[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_audio_and_video_change_the_answer_and_media_keep_hides_them(omni, media):
    batch, _ = encode(omni, media)
    other = [dict(ROWS[0], audios=["other.wav"]), ROWS[1]]
    changed, _ = encode(omni, media, other)
    real = batch["attention_mask"][0].bool()
    assert not torch.allclose(omni.logits(batch)[0, real], omni.logits(changed)[0, real], atol=1e-4)
    # every media token hidden (what BDHS does): the audio no longer matters
    hide = lambda b: ~omni.backbone.media_token_mask(b)  # noqa: E731
    assert (~hide(batch)).sum() > 40  # image, audio and video tokens
    a = omni.sequence_logps(batch, media_keep=hide(batch)).logps
    b = omni.sequence_logps(changed, media_keep=hide(changed)).logps
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_shared_prefix_equals_concat_with_audio_and_video(omni, media):
    policy = Policy(NativeBackbone(*make_tiny_native("qwen2_5_omni"))).to(torch.float64).train()
    encoder = ExampleEncoder(policy.processor, media_root=media)
    pairs = [encoder.encode_group(r, i) for i, r in enumerate(ROWS)]
    results, calls = {}, []
    policy.model.model.audio_tower.register_forward_hook(lambda *_: calls.append(1))
    for mode in ("concat", "shared_prefix"):
        policy.zero_grad(set_to_none=True)
        calls.clear()
        chosen, rejected = policy.pair_logps(pad_groups(pairs, policy.tokenizer.pad_token_id, mode))
        assert len(calls) == 1, f"{mode}: the audio tower ran {len(calls)} times for one batch of pairs"
        (chosen.logps.sum() - 0.5 * rejected.logps.sum()).backward()
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
        results[mode] = chosen.logps.detach(), rejected.logps.detach(), grads
    (c0, r0, g0), (c1, r1, g1) = results["concat"], results["shared_prefix"]
    torch.testing.assert_close(c1, c0, atol=1e-10, rtol=0)
    torch.testing.assert_close(r1, r0, atol=1e-10, rtol=0)
    assert any("audio_tower" in n for n in g1) and any("visual" in n for n in g1)  # gradients reach both towers
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


@torch.no_grad()
def test_a_frozen_reference_reuses_the_policys_audio_features(media):
    """Towers frozen: one audio-tower pass per batch serves the policy and the reference."""
    from zoo.align.reference import FrozenReference
    from zoo.models.adapters import freeze_modules

    policy = Policy(NativeBackbone(*make_tiny_native("qwen2_5_omni")))
    freeze_modules(policy, ["visual", "audio_tower"])
    reference = FrozenReference(policy)
    assert reference.reuse_media
    encoder = ExampleEncoder(policy.processor, media_root=media)
    batch = pad_groups([encoder.encode_group(r, i) for i, r in enumerate(ROWS)], policy.tokenizer.pad_token_id)
    calls = []
    for model in (policy.model, reference.policy.model):
        model.model.audio_tower.register_forward_hook(lambda *_: calls.append(1))
    features = policy.encode_media(batch.prompt)
    with torch.no_grad():
        expected = reference.pair_logps(policy, batch)  # no features given: the reference encodes its own
        calls.clear()
        got = reference.pair_logps(policy, batch, features)
    assert calls == []
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_generate_with_audio_matches_hf_generate(omni, media):
    rows = [omni_row("Describe the image.", ["a.png"], ["long.wav"]), omni_row("What is it?", ["b.png"], ["short.wav"])]
    batch, examples = encode(omni, media, rows, field=None, padding_side="left")
    eos = omni.tokenizer.eos_token_id
    gen = omni.generate(batch, max_new_tokens=5, stop_token_ids=[eos])
    for i, example in enumerate(examples):
        alone = pad_batch([example], omni.tokenizer.pad_token_id, "left")
        inputs = {k: v for k, v in alone.items() if k not in ("labels", "example_index")}
        out = omni.model.generate(**inputs, do_sample=False, max_new_tokens=5,
                                  suppress_tokens=omni.backbone.media_token_ids)[0, len(example.input_ids):].tolist()
        assert gen.token_ids[i] == (out[: out.index(eos) + 1] if eos in out else out)


def test_a_processor_without_audio_names_the_example(media):
    from zoo.data.schema import DataError

    model, processor = make_tiny_native("llava")
    with pytest.raises(DataError, match=r"example 0.*audios.*takes no audio \(it takes: image\)"):
        ExampleEncoder(processor, media_root=media).encode(ROWS[1], 0)


def test_a_full_omni_checkpoint_loads_as_its_thinker(tmp_path):
    """Real Omni repos hold thinker + talker + vocoder under one ``qwen2_5_omni`` config; we load the thinker."""
    import json

    from zoo.models.native import build_tiny_native, load_native_policy

    path = build_tiny_native("qwen2_5_omni", tmp_path / "omni")
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_omni" and {"talker_config", "token2wav_config"} <= set(config)
    policy = load_native_policy(path)
    assert type(policy.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    built, _ = make_tiny_native("qwen2_5_omni")
    expected, got = built.state_dict(), policy.model.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_load_generates_from_image_audio_and_video(tmp_path, media):
    from zoo import load
    from zoo.models.native import build_tiny_native

    m = load(build_tiny_native("qwen2_5_omni", tmp_path / "omni"))
    kwargs = dict(images=media / "a.png", audios=str(media / "long.wav"), max_new_tokens=3, do_sample=False)
    answer = m.generate("Describe it.", **kwargs)
    assert isinstance(answer, str) and answer
    assert m.generate("Describe it.", **kwargs) == answer  # greedy: the same media, the same answer
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}]
    assert isinstance(m.chat(messages, videos=[media / "clip.mp4"], max_new_tokens=3), str)
    with pytest.raises(Exception, match="placeholder"):  # two audios for one placeholder: named, not dropped
        m.chat([{"role": "user", "content": [{"type": "audio"}]}], audios=[media / "long.wav"] * 2)
