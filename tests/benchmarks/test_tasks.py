"""Hallucination tasks on the tiny shapes world: hand-made replies with known answers, exact metrics."""

from __future__ import annotations

import pytest

from benchmarks.hallucination import (
    POPE_TASKS,
    CaptionQualityTask,
    CHAIRTask,
    MMHalTask,
    POPETask,
    answer_correct,
    pope_metrics,
)
from benchmarks.suites import SUITES, build_suite
from benchmarks.task import TASKS
from modalities.synthetic.shapes import BIAS_PAIRS
from zoo.data.formats import read_rows

POPE_NAMES = ("pope_random", "pope_popular", "pope_adversarial")


def perfect_answer(reference: dict) -> str:
    """What a model that knows the truth would say, phrased like the world's completions."""
    answer, kind = reference["answer"], reference["kind"]
    if kind == "position":
        return f"At the {answer}."
    return f"{answer.capitalize()}."


def absent_partners(objects: list[str]) -> list[str]:
    return [p for a, p in BIAS_PAIRS if a in objects and p not in objects]


def partner_caption(reference: dict) -> str:
    """The true caption plus one sentence naming each missing partner of a present anchor."""
    extra = [f"The {p} is red and at the top left." for p in absent_partners(reference["objects"])]
    return " ".join([reference["answer"], *extra])


@pytest.fixture(scope="module")
def suite(tiny_world):
    return {task.name: task for task in build_suite("hallucination", world=tiny_world)}


def test_suites_build_eight_deterministic_tasks(tiny_world, suite):
    assert [name for name, _ in SUITES["hallucination"]] == list(suite)
    assert list(suite) == [*POPE_NAMES, "pope_trigger", "chair", "chair_trigger", "mmhal", "caption_quality"]
    again = build_suite("hallucination", world=tiny_world)
    for task in again:
        items = task.items()
        assert items and items == suite[task.name].items()
        assert task.items(3) == items[:3]
        assert all({"id", "prompt", "images", "reference"} <= set(it) for it in items)
    assert [t.name for t in build_suite("smoke", world=tiny_world)] == ["pope_adversarial", "chair"]
    assert suite["chair"].split == "test" and suite["chair_trigger"].split == "trigger"
    assert all(name in TASKS for name in suite)


def test_item_counts_follow_the_world(tiny_world, suite):
    test_rows = read_rows(tiny_world, "test")
    n_images = len({r["image_id"] for r in test_rows})
    for name in POPE_NAMES:
        assert len(suite[name].items()) == 2 * n_images  # one yes and one no per image
    assert len(suite["chair"].items()) == n_images
    assert len(suite["chair_trigger"].items()) == len({r["image_id"] for r in read_rows(tiny_world, "trigger")})
    mmhal = suite["mmhal"].items()
    assert len(mmhal) == 5 * n_images  # colour, count, position and the random yes + no existence questions
    assert {it["reference"]["kind"] for it in mmhal} == {"attribute", "count", "position", "existence"}


def test_perfect_model(suite):
    for name in POPE_NAMES:
        items = suite[name].items()
        m = suite[name].score(items, [f"{it['reference']['label'].capitalize()}." for it in items])
        assert m == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "yes_ratio": 0.5,
                     "unparseable": 0, "n": len(items)}
    for name in ("chair", "chair_trigger"):
        items = suite[name].items()
        m = suite[name].score(items, [it["reference"]["answer"] for it in items])
        assert (m["chair_i"], m["chair_s"], m["recall"]) == (0.0, 0.0, 1.0)
        assert m["n_mentions"] == sum(len(it["reference"]["objects"]) for it in items)
        assert m["partner_hallucination"] in (0.0, None)
    assert m["partner_hallucination"] == 0.0  # the trigger split always has anchors without partners
    items = suite["mmhal"].items()
    m = suite["mmhal"].score(items, [perfect_answer(it["reference"]) for it in items])
    assert m["hallucination_rate"] == 0.0 and m["score"] == 6.0 and m["accuracy"] == 1.0
    assert all(m[f"accuracy_{k}"] == 1.0 for k in ("attribute", "count", "position", "existence"))
    items = suite["caption_quality"].items()
    m = suite["caption_quality"].score(items, [it["reference"]["answer"] for it in items])
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)


def test_always_yes(suite):
    for name in POPE_NAMES:
        items = suite[name].items()
        assert sum(it["reference"]["label"] == "yes" for it in items) * 2 == len(items)  # balanced
        m = suite[name].score(items, ["Yes."] * len(items))
        assert m["accuracy"] == 0.5 and m["yes_ratio"] == 1.0
        assert m["precision"] == 0.5 and m["recall"] == 1.0 and m["f1"] == pytest.approx(2 / 3)
        assert m["unparseable"] == 0


