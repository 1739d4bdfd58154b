"""Adapters for public preference datasets: records written as each dataset ships them, converted
into the one schema, checked exactly, and encoded with the real collator."""

from __future__ import annotations

import io
import json
from collections import Counter

import datasets
import pytest
from PIL import Image

from modalities.image import load_image
from zoo.data.collate import ExampleEncoder
from zoo.data.formats import FORMATS, convert, load_format, read_rows
from zoo.data.schema import DataError, validate_row


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _png(folder, name, colour) -> str:
    Image.new("RGB", (8, 8), colour).save(folder / name)
    return name


def _user(*parts) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"} if p is None else {"type": "text", "text": p} for p in parts]}]


def _assistant(text) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _write_parquet(path, records, image_column="image"):
    ds = datasets.Dataset.from_list(records)
    ds = ds.cast_column(image_column, datasets.Image(decode=False))
    ds.to_parquet(str(path))
    return path


def _colour(item, root=None):
    return load_image(item, root).getpixel((0, 0))


def _encode_pairs(rows, tiny_policy, media_root):
    encoder = ExampleEncoder(tiny_policy.processor, max_length=128, media_root=media_root)
    for i, row in enumerate(rows):
        validate_row(row, i, ("chosen", "rejected"))
        for field in ("chosen", "rejected"):
            ex = encoder.encode(row, i, field)
            n_image = int((ex.input_ids == tiny_policy.processor.image_token_id).sum())
            assert n_image == tiny_policy.model.num_media_tokens["image"]
            assert ex.prompt_length < len(ex.input_ids)


def test_registry_names_every_format():
    assert {"rlaif_v", "vlfeedback", "vlfeedback_ranked", "povid", "aa_ti2t"} <= set(FORMATS.names())


# ---------------------------------------------------------------- RLAIF-V (parquet, HF Image)


@pytest.fixture()
def rlaif_file(tmp_path):
    records = [
        {
            "ds_name": "RLAIF-V",
            "image": {"bytes": _png_bytes((255, 0, 0)), "path": "rlaif_0.png"},
            "question": "What colour is the square?",
            "chosen": "The square is red.",
            "rejected": "The square is blue.",
            "origin_dataset": "OK-VQA",
            "origin_split": '{"model": "OmniLMM-12B"}',
            "idx": 0,
            "image_path": "OK-VQA/rlaif_0.png",
        },
        {
            "ds_name": "RLAIF-V",
            "image": {"bytes": _png_bytes((0, 255, 0)), "path": "rlaif_1.png"},
            "question": "Describe the <image> briefly.",
            "chosen": "A green square.",
            "rejected": "A green circle with a dog.",
            "origin_dataset": "COCO",
            "origin_split": "train",
            "idx": 1,
            "image_path": "COCO/rlaif_1.png",
        },
    ]
    return _write_parquet(tmp_path / "rlaif.parquet", records), records


def test_rlaif_v(rlaif_file, tiny_policy, tmp_path):
    path, records = rlaif_file
    rows = load_format(path, "rlaif_v")
    assert len(rows) == 2
    assert rows[0]["prompt"] == _user(None, "What colour is the square?")
    assert rows[1]["prompt"] == _user("Describe the", None, "briefly.")  # the token's place is kept
    assert rows[0]["chosen"] == _assistant("The square is red.")
    assert rows[0]["rejected"] == _assistant("The square is blue.")
    assert rows[0]["images"] == [{"bytes": records[0]["image"]["bytes"], "path": "rlaif_0.png"}]
    assert _colour(rows[1]["images"][0]) == (0, 255, 0)
    assert rows[0]["meta"] == {
        "source": "rlaif_v",
        "ds_name": "RLAIF-V",
        "origin_dataset": "OK-VQA",
        "origin_split": '{"model": "OmniLMM-12B"}',
        "idx": 0,
        "image_path": "OK-VQA/rlaif_0.png",
    }
    _encode_pairs(rows, tiny_policy, tmp_path)


