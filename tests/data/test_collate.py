"""Encoding and batching, and every bad-input case: a clear error naming the example and the field."""

from __future__ import annotations

import copy

import pytest
import torch

from zoo.data.collate import IGNORE_INDEX, ExampleEncoder, encode_rows, pad_batch
from zoo.data.schema import DataError


@pytest.fixture()
def rows(tiny_rows):
    caption = next(r for r in tiny_rows if r["task"] == "caption")
    colour = next(r for r in tiny_rows if r["task"] == "colour")
    return [copy.deepcopy(caption), copy.deepcopy(colour)]


@pytest.fixture()
def encoder(tiny_policy, tiny_world):
    return ExampleEncoder(tiny_policy.processor, max_length=96, media_root=tiny_world)


def test_labels_cover_exactly_the_response_and_eos(encoder, rows, tiny_policy):
    ex = encoder.encode(rows[0], 0)
    tok = tiny_policy.tokenizer
    response = ex.input_ids[ex.prompt_length:]
    assert (ex.labels[: ex.prompt_length] == IGNORE_INDEX).all()
    assert torch.equal(ex.labels[ex.prompt_length:], response)
    assert response[-1] == tok.eos_token_id
    assert tok.decode(response[:-1]) == rows[0]["completion"][0]["content"][0]["text"]
    n_image = int((ex.input_ids == tiny_policy.processor.image_token_id).sum())
    assert n_image == tiny_policy.model.num_media_tokens["image"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch_pads_tokens_and_concatenates_media(encoder, rows, tiny_policy, side):
    examples = [encoder.encode(r, i) for i, r in enumerate(rows)]
    batch = pad_batch(examples, tiny_policy.tokenizer.pad_token_id, side)
    assert batch["pixel_values"].shape[0] == 2
    assert batch["example_index"] == [0, 1]
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        sl = slice(0, n) if side == "right" else slice(batch["input_ids"].shape[1] - n, None)
        assert torch.equal(batch["input_ids"][row, sl], ex.input_ids)
        assert batch["attention_mask"][row].sum() == n
        assert torch.equal(batch["labels"][row, sl], ex.labels)


def test_prompt_only_encoding_has_no_labels(encoder, rows):
    ex = encoder.encode(rows[0], 0, response_field=None)
    assert len(ex.input_ids) == ex.prompt_length and (ex.labels == IGNORE_INDEX).all()


def _error(encoder, row, index=7) -> DataError:
    with pytest.raises(DataError) as info:
        encoder.encode(row, index)
    return info.value


def test_missing_media_file(encoder, rows):
    rows[0]["images"] = ["images/test/does-not-exist.png"]
    err = _error(encoder, rows[0])
    assert (err.index, err.field) == (7, "images[0]") and "not found" in str(err)
    assert str(err).startswith("example 7, field 'images[0]'")


def test_unreadable_media_file(encoder, rows, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    rows[0]["images"] = [str(bad)]
    err = _error(encoder, rows[0])
    assert err.field == "images[0]" and "unreadable image" in str(err)


@pytest.mark.parametrize("n_images", [0, 2])
def test_placeholder_media_count_mismatch(encoder, rows, n_images):
    rows[0]["images"] = rows[0]["images"] * n_images
    err = _error(encoder, rows[0])
    assert err.field == "images" and f"1 image placeholder(s) but {n_images} image(s)" in str(err)


def test_truncation_that_would_cut_media_tokens(tiny_policy, tiny_world, rows):
    encoder = ExampleEncoder(tiny_policy.processor, max_length=5, media_root=tiny_world)
    err = _error(encoder, rows[0])
    assert err.field == "prompt" and "would cut" in str(err) and "media tokens" in str(err)


def test_truncation_only_shortens_the_response(tiny_policy, tiny_world, rows, encoder):
    full = encoder.encode(rows[0], 0)
    short = ExampleEncoder(tiny_policy.processor, max_length=full.prompt_length + 3, media_root=tiny_world)
    ex = short.encode(rows[0], 0)
    assert len(ex.input_ids) == full.prompt_length + 3
    assert torch.equal(ex.input_ids, full.input_ids[: full.prompt_length + 3])


@pytest.mark.parametrize("response", ["", "   ", [{"role": "assistant", "content": [{"type": "text", "text": ""}]}]])
def test_empty_response(encoder, rows, response):
    rows[0]["completion"] = response
    err = _error(encoder, rows[0])
    assert err.field == "completion" and "empty response" in str(err)


def test_missing_response_and_malformed_prompt(encoder, rows):
    del rows[0]["completion"]
    assert _error(encoder, rows[0]).field == "completion"
    rows[1]["prompt"] = [{"content": "no role"}]
    assert _error(encoder, rows[1]).field == "prompt[0]"


def test_identical_chosen_and_rejected_is_an_error(encoder, rows):
    from zoo.data.schema import validate_row

    row = dict(rows[0], chosen="A red circle.", rejected="A red circle.")
    with pytest.raises(DataError, match="identical"):
        validate_row(row, 3, ("chosen", "rejected"))


def test_skip_bad_skips_and_counts_by_reason(encoder, rows, tiny_rows):
    good = [copy.deepcopy(r) for r in tiny_rows[:6]]
    missing = dict(copy.deepcopy(rows[0]), images=["nope.png"])
    empty = dict(copy.deepcopy(rows[1]), completion="")
    extra = dict(copy.deepcopy(rows[1]), images=rows[1]["images"] * 2)
    examples, report = encode_rows(good + [missing, empty, extra], encoder.encode, skip_bad=True)
    assert len(examples) == 6
    assert report.total == 3
    assert report.skipped == {"images: not found": 1, "completion: empty": 1, "images: placeholder": 1}
    assert "skipped 3 example(s)" in report.summary()
    with pytest.raises(DataError, match="example 6, field 'images\\[0\\]'"):
        encode_rows(good + [missing], encoder.encode, skip_bad=False)


def test_rows_of_one_image_share_its_processed_tensor(encoder, tiny_rows):
    image = tiny_rows[0]["images"]
    same = [r for r in tiny_rows if r["images"] == image][:2]
    a, b = (encoder.encode(r, i) for i, r in enumerate(same))
    assert a.media_inputs["pixel_values"] is b.media_inputs["pixel_values"]


def test_media_stacks_of_different_sizes_are_zero_padded():
    """anyres tiles / crops / audio frames: every dim after the first padded with zeros (False for masks)."""
    from zoo.data.collate import cat_media

    a, b = torch.ones(1, 3, 2), torch.full((2, 1, 4), 2.0)
    out = cat_media([a, b])
    assert out.shape == (3, 3, 4)
    assert torch.equal(out[0, :, :2], a[0]) and not out[0, :, 2:].any()
    assert torch.equal(out[1:, :1], b) and not out[1:, 1:].any()
    masks = cat_media([torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)])
    assert masks.dtype == torch.bool and masks.tolist() == [[True, True, False], [True, True, True]]
    same = [torch.randn(2, 5), torch.randn(3, 5)]
    assert torch.equal(cat_media(same), torch.cat(same))  # equal shapes: a plain concatenation
    with pytest.raises(ValueError, match="different ranks"):
        cat_media([torch.ones(1, 2), torch.ones(1, 2, 3)])


def test_audio_and_video_errors_name_the_example_and_the_field(tmp_path):
    from zoo.models.native import make_tiny_native

    _, processor = make_tiny_native("qwen2_5_omni")
    encoder = ExampleEncoder(processor, media_root=tmp_path)
    (tmp_path / "noise.wav").write_bytes(b"RIFF but not really a wave file")
    parts = [{"type": "audio"}, {"type": "video"}, {"type": "text", "text": "?"}]
    row = {"prompt": [{"role": "user", "content": parts}], "audios": ["noise.wav"], "videos": ["missing.mp4"],
           "completion": "A tone."}
    with pytest.raises(DataError, match=r"example 4, field 'audios\[0\]': unreadable audio"):
        encoder.encode(row, 4)
    row["audios"] = [torch.zeros(8000).numpy()]  # a raw waveform is fine; the video is not there
    with pytest.raises(DataError, match=r"example 4, field 'videos\[0\]': video file not found"):
        encoder.encode(row, 4)
