"""NativeBackbone over tiny random HF models (LLaVA, Qwen2-VL, Gemma 3), built offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.collate import ExampleEncoder, pad_batch
from zoo.models.native import TINY_ARCHS, NativeBackbone, build_tiny_native, load_native_policy, make_tiny_native
from zoo.models.policy import Policy, padding_position_ids


def image(seed: int, size=(32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def row(text: str, img: Image.Image | None, completion: str | None = None) -> dict:
    content = ([{"type": "image"}] if img is not None else []) + [{"type": "text", "text": text}]
    r = {"prompt": [{"role": "user", "content": content}], "images": [img] if img is not None else []}
    if completion is not None:
        r["completion"] = [{"role": "assistant", "content": [{"type": "text", "text": completion}]}]
    return r


ROWS = [  # different lengths; different image sizes (Qwen2-VL: different grids, different token counts)
    row("Describe the image.", image(0, (16, 64)), "A red square."),
    row("What colour is the shape in the middle of the picture?", image(1), "The shape is green and round."),
]


@pytest.fixture(scope="module", params=TINY_ARCHS)
def tiny(request, tmp_path_factory):
    arch = request.param
    out = build_tiny_native(arch, tmp_path_factory.mktemp(arch))
    return arch, out, load_native_policy(out)


def encode(policy, rows, response_field="completion", padding_side="right"):
    enc = ExampleEncoder(policy.processor)
    examples = [enc.encode(r, i, response_field) for i, r in enumerate(rows)]
    return pad_batch(examples, policy.tokenizer.pad_token_id, padding_side), examples


def own_inputs(policy, r, response: bool = True) -> tuple[dict, int]:
    """One row through the processor alone, response appended: the input of the model's own forward."""
    proc, tok = policy.processor, policy.tokenizer
    text = proc.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
    inputs = dict(proc(text=[text], images=r["images"] or None, return_tensors="pt", add_special_tokens=False))
    n_prompt = inputs["input_ids"].shape[1]
    if response:
        ids = tok(r["completion"][0]["content"][0]["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([ids])
        for key, value in inputs.items():  # extend every per-token input over the response (text: 0)
            if value.shape == (1, n_prompt):
                fill = torch.ones_like(ids) if key == "attention_mask" else torch.zeros_like(ids)
                inputs[key] = torch.cat([value, ids if key == "input_ids" else fill], 1)
    return inputs, n_prompt


def features(media) -> torch.Tensor:
    """The batch's media embeddings as one [N, H] tensor, in media-token order."""
    pooled = media["image"].pooler_output
    return torch.cat(list(pooled)) if isinstance(pooled, (list, tuple)) else pooled.reshape(-1, pooled.shape[-1])


def with_features(media, flat: torch.Tensor):
    """A copy of ``media`` whose image embeddings are ``flat`` (restored to the model's layout)."""
    out = media["image"]
    pooled = out.pooler_output
    if isinstance(pooled, (list, tuple)):
        new = type(pooled)(torch.split(flat, [p.shape[0] for p in pooled]))
    else:
        new = flat.reshape(pooled.shape)
    return {"image": type(out)(**{**dict(out.items()), "pooler_output": new})}


@torch.no_grad()
def test_save_load_bit_identical(tiny):
    arch, _, policy = tiny
    built, processor = make_tiny_native(arch)
    batch, _ = encode(policy, ROWS)
    loaded = policy.logits(batch)
    assert torch.equal(Policy(NativeBackbone(built, processor)).logits(batch), loaded)
    assert type(policy.model) is type(built) and type(policy.processor) is type(processor)


@torch.no_grad()
def test_sequence_logps_match_naive(tiny):
    _, _, policy = tiny
    batch, examples = encode(policy, ROWS)
    assert batch["attention_mask"][0].sum() != batch["attention_mask"][1].sum()  # really padded
    got = policy.sequence_logps(batch)
    for i, r in enumerate(ROWS):
        inputs, n_prompt = own_inputs(policy, r)
        assert torch.equal(inputs["input_ids"][0], examples[i].input_ids)
        logp = policy.model(**inputs).logits[0, :-1].float().log_softmax(-1)
        targets = inputs["input_ids"][0, 1:]
        naive = logp.gather(-1, targets[:, None])[n_prompt - 1 :].sum()
        assert got.lengths[i] == len(targets) - (n_prompt - 1)
        torch.testing.assert_close(got.logps[i], naive, atol=1e-5, rtol=0)


@torch.no_grad()
def test_side_inputs_reach_the_model(tiny):
    arch, _, policy = tiny
    model, backbone = policy.model, policy.backbone
    batch, _ = encode(policy, ROWS)
    ours = policy.logits(batch)
    real = batch["attention_mask"].bool()
    raw = {k: v for k, v in batch.items() if k not in ("labels", "example_index")}
    torch.testing.assert_close(ours[real], model(**raw).logits[real], atol=1e-5, rtol=0)  # the model's own forward

    if arch in ("qwen2_vl", "qwen2_5_vl", "qwen2_5_omni"):  # the M-RoPE family
        assert "image_grid_thw" in backbone.side_inputs
        assert ("mm_token_type_ids" in backbone.side_inputs) == (arch != "qwen2_5_omni")  # Omni finds media by id
        with pytest.raises((AttributeError, TypeError, ValueError)):  # needed to encode and place the image
            model(**{k: v for k, v in raw.items() if k != "image_grid_thw"})
        flat = padding_position_ids(batch["attention_mask"])  # 1-D positions instead of M-RoPE ones
        media = policy.encode_media(batch)
        naive = backbone.forward(batch["input_ids"], batch["attention_mask"], flat, media, batch).logits
        assert not torch.allclose(naive[real], ours[real], atol=1e-4)
        model.model.rope_deltas = torch.full((2, 1), 1000)  # stale state from an earlier generate: never read
        try:
            assert torch.equal(policy.logits(batch), ours)
        finally:
            model.model.rope_deltas = None
    elif arch == "gemma3":
        assert "token_type_ids" in backbone.side_inputs and batch["token_type_ids"].any()
        without = {k: v for k, v in raw.items() if k != "token_type_ids"}  # no bidirectional image blocks
        assert not torch.allclose(model(**without).logits[real], ours[real], atol=1e-4)
        dropped = {k: v for k, v in batch.items() if k != "token_type_ids"}
        assert not torch.allclose(policy.logits(dropped)[real], ours[real], atol=1e-4)
    elif arch == "llava_next":  # anyres: the images have different tile counts, padded to one tensor
        tiles = [e.media_inputs["pixel_values"].shape[1] for e in encode(policy, ROWS)[1]]
        assert tiles[0] != tiles[1] and batch["pixel_values"].shape[1] == max(tiles)
        assert "image_sizes" in backbone.side_inputs  # what cuts each stack back to its own tiles
        with pytest.raises((TypeError, ValueError)):
            policy.encode_media({k: v for k, v in batch.items() if k != "image_sizes"})
    else:  # LLaVA and Idefics3 need nothing beside the pixels (and their mask) in the forward
        assert not set(batch) & backbone.side_inputs
    if arch == "idefics3":  # wide image: 1x2 crops + a global view; square image: 2x2 + global; padded to 5
        crops = [e.media_inputs["pixel_values"].shape[1] for e in encode(policy, ROWS)[1]]
        assert crops == [3, 5] and batch["pixel_values"].shape[:2] == (2, 5)
        assert not batch["pixel_values"][0, 3:].any() and not batch["pixel_attention_mask"][0, 3:].any()


@torch.no_grad()
def test_text_only_batch(tiny):
    _, _, policy = tiny
    rows = [row("Describe the picture.", None, "Yes."), row("Count the objects please.", None, "No, none.")]
    batch, _ = encode(policy, rows)
    assert policy.encode_media(batch) == {}
    got = policy.sequence_logps(batch)
    for i, r in enumerate(rows):
        inputs, n_prompt = own_inputs(policy, r)
        logp = policy.model(**inputs).logits[0, :-1].log_softmax(-1)
        naive = logp.gather(-1, inputs["input_ids"][0, 1:, None])[n_prompt - 1 :].sum()
        torch.testing.assert_close(got.logps[i], naive, atol=1e-5, rtol=0)


@torch.no_grad()
def test_generate_matches_hf_generate(tiny):
    arch, _, policy = tiny
    batch, _ = encode(policy, ROWS, response_field=None, padding_side="left")
    assert not batch["attention_mask"][:, 0].all()  # really left-padded
    eos = policy.tokenizer.eos_token_id
    gen = policy.generate(batch, max_new_tokens=5, stop_token_ids=[eos])
    positions = policy.backbone.position_ids(batch)
    for i, r in enumerate(ROWS):
        inputs, n_prompt = own_inputs(policy, r, response=False)
        # Positions of the real tokens do not see the left padding: those of the row alone.
        if arch in ("qwen2_vl", "qwen2_5_vl", "qwen2_5_omni"):  # the M-RoPE family
            alone, _ = policy.model.model.get_rope_index(**{k: v for k, v in inputs.items() if k != "pixel_values"})
        else:
            alone = torch.arange(n_prompt)[None]
        assert torch.equal(positions[..., i, batch["attention_mask"][i].bool()], alone[..., 0, :])
        suppress = policy.backbone.media_token_ids  # ours never writes a media placeholder
        out = policy.model.generate(**inputs, do_sample=False, max_new_tokens=5,
                                    suppress_tokens=suppress)[0, n_prompt:].tolist()
        expected = out[: out.index(eos) + 1] if eos in out else out  # compare up to the first stop
        assert gen.token_ids[i] == expected
        assert gen.finished[i] == (eos in expected)
    assert any(len(t) > 1 for t in gen.token_ids)


SAME_TEXT = [row("What colour is the shape?", image(seed), "It is red.") for seed in (3, 4)]  # images differ


def two_images_batch(policy):
    batch, _ = encode(policy, SAME_TEXT)
    is_media = policy.backbone.media_token_mask(batch)
    after = torch.arange(batch["input_ids"].shape[1]) > is_media[0].nonzero().max()  # text after the image
    return batch, is_media, after


@torch.no_grad()
def test_media_keep_hides_whole_image(tiny):
    _, _, policy = tiny
    batch, is_media, after = two_images_batch(policy)
    assert is_media.sum(1).tolist()[0] > 0 and torch.equal(is_media[0], is_media[1])
    plain = policy.logits(batch)
    assert not torch.allclose(plain[0, after], plain[1, after], atol=1e-4)  # the images matter

    seen = []
    forward = policy.backbone.forward
    policy.backbone.forward = lambda ids, am, pos, **kw: seen.append((ids.shape, am.shape, pos)) or forward(
        ids, am, pos, **kw
    )
    try:
        hidden = policy.logits(batch, media_keep=~is_media)
    finally:
        del policy.backbone.forward
    torch.testing.assert_close(hidden[0, after], hidden[1, after], atol=1e-6, rtol=0)  # independent of the image
    assert hidden.shape == plain.shape
    ids_shape, mask_shape, positions = seen[0]
    assert ids_shape == mask_shape == batch["input_ids"].shape
    assert torch.equal(positions, policy.backbone.position_ids(batch))  # positions never see media_keep

    prompts, _ = encode(policy, SAME_TEXT, response_field=None, padding_side="left")
    gen = policy.generate(prompts, media_keep=~policy.backbone.media_token_mask(prompts), max_new_tokens=4)
    assert gen.token_ids[0] == gen.token_ids[1]  # decoding steps keep the image hidden too


@torch.no_grad()
def test_media_keep_partial_mask(tiny):
    _, _, policy = tiny
    batch, is_media, after = two_images_batch(policy)
    slots = is_media[0].nonzero().squeeze(1)  # row 0's media positions; its features come first
    keep = torch.ones_like(is_media)
    keep[0, slots[::2]] = False  # hide every other media token of row 0
    media = policy.encode_media(batch)
    flat = features(media)
    assert flat.shape[0] == int(is_media.sum())
    base = policy.logits(batch, media, keep)[0, after]

    noise = torch.randn_like(flat[0]) * 10
    hidden_edit, visible_edit = flat.clone(), flat.clone()
    hidden_edit[torch.arange(len(slots))[::2]] += noise  # features 0, 2, … of row 0: its hidden positions
    visible_edit[1] += noise  # feature 1: row 0's second media position, visible
    assert keep[0, slots[1]]
    same = policy.logits(batch, with_features(media, hidden_edit), keep)[0, after]
    torch.testing.assert_close(same, base, atol=1e-6, rtol=0)
    changed = policy.logits(batch, with_features(media, visible_edit), keep)[0, after]
    assert not torch.allclose(changed, base, atol=1e-4)


def test_check_media_keep_rejects_text_positions(tiny):
    _, _, policy = tiny
    batch, is_media, _ = two_images_batch(policy)
    keep = ~is_media
    keep[0, 0] = False  # the BOS text token
    with pytest.raises(ValueError, match="non-media"):
        policy.sequence_logps(batch, media_keep=keep)
    policy.check_media_keep(batch, ~is_media)  # hiding media only is fine


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl"])
@torch.no_grad()
def test_video_rows_reach_the_qwen_vl_family(arch):
    """Videos (frame arrays, as `modalities.video.load_video` returns them) of different lengths, with and
    without an image, batched: ours equals the model's own forward, and the video changes the logits."""
    model, processor = make_tiny_native(arch)
    policy = Policy(NativeBackbone(model, processor))
    rng = np.random.default_rng(0)
    clip = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    video_row = lambda v, img=None: {  # noqa: E731
        **row("What moves in the clip?", img, "A square moves."),
        "videos": [v],
        "prompt": [{"role": "user", "content": ([{"type": "image"}] if img else []) + [{"type": "video"},
                                                {"type": "text", "text": "What moves in the clip?"}]}],
    }
    rows = [video_row(clip(8)), video_row(clip(4), image(3))]
    batch, examples = encode(policy, rows)
    assert batch["video_grid_thw"][:, 0].tolist() == [4, 2]  # temporal patches of 2 frames
    real = batch["attention_mask"].bool()
    raw = {k: v for k, v in batch.items() if k not in ("labels", "example_index")}
    ours = policy.logits(batch)
    torch.testing.assert_close(ours[real], model(**raw).logits[real], atol=1e-5, rtol=0)
    other, _ = encode(policy, [video_row(clip(8)), rows[1]])
    assert not torch.allclose(policy.logits(other)[0, real[0]], ours[0, real[0]], atol=1e-4)
