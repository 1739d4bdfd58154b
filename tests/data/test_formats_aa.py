"""Align-anything's language-feedback data (``aa_llf``, ``aa_llf_critic``) and its text-audio-to-text preference
subset (``aa_ta2t``): records written as align-anything's loaders read them (align_anything/configs/format_dataset.py:
``AA_TI2T_LLF`` takes the image as bytes, ``AA_TA2T_LLF`` the audio as a path, ``AA_TA2T`` an HF Audio column
``audio_path`` and the question in ``prompt``), converted with `load_format`, checked exactly and encoded with a
tiny model's processor (the composed image policy; Qwen2.5-Omni's thinker for audio)."""

from __future__ import annotations

import io
import json
from collections import Counter

import datasets
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from modalities.audio import load_audio, write_wav
from modalities.image import load_image
from zoo.data.collate import ExampleEncoder
from zoo.data.critique import CRITIC_TEMPLATE
from zoo.data.formats import FORMATS, convert, load_format
from zoo.data.schema import DataError, validate_row

SR = 16_000


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _wav_bytes(seconds: float, hz: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, hz), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _user(*parts) -> list[dict]:
    return [{"role": "user", "content": [p if isinstance(p, dict) else {"type": "text", "text": p} for p in parts]}]


def _assistant(text) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


IMAGE, AUDIO = {"type": "image"}, {"type": "audio"}


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _llf(prompt, response, critique, refinement, **media) -> dict:
    return {"prompt": prompt, "response": response, "critique": critique, "refinement": refinement,
            "model": "llava-1.5-7b", **media}


# ---------------------------------------------------------------- LLF data: image (Parquet, the image as bytes)


@pytest.fixture()
def llf_image_file(tmp_path):
    """As AA_TI2T_LLF reads it: ``image`` holds the image file's bytes (a binary column)."""
    records = [
        _llf("What shape is this?", "A circle.", "The shape has corners: it is not a circle.", "A square.",
             image=_png_bytes((10, 20, 30))),
        _llf("<image>\nWhich colour dominates?", "Red.", "The picture is grey.", "Grey.",
             image=_png_bytes((128, 128, 128))),
        _llf("Is there text?", "No.", "The answer is correct.", "No.", image=_png_bytes((0, 0, 0))),  # no change
    ]
    path = tmp_path / "llf.parquet"
    datasets.Dataset.from_list(records).to_parquet(str(path))
    return path


def test_llf_image_rows(llf_image_file, tiny_policy):
    report = Counter()
    rows = load_format(llf_image_file, "aa_llf", report=report)
    assert report == {"refinement identical to the response": 1} and len(rows) == 2
    assert rows[0]["prompt"] == _user(IMAGE, "What shape is this?")
    assert rows[1]["prompt"] == _user(IMAGE, "Which colour dominates?")  # the <image> token: the placeholder there
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (_assistant("A square."), _assistant("A circle."))
    assert load_image(rows[1]["images"][0]).getpixel((0, 0)) == (128, 128, 128)
    assert "audios" not in rows[0]
    assert rows[0]["meta"] == {"model": "llava-1.5-7b", "source": "align_anything_llf",
                               "critique": "The shape has corners: it is not a circle."}
    encoder = ExampleEncoder(tiny_policy.processor, max_length=128)
    for i, row in enumerate(rows):
        group = encoder.encode_group(row, i)
        n_image = int((group.prompt.input_ids == tiny_policy.processor.image_token_id).sum())
        assert n_image == tiny_policy.model.num_media_tokens["image"]
        assert group.k == 2 and not np.array_equal(group.chosen.numpy(), group.rejected.numpy())


def test_llf_critic_rows(llf_image_file, tiny_policy):
    rows = load_format(llf_image_file, "aa_llf_critic")
    assert len(rows) == 3  # the critic learns the critique of an answer that needed no change too
    asked = CRITIC_TEMPLATE.format(prompt="What shape is this?", response="A circle.")
    assert rows[0]["prompt"] == _user(IMAGE, asked)
    assert rows[0]["completion"] == "The shape has corners: it is not a circle."
    assert rows[0]["images"] == [_png_bytes((10, 20, 30))]  # raw bytes stay bytes
    assert rows[0]["meta"] == {"model": "llava-1.5-7b", "source": "align_anything_llf_critic"}
    assert rows[1]["prompt"][0]["content"][1]["text"].startswith("##Prompt: Which colour dominates? ##Response: Red.")
    encoder = ExampleEncoder(tiny_policy.processor, max_length=200)
    for i, row in enumerate(rows):
        validate_row(row, i)
        ex = encoder.encode(row, i, "completion")
        assert ex.prompt_length < len(ex.input_ids)