def test_rlaif_v_decoded_pil_and_path_only(tmp_path):
    """Rows as `datasets` hands them out decoded (PIL) or with only a path / image_path."""
    _png(tmp_path, "p.png", (0, 0, 255))
    base = {"question": "Colour?", "chosen": "Blue.", "rejected": "Red."}
    rows = convert(
        [
            {**base, "image": Image.new("RGB", (8, 8), (0, 0, 255))},
            {**base, "image": {"bytes": None, "path": "p.png"}},
            {**base, "image": None, "image_path": "p.png"},
        ],
        "rlaif_v",
        media_root=tmp_path,
    )
    assert _colour(rows[0]["images"][0]) == (0, 0, 255)
    assert rows[1]["images"] == rows[2]["images"] == [str(tmp_path / "p.png")]


# ---------------------------------------------------------------- VLFeedback (JSONL)


def _completion(model, response, helpful, ethical, faithful):
    def aspect(r):
        return {"Rating": r, "Rationale": "because"}

    annotations = {
        "Helpfulness": aspect(helpful),
        "Ethical Considerations": aspect(ethical),
        "Visual Faithfulness": aspect(faithful),
    }
    return {"annotations": annotations, "model": model, "response": response}


@pytest.fixture()
def vlfeedback_file(tmp_path):
    _png(tmp_path, "svit_0.png", (255, 0, 0))
    _png(tmp_path, "svit_1.png", (0, 255, 0))
    _png(tmp_path, "svit_2.png", (0, 0, 255))
    records = [
        {
            "id": "svit-0",
            "prompt": "What is shown?",
            "models": ["gpt-4v", "llava", "qwen"],
            "completions": [
                _completion("gpt-4v", "A red square.", "5", "5", "4"),  # 4.67: chosen
                _completion("llava", "A red dog.", "2", "5", "1"),  # 2.67: rejected
                _completion("qwen", "Something red.", "3", "5", "3"),  # 3.67
            ],
            "image_path": "svit_0.png",
        },
        {  # a tie: no preference, skipped and counted
            "id": "svit-1",
            "prompt": "What is shown?",
            "models": ["gpt-4v", "llava"],
            "completions": [
                _completion("gpt-4v", "A green square.", "4", "5", "3"),
                _completion("llava", "Green.", "3", "5", "4"),
            ],
            "image_path": "svit_1.png",
        },
        {  # an unrated completion ("N/A") is left out
            "id": "svit-2",
            "prompt": "<image>\nName the colour.",
            "models": ["a", "b", "c"],
            "completions": [
                _completion("a", "Blue.", "3", "5", "3"),  # 3.67: chosen
                _completion("b", "Purple, certainly.", "N/A", "1", "1"),
                _completion("c", "Maybe yellow.", "1", "5", "2"),  # 2.67: rejected
            ],
            "image_path": "svit_2.png",
        },
    ]
    return _write_jsonl(tmp_path / "vlfeedback.jsonl", records)


def test_vlfeedback_pairs_by_average_rating_and_counts_ties(vlfeedback_file, tiny_policy, tmp_path):
    report = Counter()
    rows = load_format(vlfeedback_file, "vlfeedback", media_root=tmp_path, report=report)
    assert report == Counter({"tie: all completions have the same average rating": 1})
    assert [r["meta"]["id"] for r in rows] == ["svit-0", "svit-2"]
    assert rows[0]["prompt"] == _user(None, "What is shown?")
    assert rows[0]["chosen"] == _assistant("A red square.")
    assert rows[0]["rejected"] == _assistant("A red dog.")
    assert rows[0]["images"] == [str(tmp_path / "svit_0.png")]
    meta = rows[0]["meta"]
    assert (meta["chosen_model"], meta["rejected_model"]) == ("gpt-4v", "llava")
    assert meta["chosen_score"] == pytest.approx(14 / 3) and meta["rejected_score"] == pytest.approx(8 / 3)
    assert rows[1]["prompt"] == _user(None, "Name the colour.")
    assert (rows[1]["chosen"], rows[1]["rejected"]) == (_assistant("Blue."), _assistant("Maybe yellow."))
    _encode_pairs(rows, tiny_policy, tmp_path)


def test_vlfeedback_rating_aspects_are_configurable(vlfeedback_file):
    report = Counter()
    rows = load_format(vlfeedback_file, "vlfeedback", report=report, aspects=["Visual Faithfulness"])
    assert not report  # on faithfulness alone the second record is no tie (3 vs 4)
    assert rows[1]["chosen"] == _assistant("Green.") and rows[1]["rejected"] == _assistant("A green square.")
    assert rows[0]["images"] == ["svit_0.png"]  # no media_root: paths stay relative
    # "Purple" is rated on the chosen aspect now and is the worst
    assert rows[2]["rejected"] == _assistant("Purple, certainly.")