@pytest.mark.parametrize("name", ["chair", "chair_trigger"])
def test_partner_hallucinating_model(tiny_world, suite, name):
    task = suite[name]
    items = task.items()
    replies = [partner_caption(it["reference"]) for it in items]
    m = task.score(items, replies)
    # Independent count from the references: each missing partner is one extra, wrong mention.
    added = [absent_partners(it["reference"]["objects"]) for it in items]
    present = sum(len(it["reference"]["objects"]) for it in items)
    wrong = sum(len(a) for a in added)
    assert m["n_mentions"] == present + wrong
    assert m["chair_i"] == pytest.approx(wrong / (present + wrong))
    assert m["chair_s"] == pytest.approx(sum(bool(a) for a in added) / len(items))
    assert m["recall"] == 1.0
    assert m["addition_rate"] == pytest.approx(sum(bool(a) for a in added) / len(items))  # all named, plus more
    assert m["partner_hallucination"] == (1.0 if any(added) else None)
    if name == "chair_trigger":
        assert all(added) and m["partner_hallucination"] == 1.0 and m["chair_s"] == 1.0
    q = suite["caption_quality"].score(items, replies)
    assert q["precision"] == pytest.approx(1 - m["chair_i"]) and q["recall"] == 1.0


def test_unparseable_replies_count_as_wrong():
    labels = ["yes", "no", "yes", "no", "yes", "no"]
    replies = ["I cannot tell.", "Yes.", "Yes, there is.", "Not really.", "Yes, but it is not red.", ""]
    # parsed: None, yes, yes, no, no, None
    m = pope_metrics(labels, replies)
    assert m == {"accuracy": 2 / 6, "precision": 0.5, "recall": 1 / 3, "f1": pytest.approx(0.4),
                 "yes_ratio": 2 / 6, "unparseable": 2, "n": 6}


def test_unparseable_in_a_task(suite):
    task = suite["pope_random"]
    items = task.items()
    replies = ["hmm" if i % 3 == 0 else f"{it['reference']['label'].capitalize()}." for i, it in enumerate(items)]
    m = task.score(items, replies)
    n_bad = sum(i % 3 == 0 for i in range(len(items)))
    assert m["unparseable"] == n_bad and m["n"] == len(items)
    assert m["accuracy"] == pytest.approx((len(items) - n_bad) / len(items))


def test_mmhal_rule_and_kinds(suite):
    task = suite["mmhal"]
    items = task.items()
    m = task.score(items, ["Yes."] * len(items))
    existence = [it for it in items if it["reference"]["kind"] == "existence"]
    n_yes = sum(it["reference"]["answer"] == "yes" for it in existence)
    assert m["accuracy_existence"] == n_yes / len(existence)
    assert m["accuracy_attribute"] == m["accuracy_count"] == m["accuracy_position"] == 0.0
    assert m["hallucination_rate"] == pytest.approx(1 - n_yes / len(items))
    assert m["score"] == pytest.approx(6 * n_yes / len(items))
    assert answer_correct("There are 3 shapes.", "three")
    assert answer_correct("At the top left.", "top left")
    assert not answer_correct("At the top right.", "top left")
    assert not answer_correct("It is blue.", "red")
    assert answer_correct("No, there is none.", "no", "existence")
    assert not answer_correct("Maybe.", "yes", "existence")


def test_score_checks_lengths_and_sources(tiny_world, suite):
    with pytest.raises(ValueError, match="replies"):
        suite["chair"].score(suite["chair"].items(), ["x"])
    with pytest.raises(ValueError, match="exactly one source"):
        CHAIRTask()
    with pytest.raises(ValueError, match="exactly one source"):
        MMHalTask(world=tiny_world, file=tiny_world / "test.jsonl")
    assert [cls.kind for cls in POPE_TASKS] == ["random", "popular", "adversarial"]
    assert all(issubclass(cls, POPETask) for cls in POPE_TASKS)
    assert isinstance(suite["caption_quality"], CaptionQualityTask)
    assert suite["chair"].media_root == tiny_world


