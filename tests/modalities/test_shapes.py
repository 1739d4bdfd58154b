"""Tests of the deterministic "shapes" synthetic world."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalities.synthetic import (
    BIAS_PAIRS,
    COLOURS,
    HALLUCINATION_KINDS,
    HALLUCINATION_WEIGHTS,
    POSITIONS,
    SHAPES,
    ShapesConfig,
    caption,
    corpus,
    generate_world,
    hallucinate,
    load_world,
    mentioned_shapes,
    parse_yes_no,
)
from zoo.data.formats import read_rows

SMALL = ShapesConfig(seed=0, n_train=60, n_test=20, n_trigger=20, n_pairs=40, n_ranked=4)


def _read_rows(world: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (world / f"{split}.jsonl").read_text().splitlines()]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("small") / "world", SMALL, progress=False)


@pytest.fixture(scope="module")
def big_world(tmp_path_factory) -> Path:
    config = ShapesConfig(seed=1, n_train=400, n_test=200, n_trigger=60, n_pairs=400, n_ranked=4)
    return generate_world(tmp_path_factory.mktemp("big") / "world", config, progress=False)


GOLD = dict(pairs_regime="gold", mention_prob=1.0)  # the version-1 (easy) regime


@pytest.fixture(scope="module")
def gold_world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("gold") / "world", dataclasses.replace(SMALL, **GOLD), progress=False)


@pytest.fixture(scope="module")
def big_gold_world(tmp_path_factory) -> Path:
    config = ShapesConfig(seed=1, n_train=400, n_test=200, n_trigger=60, n_pairs=400, n_ranked=4, **GOLD)
    return generate_world(tmp_path_factory.mktemp("big-gold") / "world", config, progress=False)


def _partner_rate(rows: list[dict], anchor: str, partner: str) -> float:
    scenes = {r["image_id"]: {o["shape"] for o in r["objects"]} for r in rows}
    with_anchor = [s for s in scenes.values() if anchor in s]
    return sum(partner in s for s in with_anchor) / len(with_anchor)


# --- determinism and regeneration -----------------------------------------------------


def test_same_seed_gives_byte_identical_tree(small_world, tmp_path):
    again = generate_world(tmp_path / "again", SMALL, progress=False)
    a, b = _tree(small_world), _tree(again)
    assert a.keys() == b.keys()
    assert len([k for k in a if k.endswith(".png")]) == 144  # train + test + trigger + pairs + ranked
    assert {"train.jsonl", "test.jsonl", "trigger.jsonl", "pairs.jsonl", "ranked.jsonl", "world.json"} <= a.keys()
    assert all(a[k] == b[k] for k in a)


def test_ranked_split_scores_count_the_false_sentences(small_world):
    from modalities.synthetic.shapes import caption

    rows = read_rows(small_world, "ranked")
    assert len(rows) == SMALL.n_ranked
    for row in rows:
        texts = [r[0]["content"][0]["text"] for r in row["responses"]]
        assert len(texts) == len(row["scores"]) == SMALL.ranked_responses
        assert texts[0] == caption(row["objects"]) and row["scores"][0] == 0 and row["scores"][1] == -1
        truth = {_sentence_of(o) for o in row["objects"]}
        for text, score in zip(texts, row["scores"]):  # the score is minus the number of false sentences
            assert score == -sum(s not in truth for s in split_caption(text))
        assert row["images"][0].startswith("images/ranked/") and len(row["hallucinations"]) == len(texts) - 1


def _sentence_of(obj: dict) -> str:
    return f"The {obj['shape']} is {obj['colour']} and at the {obj['position']}."


def split_caption(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def test_different_seed_gives_different_world(small_world, tmp_path):
    other = generate_world(tmp_path / "other", ShapesConfig(seed=1, n_train=60, n_test=20, n_trigger=20, n_pairs=40, n_ranked=4),
                           progress=False)
    a, b = _tree(small_world), _tree(other)
    assert a.keys() == b.keys()
    assert a["train.jsonl"] != b["train.jsonl"]
    assert sum(a[k] != b[k] for k in a if k.endswith(".png")) > 90


def test_regeneration_is_skipped_for_same_config_and_replaced_otherwise(tmp_path):
    config = ShapesConfig(n_train=10, n_test=5, n_trigger=5, n_pairs=5, n_ranked=4)
    world = generate_world(tmp_path / "w", config, progress=False)
    files = [world / "world.json", world / "train.jsonl", world / "images" / "train" / "00000.png"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert generate_world(tmp_path / "w", config, progress=False) == world
    assert [f.stat().st_mtime_ns for f in files] == mtimes

    bigger = ShapesConfig(n_train=12, n_test=5, n_trigger=5, n_pairs=5, n_ranked=4)
    generate_world(tmp_path / "w", bigger, progress=False)
    assert json.loads((world / "world.json").read_text())["config"]["n_train"] == 12
    assert len(list((world / "images" / "train").glob("*.png"))) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temp dirs left behind


def test_world_json_contents(small_world):
    meta = json.loads((small_world / "world.json").read_text())
    assert meta["version"] == "2"
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
        if row["task"] == "caption":  # partial: a caption of some of the objects (at least one), in shape order
            named = mentioned_shapes(reply)
            assert question == "Describe the image." and reply == row["answer"] and named
            assert reply == caption([o for o in row["objects"] if o["shape"] in named])
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
    assert set(world) == {"train", "test", "trigger", "pairs"}
    assert len(world["train"]) == 180 and len(world["test"]) == 200 and len(world["trigger"]) == 200
    row = world["test"][1]
    assert row == {**_read_rows(small_world, "test")[1], "prompt": row["prompt"]}
    assert row["prompt"][0]["role"] == "user"
    assert row["prompt"][0]["content"][0]["type"] == "image"
    assert row["prompt"][0]["content"][1]["text"].startswith("Is there")
    assert row["images"][0] == "images/test/00000.png" and (small_world / row["images"][0]).is_file()
    assert world["train"].features == world["test"].features
    assert world["train"][0]["pope"] is None


# --- annotated preference pairs -------------------------------------------------------


def _text(messages: list[dict]) -> str:
    assert len(messages) == 1 and messages[0]["role"] == "assistant"
    return messages[0]["content"][0]["text"]


def _sentences(text: str) -> list[str]:
    return re.findall(r"The \w+ is \w+ and at the \w+ \w+\.", text)


PAIR_KEYS = {"id", "image_id", "split", "task", "prompt", "chosen", "rejected", "images", "objects", "hallucination",
             "chosen_errors", "rejected_errors", "regime"}


def test_gold_pairs_schema(gold_world):
    pairs = _read_rows(gold_world, "pairs")
    for pair in pairs:
        assert set(pair) == PAIR_KEYS and pair["regime"] == "gold"
        assert _text(pair["chosen"]) == caption(pair["objects"]) and pair["chosen_errors"] == []
        assert pair["rejected_errors"] == [pair["hallucination"]]
        assert pair["hallucination"]["detail"] in _sentences(_text(pair["rejected"]))
    train = [r for r in _read_rows(gold_world, "train") if r["task"] == "caption"]
    assert all(r["answer"] == caption(r["objects"]) for r in train)  # mention_prob 1: exhaustive captions


def test_pairs_schema_and_determinism(small_world, tmp_path):
    pairs = _read_rows(small_world, "pairs")
    describe = next(r for r in _read_rows(small_world, "train") if r["task"] == "caption")["prompt"]
    assert len(pairs) == 40 and [p["image_id"] for p in pairs] == [f"pairs-{i:05d}" for i in range(40)]
    assert len({p["id"] for p in pairs}) == len(pairs)
    for pair in pairs:
        assert set(pair) == PAIR_KEYS and pair["regime"] == "relative"
        assert pair["split"] == "pairs" and pair["task"] == "caption_pair"
        assert pair["prompt"] == describe
        assert [c["type"] for c in pair["prompt"][0]["content"]] == ["image", "text"]
        assert pair["images"] == [f"images/pairs/{pair['image_id'][-5:]}.png"]
        assert (small_world / pair["images"][0]).is_file()
        assert _text(pair["rejected"]) != _text(pair["chosen"])
        assert pair["hallucination"]["detail"] in _sentences(_text(pair["rejected"]))
    # the pairs file is part of the byte-identical tree (test above); regenerate to be explicit
    again = generate_world(tmp_path / "again", SMALL, progress=False)
    assert (again / "pairs.jsonl").read_bytes() == (small_world / "pairs.jsonl").read_bytes()
    # the other splits do not depend on the pairs
    none = generate_world(tmp_path / "none", dataclasses.replace(SMALL, n_pairs=0), progress=False)
    assert not (none / "pairs.jsonl").exists() and "pairs" not in load_world(none)
    assert not (none / "images" / "pairs").exists()
    for split in ("train", "test", "trigger"):
        assert (none / f"{split}.jsonl").read_bytes() == (small_world / f"{split}.jsonl").read_bytes()
    assert json.loads((none / "world.json").read_text())["config"]["n_pairs"] == 0
    with pytest.raises(ValueError, match="pairs_per_image"):
        generate_world(tmp_path / "bad", dataclasses.replace(SMALL, pairs_per_image=0), progress=False)


def test_pairs_images_are_unbiased(big_gold_world):
    """Pairs images are drawn like the test split: lone anchors are common, unlike in train."""
    pairs, train = _read_rows(big_gold_world, "pairs"), _read_rows(big_gold_world, "train")
    for anchor, partner in BIAS_PAIRS:
        assert _partner_rate(train, anchor, partner) > 0.85
        assert _partner_rate(pairs, anchor, partner) < 0.7
    partner = sum(p["hallucination"]["kind"] == "partner" for p in pairs) / len(pairs)
    assert partner > 0.15  # the partner injection the bias prior predicts is frequent


def test_pairs_hallucinations(big_gold_world):
    pairs = _read_rows(big_gold_world, "pairs")
    kinds = {k: 0 for k in HALLUCINATION_KINDS}
    for pair in pairs:
        info, objects = pair["hallucination"], pair["objects"]
        present = {o["shape"] for o in objects}
        chosen, rejected = _sentences(_text(pair["chosen"])), _sentences(_text(pair["rejected"]))
        kinds[info["kind"]] += 1
        if info["kind"] == "colour":
            assert len(rejected) == len(chosen) and info["shape"] in present
            diff = [(a, b) for a, b in zip(chosen, rejected) if a != b]
            assert len(diff) == 1 and diff[0][1] == info["detail"]
            words = [(x, y) for x, y in zip(diff[0][0].split(), diff[0][1].split()) if x != y]
            assert len(words) == 1 and {*words[0]} <= set(COLOURS)
        else:
            assert info["shape"] not in present  # CHAIR counts it
            assert mentioned_shapes(_text(pair["rejected"])) == sorted(present | {info["shape"]}, key=SHAPES.index)
            assert [s for s in rejected if s != info["detail"]] == chosen  # one sentence inserted
            lonely = [p for a, p in BIAS_PAIRS if a in present and p not in present]
            if info["kind"] == "partner":
                assert info["shape"] in lonely
            elif info["kind"] == "co_occurrence":
                assert not lonely
    n = len(pairs)
    assert n == 400
    bias = (kinds["partner"] + kinds["co_occurrence"]) / n
    assert abs(bias - HALLUCINATION_WEIGHTS["bias"]) < 0.1
    assert abs(kinds["colour"] / n - HALLUCINATION_WEIGHTS["colour"]) < 0.08
    assert abs(kinds["count"] / n - HALLUCINATION_WEIGHTS["count"]) < 0.08
    assert kinds["partner"] > 0 and kinds["co_occurrence"] > 0


def test_hallucinate_partner_for_lone_anchor_and_co_occurrence_otherwise():
    def obj(shape, colour, position):
        return {"shape": shape, "colour": colour, "position": position, "cx": 0, "cy": 0, "size": 10}

    lone = [obj("circle", "red", "top left"), obj("star", "blue", "bottom right")]  # star: partner, not anchor
    stats = {"train_cooccurrence": {a: {b: (5 if {a, b} == {"star", "diamond"} else 1) for b in SHAPES if b != a}
                                    for a in SHAPES}}
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        rejected, info = hallucinate(rng, lone, stats)
        seen.add(info["kind"])
        if info["kind"] in ("partner", "co_occurrence"):
            assert info["kind"] == "partner" and info["shape"] == "square"
            sentences = _sentences(rejected)
            assert sentences[1] == info["detail"] and sentences[1].startswith("The square is")  # SHAPES order
            assert info["detail"].endswith(("top right.", "bottom left."))  # a free quadrant
        if info["kind"] == "count":
            assert info["shape"] in ("square", "triangle", "diamond", "cross")
    assert seen == {"partner", "colour", "count"}
    paired = [obj("triangle", "red", "top left"), obj("star", "blue", "bottom right")]
    kinds = [hallucinate(rng, paired, stats) for _ in range(50)]
    assert {i["shape"] for _, i in kinds if i["kind"] == "co_occurrence"} == {"diamond"}
    assert not [i for _, i in kinds if i["kind"] == "partner"]
    full = [obj(s, "red", p) for s, p in zip(("circle", "square", "triangle", "star"), POSITIONS)]
    for _ in range(50):
        rejected, info = hallucinate(rng, full, stats)
        assert len(_sentences(rejected)) == 5 - (info["kind"] == "colour")


def test_pairs_text_is_covered_by_corpus(small_world):
    vocabulary = set().union(*map(_words, corpus()))
    for pair in _read_rows(small_world, "pairs"):
        assert _words(_text(pair["rejected"])) <= vocabulary


def test_load_world_pairs_split(small_world):
    pairs = load_world(small_world)["pairs"]
    assert len(pairs) == 40
    row = pairs[0]
    assert row == {**_read_rows(small_world, "pairs")[0], "prompt": row["prompt"]}  # prompt: nulls filled in
    assert row["prompt"][0]["content"][0]["type"] == "image"
    assert {"prompt", "chosen", "rejected", "images"} <= set(pairs.column_names)


def _false_sentences(text: str, objects: list[dict]) -> list[str]:
    truth = {f"The {o['shape']} is {o['colour']} and at the {o['position']}." for o in objects}
    return [s for s in _sentences(text) if s not in truth]


def test_relative_pairs_invariants(big_world):
    """Relative regime: two captions of a biased describer of the same named objects; the chosen one has
    fewer false sentences but may be wrong too, and each recorded error is a false sentence of its side."""
    pairs = _read_rows(big_world, "pairs")
    for pair in pairs:
        chosen, rejected, objects = _text(pair["chosen"]), _text(pair["rejected"]), pair["objects"]
        wrong_c, wrong_r = _false_sentences(chosen, objects), _false_sentences(rejected, objects)
        assert sorted(wrong_c) == sorted(e["detail"] for e in pair["chosen_errors"])
        assert sorted(wrong_r) == sorted(e["detail"] for e in pair["rejected_errors"])
        assert len(wrong_c) < len(wrong_r)  # a strict preference: ties are not pairs
        present = {o["shape"] for o in objects}
        for side in ("chosen_errors", "rejected_errors"):
            for error in pair[side]:
                if error["kind"] in ("partner", "count"):
                    assert error["shape"] not in present  # an addition CHAIR counts
                if error["kind"] == "partner":
                    anchor = next(a for a, p in BIAS_PAIRS if p == error["shape"])
                    named = mentioned_shapes(_text(pair["chosen" if side == "chosen_errors" else "rejected"]))
                    assert anchor in present and anchor in named  # the prior fires on a named lone anchor
        # both sides describe the same true objects (the contrast is in the errors only); a partner error that
        # misnames a named object (describer_swap) stands at that object's place, in its colour
        at = {o["position"]: o for o in objects}
        misnamed = set()
        for error in pair["chosen_errors"] + pair["rejected_errors"]:
            colour, position = re.fullmatch(r"The \w+ is (\w+) and at the (.+)\.", error["detail"]).groups()
            if error["kind"] == "partner" and position in at and at[position]["colour"] == colour:
                misnamed.add(at[position]["shape"])  # (or an added partner in a full scene: a looser check)
        true_c = {s.split()[1] for s in _sentences(chosen) if s not in wrong_c}
        true_r = {s.split()[1] for s in _sentences(rejected) if s not in wrong_r}
        coloured = {e["shape"] for e in pair["chosen_errors"] + pair["rejected_errors"] if e["kind"] == "colour"}
        assert true_c - coloured - misnamed == true_r - coloured - misnamed


def test_relative_pairs_carry_the_bias_in_the_chosen(big_world):
    """Imitating the chosen captions teaches the prior: with a named lone anchor the chosen caption still names
    its absent partner most of the time; only the contrast with the rejected (which names it more) says no."""
    pairs = _read_rows(big_world, "pairs")
    lone = [p for p in pairs for a, partner in BIAS_PAIRS
            if partner in [s for s in SHAPES if s not in {o["shape"] for o in p["objects"]}]
            and a in {o["shape"] for o in p["objects"]} and a in mentioned_shapes(_text(p["chosen"]))]
    assert len(lone) > 50

    def rate(side):
        return sum(any(e["kind"] == "partner" for e in p[side]) for p in lone) / len(lone)

    assert 0.5 < rate("chosen_errors") < rate("rejected_errors")
    assert sum(not p["chosen_errors"] for p in pairs) / len(pairs) > 0.3  # …and many chosen captions are right


def _scene(*specs):
    return [{"shape": s, "colour": c, "position": p, "cx": 0, "cy": 0, "size": 10} for s, c, p in specs]


def test_describer_swap_misnames_a_named_object_instead_of_adding_the_partner():
    """describer_swap: the prior's partner replaces another named object (same colour and place, so the caption
    is no longer than a right one and leaves that object out); with only the anchor named it is added."""
    from modalities.synthetic.shapes import _describe

    # a lone circle (its partner, the square, is absent) beside a red star and a blue cross (no anchors)
    objects = _scene(("circle", "green", "top left"), ("star", "red", "top right"),
                     ("cross", "blue", "bottom left"))
    fires = ShapesConfig(describer_bias=1.0, describer_noise=0.0, describer_swap=1.0)
    for seed in range(20):
        described, errors = _describe(np.random.default_rng(seed), objects, objects[:2], fires)
        assert [e["kind"] for e in errors] == ["partner"] and errors[0]["shape"] == "square"
        # the circle (the anchor) stays; the star, the only other named object, is called a square
        assert described == _scene(("circle", "green", "top left"), ("square", "red", "top right"))
        assert errors[0]["detail"] == "The square is red and at the top right."
        # the anchor named alone: nothing to misname, so the partner is added
        described, errors = _describe(np.random.default_rng(seed), objects, objects[:1], fires)
        assert [o["shape"] for o in described] == ["circle", "square"]
        assert described[1]["position"] == "bottom right"  # the one free quadrant
    # without swaps the partner is always an extra object
    adds = dataclasses.replace(fires, describer_swap=0.0)
    described, errors = _describe(np.random.default_rng(0), objects, objects[:2], adds)
    assert [o["shape"] for o in described] == ["circle", "square", "star"]
    # a colour error never lands on the misnamed object: one false sentence per error
    noisy = dataclasses.replace(fires, describer_noise=1.0, describer_addition=0.0)
    for seed in range(20):
        described, errors = _describe(np.random.default_rng(seed), objects, objects, noisy)
        false = {(o["shape"], o["colour"], o["position"]) for o in described} - {
            (o["shape"], o["colour"], o["position"]) for o in objects}
        assert sorted(e["kind"] for e in errors) == ["colour", "partner"] and len(false) == 2
        assert len(described) == len(objects)


OLDER_REGIME = dict(describer_swap=0.0, describer_addition=0.5)  # the relative pairs before swaps (to 2026-11-29)


def test_describer_swap_shortens_the_length_cue(tmp_path):
    """With the default swaps the rejected caption is longer than the chosen one far less often than in the older
    regime (length stops being the contrast), the other splits are untouched, and swap 0 writes the world as it
    was written before the knob existed."""
    import hashlib

    swap = generate_world(tmp_path / "swap", dataclasses.replace(SMALL, n_pairs=400), progress=False)
    plain = generate_world(tmp_path / "plain", dataclasses.replace(SMALL, n_pairs=400, **OLDER_REGIME),
                           progress=False)
    for split in ("train", "test", "trigger", "ranked"):
        assert (swap / f"{split}.jsonl").read_bytes() == (plain / f"{split}.jsonl").read_bytes()

    def longer(world):
        pairs = _read_rows(world, "pairs")
        return sum(len(_sentences(_text(p["rejected"]))) > len(_sentences(_text(p["chosen"]))) for p in pairs)

    assert longer(swap) < 0.5 * longer(plain)
    # the pairs file of SMALL as the code wrote it before describer_swap existed (commit 483396b)
    before = generate_world(tmp_path / "before", dataclasses.replace(SMALL, **OLDER_REGIME), progress=False)
    digest = hashlib.sha256((before / "pairs.jsonl").read_bytes()).hexdigest()
    assert digest == "dec4b603504ffed4c9f19250581b2f8853e80ce065fb4d3900af4ab56d29d96c"


def test_regime_and_mentions_leave_the_other_streams_alone(small_world, tmp_path):
    gold = generate_world(tmp_path / "gold", dataclasses.replace(SMALL, pairs_regime="gold"), progress=False)
    for split in ("train", "test", "trigger", "ranked"):
        assert (gold / f"{split}.jsonl").read_bytes() == (small_world / f"{split}.jsonl").read_bytes()
    assert (gold / "pairs.jsonl").read_bytes() != (small_world / "pairs.jsonl").read_bytes()
    for bad, match in ((dict(pairs_regime="best"), "pairs_regime"), (dict(mention_prob=0.0), "mention_prob"),
                       (dict(describer_bias=1.5), "describer_bias"), (dict(describer_swap=-0.1), "describer_swap")):
        with pytest.raises(ValueError, match=match):
            generate_world(tmp_path / "bad", dataclasses.replace(SMALL, **bad), progress=False)
