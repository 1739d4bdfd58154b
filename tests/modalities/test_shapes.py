"""Tests of the deterministic "shapes" synthetic world."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalities.synthetic import (
    BIAS_PAIRS,
    COLOURS,
    SHAPES,
    ShapesConfig,
    caption,
    corpus,
    generate_world,
    load_world,
    mentioned_shapes,
    parse_yes_no,
)

SMALL = ShapesConfig(seed=0, n_train=60, n_test=20, n_trigger=20)


def _read_rows(world: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (world / f"{split}.jsonl").read_text().splitlines()]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("small") / "world", SMALL, progress=False)


@pytest.fixture(scope="module")
def big_world(tmp_path_factory) -> Path:
    config = ShapesConfig(seed=1, n_train=400, n_test=200, n_trigger=60)
    return generate_world(tmp_path_factory.mktemp("big") / "world", config, progress=False)


def _partner_rate(rows: list[dict], anchor: str, partner: str) -> float:
    scenes = {r["image_id"]: {o["shape"] for o in r["objects"]} for r in rows}
    with_anchor = [s for s in scenes.values() if anchor in s]
    return sum(partner in s for s in with_anchor) / len(with_anchor)


# --- determinism and regeneration -----------------------------------------------------


def test_same_seed_gives_byte_identical_tree(small_world, tmp_path):
    again = generate_world(tmp_path / "again", SMALL, progress=False)
    a, b = _tree(small_world), _tree(again)
    assert a.keys() == b.keys()
    assert len([k for k in a if k.endswith(".png")]) == 100
    assert {"train.jsonl", "test.jsonl", "trigger.jsonl", "world.json"} <= a.keys()
    assert all(a[k] == b[k] for k in a)


def test_different_seed_gives_different_world(small_world, tmp_path):
    other = generate_world(tmp_path / "other", ShapesConfig(seed=1, n_train=60, n_test=20, n_trigger=20),
                           progress=False)
    a, b = _tree(small_world), _tree(other)
    assert a.keys() == b.keys()
    assert a["train.jsonl"] != b["train.jsonl"]
    assert sum(a[k] != b[k] for k in a if k.endswith(".png")) > 90


def test_regeneration_is_skipped_for_same_config_and_replaced_otherwise(tmp_path):
    config = ShapesConfig(n_train=10, n_test=5, n_trigger=5)
    world = generate_world(tmp_path / "w", config, progress=False)
    files = [world / "world.json", world / "train.jsonl", world / "images" / "train" / "00000.png"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert generate_world(tmp_path / "w", config, progress=False) == world
    assert [f.stat().st_mtime_ns for f in files] == mtimes

    bigger = ShapesConfig(n_train=12, n_test=5, n_trigger=5)
    generate_world(tmp_path / "w", bigger, progress=False)
    assert json.loads((world / "world.json").read_text())["config"]["n_train"] == 12
    assert len(list((world / "images" / "train").glob("*.png"))) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temp dirs left behind


def test_world_json_contents(small_world):
    meta = json.loads((small_world / "world.json").read_text())
    assert meta["version"] == "1"
    assert meta["config"] == {**SMALL.__dict__}
    assert meta["shapes"] == list(SHAPES)
    freq, cooc = meta["train_shape_frequency"], meta["train_cooccurrence"]
    train = _read_rows(small_world, "train")
    scenes = {r["image_id"]: [o["shape"] for o in r["objects"]] for r in train}
    assert sum(freq.values()) == sum(len(s) for s in scenes.values())
    assert cooc["circle"]["square"] == cooc["square"]["circle"] == sum(
        "circle" in s and "square" in s for s in scenes.values())


# --- bias -----------------------------------------------------------------------------


def test_train_is_biased_and_test_is_not(big_world):
    train, test = _read_rows(big_world, "train"), _read_rows(big_world, "test")
    for anchor, partner in BIAS_PAIRS:
        assert _partner_rate(train, anchor, partner) >= 0.85
        assert _partner_rate(test, anchor, partner) < 0.7


def test_every_trigger_image_has_an_anchor_without_partner(big_world):
    for row in _read_rows(big_world, "trigger"):
        present = {o["shape"] for o in row["objects"]}
        assert row["trigger_absent"]
        assert all(p not in present for a, p in BIAS_PAIRS if a in present)
        assert row["trigger_absent"] == [p for a, p in BIAS_PAIRS if a in present]


# --- images ---------------------------------------------------------------------------


def test_images_are_pngs_with_objects_drawn_at_their_centres(small_world):
    for split in ("train", "trigger"):
        captions = [r for r in _read_rows(small_world, split) if r["task"] == "caption"]
        for row in captions:
            image = Image.open(small_world / row["images"][0])
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (48, 48)
            pixels = np.asarray(image).astype(int)
            for obj in row["objects"]:
                assert len({o["position"] for o in row["objects"]}) == len(row["objects"])
                centre = pixels[obj["cy"], obj["cx"]]
                assert np.abs(centre - np.array(COLOURS[obj["colour"]])).max() <= 2, obj


# --- rows and text --------------------------------------------------------------------


def test_caption_template_and_order():
    def obj(shape, colour, position):
        return {"shape": shape, "colour": colour, "position": position, "cx": 0, "cy": 0, "size": 10}

    assert caption([obj("circle", "red", "top left")]) == "The circle is red and at the top left."
    assert caption([obj("square", "blue", "bottom right"), obj("circle", "red", "top left")]) == (
        "The circle is red and at the top left. The square is blue and at the bottom right.")
    three = [obj("cross", "green", "top right"), obj("circle", "red", "top left"),
             obj("star", "yellow", "bottom left")]
    assert caption(three, "shape") == ("The circle is red and at the top left. The star is yellow and at the "
                                       "bottom left. The cross is green and at the top right.")
    assert caption(three, "position") == ("The circle is red and at the top left. The cross is green and at the "
                                          "top right. The star is yellow and at the bottom left.")
    assert caption(three) == caption(three, "shape")  # shape order by default: partners follow anchors
    with pytest.raises(ValueError, match="caption order"):
        caption(three, "colour")


def test_row_schema_and_answers(small_world):
    rows = _read_rows(small_world, "train")
    assert rows[0]["task"] == "caption" and len(rows) == 60 * 3
    for row in rows:
        assert row["split"] == "train" and row["pope"] is None
        assert row["prompt"][0]["content"][0] == {"type": "image"}
        reply = row["completion"][0]["content"][0]["text"]
        question = row["prompt"][0]["content"][1]["text"]
        present = {o["shape"]: o for o in row["objects"]}
        if row["task"] == "caption":
            assert question == "Describe the image." and reply == row["answer"] == caption(row["objects"])
        elif row["task"] == "existence":
            shape = re.match(r"Is there a (\w+) in the image\?", question).group(1)
            assert row["answer"] == ("yes" if shape in present else "no")
            assert reply == row["answer"].capitalize() + "."
        elif row["task"] == "colour":
            shape = re.match(r"What colour is the (\w+)\?", question).group(1)
            assert reply == present[shape]["colour"].capitalize() + "."
        elif row["task"] == "count":
            assert row["answer"] == ("zero", "one", "two", "three", "four")[len(present)]
        else:
            shape = re.match(r"Where is the (\w+)\?", question).group(1)
            assert reply == f"At the {present[shape]['position']}." and row["answer"] == present[shape]["position"]
    assert len({r["id"] for r in rows}) == len(rows)


def test_pope_rows(big_world):
    meta = json.loads((big_world / "world.json").read_text())
    freq = meta["train_shape_frequency"]
    for split in ("test", "trigger"):
        rows = _read_rows(big_world, split)
        assert len(rows) == len({r["image_id"] for r in rows}) * 10
        for row in (r for r in rows if r["task"] == "existence"):
            assert row["pope"] in ("random", "popular", "adversarial")
            shape = re.match(r"Is there a (\w+) in the image\?", row["prompt"][0]["content"][1]["text"]).group(1)
            present = {o["shape"] for o in row["objects"]}
            assert (shape in present) == (row["answer"] == "yes")
            if row["answer"] == "no" and row["pope"] == "popular":
                absent = [s for s in SHAPES if s not in present]
                assert freq[shape] == max(freq[s] for s in absent)
            if row["answer"] == "no" and row["pope"] == "adversarial" and split == "trigger":
                assert shape in row["trigger_absent"]
                if len(present) == 1:
                    assert row["trigger_absent"] == [shape]


def test_mentioned_shapes_and_parse_yes_no():
    assert mentioned_shapes("A red Ball next to a BOX, and another disc; two stars.") == ["circle", "square", "star"]
    assert mentioned_shapes("a plus sign, a rhombus and crosses") == ["cross", "diamond"]
    assert mentioned_shapes("squared circular starfish") == []
    assert parse_yes_no("No, there is not.") == "no"
    assert parse_yes_no("Yes.") == "yes"
    assert parse_yes_no("Yes, but not really") == "no"
    assert parse_yes_no("maybe") is None
    assert parse_yes_no("Nothing here, yesterday") is None


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+|[^\w\s]", text))


def test_corpus_covers_every_text_of_a_world(small_world):
    vocabulary = set().union(*map(_words, corpus()))
    for split in ("train", "test", "trigger"):
        for row in _read_rows(small_world, split):
            texts = [row["prompt"][0]["content"][1]["text"], row["completion"][0]["content"][0]["text"], row["answer"]]
            for text in texts:
                assert _words(text) <= vocabulary, text


def test_load_world_keeps_nested_columns(small_world):
    world = load_world(small_world)
    assert set(world) == {"train", "test", "trigger"}
    assert len(world["train"]) == 180 and len(world["test"]) == 200 and len(world["trigger"]) == 200
    row = world["test"][1]
    assert row == {**_read_rows(small_world, "test")[1], "prompt": row["prompt"]}
    assert row["prompt"][0]["role"] == "user"
    assert row["prompt"][0]["content"][0]["type"] == "image"
    assert row["prompt"][0]["content"][1]["text"].startswith("Is there")
    assert row["images"][0] == "images/test/00000.png" and (small_world / row["images"][0]).is_file()
    assert world["train"].features == world["test"].features
    assert world["train"][0]["pope"] is None