def test_llf_image_as_an_hf_image_column(tmp_path):
    """The same data saved with an HF Image column (``{"bytes", "path"}``) reads the same."""
    records = [_llf("What shape is this?", "A circle.", "Not a circle.", "A square.",
                    image={"bytes": _png_bytes((1, 2, 3)), "path": "x.png"})]
    ds = datasets.Dataset.from_list(records).cast_column("image", datasets.Image())
    ds.to_parquet(str(tmp_path / "llf.parquet"))
    (row,) = load_format(tmp_path / "llf.parquet", "aa_llf")
    assert row["images"] == [{"bytes": _png_bytes((1, 2, 3)), "path": "x.png"}]


# ---------------------------------------------------------------- LLF data: audio (JSONL, a path), text only


@pytest.fixture()
def llf_audio_file(tmp_path):
    write_wav(tmp_path / "clips" / "bird.wav", _tone(0.5, 880), SR)
    records = [
        _llf("What animal makes this sound?", "A dog.", "The call is high and melodic: a bird, not a dog.",
             "A bird.", audio="clips/bird.wav"),
        _llf("Name a prime number.", "Nine.", "Nine is 3 × 3, not prime.", "Seven."),  # text only
    ]
    return _write_jsonl(tmp_path / "llf_audio.jsonl", records)


def test_llf_audio_and_text_only_rows(llf_audio_file, tmp_path):
    rows = load_format(llf_audio_file, "aa_llf", media_root=tmp_path)
    assert rows[0]["prompt"] == _user(AUDIO, "What animal makes this sound?")
    assert rows[0]["audios"] == [str(tmp_path / "clips" / "bird.wav")] and "images" not in rows[0]
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (_assistant("A bird."), _assistant("A dog."))
    assert rows[0]["meta"]["critique"] == "The call is high and melodic: a bird, not a dog."
    assert rows[1]["prompt"] == _user("Name a prime number.")
    assert not {"images", "audios", "videos"} & set(rows[1])
    critic = load_format(llf_audio_file, "aa_llf_critic", media_root=tmp_path)
    assert critic[0]["prompt"][0]["content"][0] == AUDIO and critic[0]["audios"] == rows[0]["audios"]
    assert critic[1]["prompt"] == _user(CRITIC_TEMPLATE.format(prompt="Name a prime number.", response="Nine."))
    with pytest.raises(DataError, match=r"example 0, field 'audios\[0\]': audio file not found"):
        load_format(llf_audio_file, "aa_llf", media_root=tmp_path / "elsewhere")


# ---------------------------------------------------------------- text-audio-to-text (Parquet, an HF Audio column)


@pytest.fixture()
def ta2t_file(tmp_path):
    """As AA_TA2T reads it: the question in ``prompt``, the audio in the HF Audio column ``audio_path``."""

    def record(prompt, r1, r2, overall, seconds, hz):
        return {"prompt": prompt, "audio_path": {"bytes": _wav_bytes(seconds, hz), "path": f"{hz}.wav"},
                "response_1": r1, "response_2": r2, "overall_response": overall, "prompt_following_rate_1": 3,
                "prompt_following_rate_2": 1, "overall_textfeedback": "Response 1 names the instrument."}

    records = [record("Which instrument plays?", "A violin.", "A drum.", 1, 1.0, 440),
               record("Is the sound rising in pitch?", "Yes, it rises.", "No: it stays at one pitch.", 2, 0.5, 880)]
    ds = datasets.Dataset.from_list(records).cast_column("audio_path", datasets.Audio())  # decoded by default
    ds.to_parquet(str(tmp_path / "ta2t.parquet"))
    return tmp_path / "ta2t.parquet"


@pytest.fixture(scope="module")
def omni_processor():
    from zoo.models.native import make_tiny_native

    model, processor = make_tiny_native("qwen2_5_omni")
    return processor, model.config.audio_token_id


def test_align_anything_ta2t(ta2t_file, omni_processor):
    rows = load_format(ta2t_file, "aa_ta2t")  # the Audio column is read undecoded: bytes + path
    assert rows[0]["prompt"] == _user(AUDIO, "Which instrument plays?")
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (_assistant("A violin."), _assistant("A drum."))
    assert rows[1]["chosen"] == _assistant("No: it stays at one pitch.")
    assert rows[1]["rejected"] == _assistant("Yes, it rises.")
    assert rows[1]["audios"] == [{"bytes": _wav_bytes(0.5, 880), "path": "880.wav"}] and "images" not in rows[1]
    assert len(load_audio(rows[0]["audios"][0])) == SR
    assert rows[1]["meta"] == {"prompt_following_rate_1": 3, "prompt_following_rate_2": 1,
                               "overall_textfeedback": "Response 1 names the instrument.",
                               "source": "align_anything_ta2t", "overall_response": 2}
    processor, audio_token_id = omni_processor
    encoder = ExampleEncoder(processor, max_length=256)
    groups = [encoder.encode_group(row, i) for i, row in enumerate(rows)]
    n_audio = [int((g.prompt.input_ids == audio_token_id).sum()) for g in groups]
    assert n_audio[0] > n_audio[1] > 0  # 1 s of audio: more audio tokens than 0.5 s
    assert all(g.k == 2 and g.prompt.media_inputs for g in groups)


