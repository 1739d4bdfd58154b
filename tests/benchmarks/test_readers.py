"""Readers of public benchmark formats: tiny files in each format, scored with hand-made replies."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from benchmarks import readers
from benchmarks.hallucination import CaptionQualityTask, CHAIRTask, MMHalTask
from benchmarks.task import TASKS
from modalities.image import load_image


def make_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (30 * i, 100, 200)).save(folder / name, format="PNG")
    return folder


POPE_ROWS = [
    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"},
    {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?", "label": "no"},
    {"question_id": 3, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a person in the image?", "label": "yes"},
    {"question_id": 4, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a bus in the image?", "label": "no"},
]


@pytest.fixture
def pope_file(tmp_path):
    images = make_images(tmp_path / "val2014", sorted({r["image"] for r in POPE_ROWS}))
    path = tmp_path / "coco_pope_adversarial.json"  # POPE's .json files are JSON Lines
    path.write_text("".join(json.dumps(r) + "\n" for r in POPE_ROWS))
    return path, images


def test_pope_file(pope_file):
    path, images = pope_file
    task = TASKS.get("pope_adversarial")(file=path, media_root=images)
    items = task.items()
    assert [it["id"] for it in items] == ["1", "2", "3", "4"]
    assert [it["reference"] for it in items] == [{"label": l, "kind": "adversarial"} for l in ("yes", "no", "yes", "no")]
    assert items[0]["prompt"] == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "Is there a snowboard in the image?"}]}]
    assert load_image(items[0]["images"][0], task.media_root).size == (8, 8)
    assert task.items(2) == items[:2]
    perfect = task.score(items, ["Yes, there is.", "No.", "yes", "There is not."])
    assert perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0
    always_yes = task.score(items, ["Yes."] * 4)
    assert always_yes == {"accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                          "yes_ratio": 1.0, "unparseable": 0, "n": 4}
    unsure = task.score(items, ["I don't know.", "Hard to say.", "Yes.", "Yes."])  # "don", "t": unparseable
    assert unsure["unparseable"] == 2 and unsure["accuracy"] == 0.25 and unsure["n"] == 4


def test_pope_json_list_categories_and_bad_labels(tmp_path):
    rows = [{**r, "category": c} for r, c in zip(POPE_ROWS, ("random", "popular", "random", "adversarial"))]
    path = tmp_path / "pope.json"
    path.write_text(json.dumps(rows))
    assert [it["id"] for it in readers.read_pope(path, "random")] == ["1", "3"]
    assert len(readers.read_pope(path)) == 4
    assert TASKS.get("pope_random")(file=path).media_root == tmp_path  # default: the file's folder
    path.write_text(json.dumps([{**POPE_ROWS[0], "label": "maybe"}]))
    with pytest.raises(ValueError, match="yes' or 'no"):
        readers.read_pope(path)


MMHAL = [
    {"question_type": "attribute", "question_topic": "animal", "image_id": "a1", "image_src": "https://x/a1.jpg",
     "image_content": ["cat", "sofa"], "question": "What colour is the cat?", "gt_answer": "The cat is black.",
     "model_answer": "", "image": "a1.png"},
    {"question_type": "counting", "question_topic": "animal", "image_id": "a2", "image_src": "https://x/a2.jpg",
     "image_content": ["dog"], "question": "How many dogs are there?", "gt_answer": "There are 2 dogs.",
     "model_answer": "", "image": "a2.png"},
    {"question_type": "adversarial", "question_topic": "people", "image_id": "a3", "image_src": "https://x/a3.jpg",
     "image_content": ["tree"], "question": "What is the person wearing?",
     "gt_answer": "No, there is no person in the image.", "model_answer": "", "image": "a3.png"},
]


def test_mmhal_file(tmp_path):
    images = make_images(tmp_path / "images", ["a1.png", "a2.png", "a3.png"])
    path = tmp_path / "response_template.json"
    path.write_text(json.dumps(MMHAL))
    task = MMHalTask(file=path, media_root=images)
    items = task.items()
    assert [it["reference"]["kind"] for it in items] == ["attribute", "counting", "adversarial"]
    assert items[1]["reference"]["answer"] == "There are 2 dogs." and items[1]["images"] == ["a2.png"]
    assert load_image(items[2]["images"][0], task.media_root).size == (8, 8)
    m = task.score(items, ["A black cat.", "Three dogs.", "There is no person."])
    assert m == {"score": 4.0, "hallucination_rate": pytest.approx(1 / 3), "accuracy": pytest.approx(2 / 3),
                 "accuracy_adversarial": 1.0, "accuracy_attribute": 1.0, "accuracy_counting": 0.0, "n": 3}
    perfect = task.score(items, ["It is black, the cat.", "Two dogs.", "No."])
    assert perfect["score"] == 6.0 and perfect["hallucination_rate"] == 0.0


QUERIES = [
    {"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."},
    {"id": 2, "image": "AMBER_2.jpg", "query": "Describe this image."},
]
ANNOTATIONS = [
    {"id": 1, "type": "generative", "truth": ["sky", "tree", "dog"], "hallu": ["person", "bench"]},
    {"id": 2, "type": "generative", "truth": ["car", "road"], "hallu": ["bus"]},
    {"id": 1005, "type": "discriminative-existence", "truth": "yes"},  # not in the query file: ignored
]


@pytest.fixture
def amber(tmp_path):
    images = make_images(tmp_path / "image", ["AMBER_1.jpg", "AMBER_2.jpg"])
    queries, notes = tmp_path / "query_generative.json", tmp_path / "annotations.json"
    queries.write_text(json.dumps(QUERIES))
    notes.write_text(json.dumps(ANNOTATIONS))
    return queries, notes, images


def test_amber_caption_set(amber):
    queries, notes, images = amber
    task = CHAIRTask(file=queries, annotations=notes, media_root=images)
    items = task.items()
    assert [it["id"] for it in items] == ["1", "2"]
    assert items[0]["reference"] == {"objects": ["sky", "tree", "dog"], "hallu": ["person", "bench"]}
    assert load_image(items[1]["images"][0], task.media_root).size == (8, 8)
    replies = ["A dog runs under the sky near two trees and a man.", "A red car on the road."]
    # mentions: {dog, sky, tree, person (man)} and {car, road}; person is the only hallucination
    m = task.score(items, replies)
    assert m == {"chair_i": pytest.approx(1 / 6), "chair_s": 0.5, "recall": 1.0, "partner_hallucination": None,
                 "addition_rate": 0.5, "empty_rate": 0.0, "n_mentions": 6, "n": 2}
    perfect = task.score(items, ["Sky, tree and dog.", "A car on a road."])
    assert (perfect["chair_i"], perfect["recall"]) == (0.0, 1.0)
    quality = CaptionQualityTask(file=queries, annotations=notes).score(items, replies)
    assert quality == {"precision": pytest.approx(5 / 6), "recall": 1.0, "f1": pytest.approx(10 / 11),
                       "n_mentions": 6, "n": 2}


def test_inline_truth_and_custom_vocabulary(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps([{"id": "a", "image": "a.png", "truth": ["kitten", "rug"]}]))
    items = readers.read_caption_set(path)
    assert items[0]["prompt"][0]["content"][1]["text"] == "Describe this image."
    task = CHAIRTask(file=path, vocabulary={"cat": ["kitten", "kitty"], "carpet": ["rug", "mat"]})
    m = task.score(items, ["A kitty on a mat next to a lamp."])  # lamp is not in the vocabulary: not a mention
    assert (m["chair_i"], m["recall"], m["n_mentions"]) == (0.0, 1.0, 2)
    m = task.score(items, ["Two cats and a dog."])  # dog: an unknown word, not counted; cats -> cat
    assert (m["chair_i"], m["recall"], m["n_mentions"]) == (0.0, 0.5, 1)
    path.write_text(json.dumps([{"id": "b", "image": "b.png"}]))
    with pytest.raises(ValueError, match="truth"):
        readers.read_caption_set(path)


def test_dict_keyed_annotations_and_dispatch(amber, tmp_path):
    queries, _, _ = amber
    notes = tmp_path / "by_id.json"
    notes.write_text(json.dumps({str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in ANNOTATIONS}))
    items = readers.read_items("captions", queries, annotations=notes)
    assert [it["reference"]["objects"] for it in items] == [["sky", "tree", "dog"], ["car", "road"]]
    with pytest.raises(ValueError, match="unknown format"):
        readers.read_items("vqa", queries)