def test_vlfeedback_ranked(vlfeedback_file):
    raw = [json.loads(line) for line in vlfeedback_file.read_text().splitlines()]
    report = Counter()
    rows = convert(raw, "vlfeedback", ranked=True, report=report)
    assert rows == convert(raw, "vlfeedback_ranked")
    assert report == Counter({"tie: all completions have the same average rating": 1})
    first = rows[0]
    assert first["responses"] == [_assistant("A red square."), _assistant("A red dog."), _assistant("Something red.")]
    assert first["scores"] == pytest.approx([14 / 3, 8 / 3, 11 / 3])
    assert first["meta"]["models"] == ["gpt-4v", "llava", "qwen"]
    assert "chosen" not in first
    assert rows[1]["responses"] == [_assistant("Blue."), _assistant("Maybe yellow.")]  # the unrated one left out
    for i, row in enumerate(rows):
        validate_row(row, i, ())


# ---------------------------------------------------------------- POVID (JSON list)


@pytest.fixture()
def povid_file(tmp_path):
    _png(tmp_path, "COCO_train2014_000000000009.jpg", (255, 255, 0))
    _png(tmp_path, "COCO_train2014_000000000025.jpg", (0, 255, 255))
    records = [
        {
            "id": "9",
            "image": "COCO_train2014_000000000009.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe this image in detail."},
                {"from": "gpt", "value": "A yellow square."},
            ],
            "rejected": "A yellow square next to a cat.",
        },
        {
            "id": "25",
            "image": "COCO_train2014_000000000025.jpg",
            "conversations": [
                {"from": "human", "value": "What is in the picture?"},
                {"from": "gpt", "value": "A cyan square."},
            ],
            "rejected": "Two cyan squares.",
        },
    ]
    path = tmp_path / "povid.json"
    path.write_text(json.dumps(records))
    return path


def test_povid(povid_file, tiny_policy, tmp_path):
    rows = load_format(povid_file, "povid", media_root=tmp_path)
    assert rows[0]["prompt"] == _user(None, "Describe this image in detail.")
    assert rows[1]["prompt"] == _user(None, "What is in the picture?")  # no token: image first
    assert rows[0]["chosen"] == _assistant("A yellow square.")
    assert rows[0]["rejected"] == _assistant("A yellow square next to a cat.")
    assert rows[1]["images"] == [str(tmp_path / "COCO_train2014_000000000025.jpg")]
    assert rows[0]["meta"] == {"source": "povid", "id": "9", "image": "COCO_train2014_000000000009.jpg"}
    _encode_pairs(rows, tiny_policy, tmp_path)


# ---------------------------------------------------------------- align-anything text-image-to-text


@pytest.fixture()
def aa_file(tmp_path):
    def record(q, r1, r2, overall, colour):
        return {
            "question": q,
            "image": {"bytes": _png_bytes(colour), "path": None},
            "response_1": r1,
            "response_2": r2,
            "p_response": overall,
            "prompt_following_rate_1": 3,
            "prompt_following_rate_2": 1,
            "objective_rules_rate_1": 3,
            "objective_rules_rate_2": 2,
            "overall_response": overall,
            "overall_textfeedback": "Response 1 is accurate.",
        }

    records = [
        record("What shape is this?", "A square.", "A triangle.", 1, (10, 20, 30)),
        record("Which colour dominates?", "Green, I think.", "It is grey.", 2, (128, 128, 128)),
    ]
    return _write_parquet(tmp_path / "aa.parquet", records)


def test_align_anything_ti2t(aa_file, tiny_policy, tmp_path):
    rows = load_format(aa_file, "aa_ti2t")
    assert rows[0]["prompt"] == _user(None, "What shape is this?")
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (_assistant("A square."), _assistant("A triangle."))
    assert (rows[1]["chosen"], rows[1]["rejected"]) == (_assistant("It is grey."), _assistant("Green, I think."))
    assert _colour(rows[1]["images"][0]) == (128, 128, 128)
    meta = rows[1]["meta"]
    assert meta["source"] == "align_anything_ti2t" and meta["overall_response"] == 2
    assert meta["prompt_following_rate_1"] == 3 and meta["overall_textfeedback"] == "Response 1 is accurate."
    _encode_pairs(rows, tiny_policy, tmp_path)