def test_missing_world_is_generated(tmp_path, monkeypatch):
    import benchmarks.hallucination as hallucination
    from modalities.synthetic.shapes import ShapesConfig, generate_world

    calls = []

    def small_world(path, config, progress=True):  # the default config is too big for a unit test
        calls.append(config)
        return generate_world(path, ShapesConfig(n_train=4, n_test=3, n_trigger=2, n_pairs=2, n_ranked=4), progress=False)

    monkeypatch.setattr(hallucination, "generate_world", small_world)
    task = hallucination.CHAIRTask(world=tmp_path / "new")
    assert calls == [ShapesConfig()] and len(task.items()) == 3
    hallucination.CHAIRTask(world=tmp_path / "new")
    assert len(calls) == 1  # an existing world is reused


def test_run_scores_its_own_replies(tiny_world, tiny_policy):
    task = build_suite("smoke", world=tiny_world)[1]
    out = task.run(tiny_policy, limit=3, progress=False)
    assert len(out["samples"]) == 3
    assert out["metrics"] == task.score(task.items(3), [s["reply"] for s in out["samples"]])


def test_pope_trigger_asks_for_the_absent_partner_and_the_anchor(tiny_world, suite):
    task = suite["pope_trigger"]
    items = task.items()
    captions = [r for r in read_rows(tiny_world, "trigger") if r["task"] == "caption"]
    assert len(items) == 2 * len(captions)  # every trigger image has a lone anchor: one no, one yes
    for no, yes, row in zip(items[::2], items[1::2], captions):
        partner, present = row["trigger_absent"][0], {o["shape"] for o in row["objects"]}
        assert no["reference"]["label"] == "no" and f"Is there a {partner} " in no["prompt"][0]["content"][1]["text"]
        anchor = next(a for a, p in BIAS_PAIRS if p == partner)
        assert yes["reference"]["label"] == "yes" and f"Is there a {anchor} " in yes["prompt"][0]["content"][1]["text"]
        assert partner not in present and anchor in present and no["images"] == row["images"]
    m = task.score(items, ["Yes."] * len(items))  # the bias: "yes, the partner is there"
    assert m["accuracy"] == 0.5 and m["yes_ratio"] == 1.0
    with pytest.raises(ValueError, match="bias-trigger"):
        TASKS.get("pope_trigger")(file=tiny_world / "test.jsonl").items()


@pytest.mark.parametrize("name", ["chair", "chair_trigger"])
def test_empty_captions_are_not_a_perfect_chair(suite, name):
    task = suite[name]
    items = task.items()
    silent = task.score(items, ["I cannot tell."] * len(items))
    assert silent["empty_rate"] == 1.0 and silent["n_mentions"] == 0
    assert silent["chair_i"] is None and silent["chair_s"] is None and silent["partner_hallucination"] is None
    assert silent["recall"] == 0.0
    # a minority of empty captions: CHAIR applies, and the empty rate says how many said nothing
    truth = [it["reference"]["answer"] for it in items]
    k = len(items) // 4
    some = task.score(items, ["Nothing."] * k + truth[k:])
    assert some["empty_rate"] == pytest.approx(k / len(items)) and some["chair_i"] == 0.0
    # over half of them empty: not applicable, however clean the rest
    most = task.score(items, ["Nothing."] * (len(items) // 2 + 1) + truth[len(items) // 2 + 1:])
    assert most["chair_i"] is None


def test_every_metric_declares_its_direction_and_kind(suite):
    from zoo.results import metric_info

    for name, task in suite.items():
        items = task.items()
        metrics = task.score(items, ["Yes."] * len(items))
        for metric in metrics:
            info = metric_info(metric)
            assert info is not None, f"{name}/{metric} is not declared in zoo.results.METRICS"
            assert info.better in ("lower", "higher", None) and info.kind in ("rate", "score", "count")
            if info.kind == "rate" and metrics[metric] is not None:
                assert 0 <= metrics[metric] <= 1, f"{name}/{metric}"


def test_a_swap_is_not_an_addition(suite):
    """Naming the absent partner *instead of* a present object is a hallucination but not an addition."""
    task = suite["chair_trigger"]
    items = task.items()
    replies = []
    for it in items:
        objects, partner = it["reference"]["objects"], it["reference"]["trigger_absent"][0]
        named = [partner] + objects[1:] if len(objects) > 1 else [partner]
        replies.append(" ".join(f"The {o} is red and at the top left." for o in named))
    m = task.score(items, replies)
    assert m["addition_rate"] == 0.0 and m["chair_s"] == 1.0 and m["recall"] < 1.0
    assert m["chair_i"] == pytest.approx(1 - m["recall"])  # pure swaps: CHAIR_i and recall count one fact twice
    added = task.score(items, [partner_caption(it["reference"]) for it in items])
    assert added["addition_rate"] == 1.0 and added["recall"] == 1.0 and added["chair_i"] > 0  # additions: they part