def test_llf_audio_row_encodes_with_an_audio_processor(llf_audio_file, tmp_path, omni_processor):
    processor, audio_token_id = omni_processor
    rows = load_format(llf_audio_file, "aa_llf", media_root=tmp_path)
    group = ExampleEncoder(processor, max_length=256).encode_group(rows[0], 0)
    assert int((group.prompt.input_ids == audio_token_id).sum()) > 0


def test_ta2t_reads_the_fallback_names_and_a_decoded_audio():
    """``question`` / ``audio`` when ``prompt`` / ``audio_path`` are absent; a decoded HF Audio dict (datasets < 4)
    keeps its samples and rate."""
    wave = _tone(0.25, 440).tolist()
    row = {"question": "What is it?", "audio": {"array": wave, "sampling_rate": SR, "path": None},
           "response_1": "A beep.", "response_2": "Silence.", "overall_response": "1"}
    (out,) = convert([row], "aa_ta2t")
    assert out["prompt"] == _user(AUDIO, "What is it?")
    assert out["audios"] == [{"array": wave, "sampling_rate": SR}] and out["meta"]["overall_response"] == 1
    assert len(load_audio(out["audios"][0])) == SR // 4


# ---------------------------------------------------------------- bad input


_GOOD = {
    "aa_llf": _llf("Q?", "No.", "Wrong.", "Yes.", image="x.png"),
    "aa_llf_critic": _llf("Q?", "No.", "Wrong.", "Yes.", audio="x.wav"),
    "aa_ta2t": {"prompt": "Q?", "audio_path": "x.wav", "response_1": "Yes.", "response_2": "No.",
                "overall_response": 1},
}


@pytest.mark.parametrize(
    "fmt, change, field, reason",
    [
        ("aa_llf", {"critique": None}, "critique", "missing"),
        ("aa_llf", {"refinement": " "}, "refinement", "empty"),
        ("aa_llf", {"prompt": None}, "prompt", "missing"),
        ("aa_llf", {"response": 3}, "response", "expected a string"),
        ("aa_llf", {"audio": "y.wav"}, "audio", "both an image ('image') and an audio"),
        ("aa_llf", {"prompt": "<image> and <image>?"}, "prompt", "2 '<image>' token(s) but 1 image(s)"),
        ("aa_llf_critic", {"critique": ""}, "critique", "empty"),
        ("aa_llf_critic", {"response": None}, "response", "missing"),
        ("aa_ta2t", {"overall_response": 3}, "overall_response", "expected 1 or 2, got 3"),
        ("aa_ta2t", {"overall_response": "first"}, "overall_response", "expected 1 or 2, got 'first'"),
        ("aa_ta2t", {"overall_response": None}, "overall_response", "missing"),
        ("aa_ta2t", {"audio_path": None}, "audio_path", "no audio (audio_path / audio missing)"),
        ("aa_ta2t", {"audio_path": {"array": [0.0], "sampling_rate": None}}, "audio_path",
         "without its 'sampling_rate'"),
        ("aa_ta2t", {"audio_path": np.zeros(4)}, "audio_path", "cannot read an audio from a ndarray"),
        ("aa_ta2t", {"prompt": None}, "prompt", "missing"),
        ("aa_ta2t", {"response_2": None}, "response_2", "missing"),
        ("aa_ta2t", {"response_2": "Yes."}, "response_2", "identical to 'response_1'"),
    ],
)
def test_bad_record_names_example_and_field(fmt, change, field, reason):
    good = _GOOD[fmt]
    assert len(convert([good], fmt)) == 1
    with pytest.raises(DataError) as info:
        convert([good, good, {**good, **change}], fmt)
    assert info.value.index == 2 and info.value.field == field
    assert f"example 2, field '{field}'" in str(info.value) and reason in str(info.value)


def test_identical_refinement_is_skipped_and_counted():
    same = {**_GOOD["aa_llf"], "refinement": " No. "}
    report = Counter()
    assert convert([_GOOD["aa_llf"], same, same], "aa_llf", report=report) and report == {
        "refinement identical to the response": 2}


def test_registry_names_the_align_anything_formats():
    assert {"aa_ti2t", "aa_ta2t", "aa_llf", "aa_llf_critic"} <= set(FORMATS.names())