# ---------------------------------------------------------------- bad input


_GOOD = {
    "rlaif_v": {"question": "Q?", "chosen": "Yes.", "rejected": "No.", "image": "x.png"},
    "povid": {
        "id": "1",
        "image": "x.png",
        "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "Yes."}],
        "rejected": "No.",
    },
    "aa_ti2t": {"question": "Q?", "image": "x.png", "response_1": "Yes.", "response_2": "No.", "overall_response": 1},
    "vlfeedback": {
        "id": "v",
        "prompt": "Q?",
        "image_path": "x.png",
        "completions": [_completion("a", "Yes.", "5", "5", "5"), _completion("b", "No.", "1", "1", "1")],
    },
}


@pytest.mark.parametrize(
    "fmt, change, field",
    [
        ("rlaif_v", {"question": None}, "question"),
        ("rlaif_v", {"image": None}, "image"),
        ("rlaif_v", {"rejected": "Yes."}, "rejected"),
        ("povid", {"rejected": " "}, "rejected"),
        ("povid", {"image": None}, "image"),
        ("povid", {"rejected": "Yes."}, "rejected"),
        ("aa_ti2t", {"response_2": None}, "response_2"),
        ("aa_ti2t", {"overall_response": 3}, "overall_response"),
        ("aa_ti2t", {"response_2": "Yes."}, "response_2"),
        ("vlfeedback", {"image_path": None}, "image"),
        ("vlfeedback", {"completions": None}, "completions"),
    ],
)
def test_bad_record_names_example_and_field(fmt, change, field):
    good = _GOOD[fmt]
    assert len(convert([good], fmt)) == 1
    bad = {**good, **change}
    with pytest.raises(DataError) as info:
        convert([good, good, bad], fmt)
    assert info.value.index == 2 and info.value.field == field
    assert f"example 2, field '{field}'" in str(info.value)


def test_vlfeedback_identical_best_and_worst_responses():
    row = {**_GOOD["vlfeedback"]}
    row["completions"] = [_completion("a", "Same.", "5", "5", "5"), _completion("b", "Same.", "1", "1", "1")]
    with pytest.raises(DataError) as info:
        convert([row], "vlfeedback")
    assert info.value.index == 0 and info.value.field == "completions[1].response"


def test_missing_image_file_under_media_root(tmp_path):
    with pytest.raises(DataError) as info:
        convert([_GOOD["povid"]], "povid", media_root=tmp_path)
    assert info.value.field == "images[0]" and "not found" in info.value.reason


def test_read_rows_still_reads_jsonl(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"a": 1}])
    assert read_rows(tmp_path, "train") == [{"a": 1}]


def test_a_dataset_in_the_hubs_layout_trains_as_data_path(tmp_path, tiny_policy, monkeypatch):
    """`data.path` takes a Hub dataset: its name (loaded with datasets.load_dataset) or a folder in its layout
    (data/<split>-*.parquet, images embedded as bytes) — both the same datasets.load_dataset call."""
    from zoo.train.data import PairDataModule

    repo = tmp_path / "org" / "pairs"
    (repo / "data").mkdir(parents=True)
    records = [{"prompt": _user(None, "Describe."), "chosen": _assistant(f"red {i}"), "rejected": _assistant("blue"),
                "images": [{"bytes": _png_bytes((200, 0, 0)), "path": None}]} for i in range(6)]
    ds = datasets.Dataset.from_list(records).cast_column("images", datasets.Sequence(datasets.Image(decode=False)))
    ds.to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    module = PairDataModule(str(repo), train_split="train", val_split=None, world=None, batch_size=2, max_length=64)
    module.attach(tiny_policy.processor).setup()
    assert len(module.encoded["train"]) == 6
    rows = read_rows(repo, "train")
    assert _colour(rows[0]["images"][0]) == (200, 0, 0) and rows[3]["chosen"][0]["content"][0]["text"] == "red 3"
    with pytest.raises(FileNotFoundError, match=r"org/pairs: .*split"):
        read_rows(repo, "test")
    # a Hub name that cannot be reached (no network here): one error naming the dataset
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="cannot load the dataset 'nobody/no-such-pairs'"):
        read_rows("nobody/no-such-pairs", "train")
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a Hub dataset name"):
        read_rows(tmp_path / "missing" / "deep" / "x", "train")
