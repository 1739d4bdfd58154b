"""Error bars: the bootstrap on hand-made replies with known intervals, paired differences, mean ± sd."""

from __future__ import annotations

import math

import pytest

from benchmarks.hallucination import CHAIRTask, POPERandomTask, pope_metrics
from benchmarks.stats import bootstrap_intervals, mean_sd, paired_difference
from benchmarks.task import Task


def _pope_items(labels):
    return [{"id": str(i), "reference": {"label": label}} for i, label in enumerate(labels)]


@pytest.fixture
def pope():
    return POPERandomTask.__new__(POPERandomTask)  # scoring needs no source


def test_bootstrap_of_a_proportion_matches_the_normal_interval(pope):
    # 400 items, 300 answered right: accuracy 0.75 with standard error sqrt(.75 * .25 / 400) = 0.02165
    labels = ["yes", "no"] * 200
    replies = [label if i % 4 else ("no" if label == "yes" else "yes") for i, label in enumerate(labels)]
    records = pope.judge(_pope_items(labels), replies)
    assert pope.aggregate(records)["accuracy"] == 0.75
    lo, hi = bootstrap_intervals(pope.aggregate, records, n_boot=2000, seed=1)["accuracy"]
    se = math.sqrt(0.75 * 0.25 / 400)
    assert lo == pytest.approx(0.75 - 1.96 * se, abs=0.006)
    assert hi == pytest.approx(0.75 + 1.96 * se, abs=0.006)


def test_bootstrap_of_a_constant_is_a_point_and_counts_get_none(pope):
    labels = ["yes", "no"] * 10
    records = pope.judge(_pope_items(labels), [f"{label.capitalize()}." for label in labels])
    intervals = bootstrap_intervals(pope.aggregate, records, n_boot=200)
    assert intervals["accuracy"] == [1.0, 1.0]
    assert "n" not in intervals and "unparseable" not in intervals  # counts get no interval
    assert "yes_ratio" in intervals  # a rate without direction still has a spread


def test_bootstrap_is_seeded_and_a_wider_sample_is_narrower(pope):
    labels = ["yes", "no"] * 50
    replies = ["Yes."] * 100
    records = pope.judge(_pope_items(labels), replies)
    a = bootstrap_intervals(pope.aggregate, records, n_boot=300, seed=3)
    assert a == bootstrap_intervals(pope.aggregate, records, n_boot=300, seed=3)
    wide = pope.judge(_pope_items(labels * 16), replies * 16)
    b = bootstrap_intervals(pope.aggregate, wide, n_boot=300, seed=3)
    assert b["accuracy"][1] - b["accuracy"][0] < (a["accuracy"][1] - a["accuracy"][0]) / 2


def test_judge_and_aggregate_reproduce_the_scores():
    labels = ["yes", "no", "yes", "no", "yes"]
    replies = ["Yes.", "Yes.", "maybe", "No.", "no"]
    task = POPERandomTask.__new__(POPERandomTask)
    assert task.score(_pope_items(labels), replies) == pope_metrics(labels, replies)


def _caption_items(n):
    return [{"id": str(i), "reference": {"objects": ["circle", "star"], "trigger_absent": ["square"]}} for i in range(n)]


def test_paired_difference_sees_a_change_the_marginal_intervals_hide():
    chair = CHAIRTask.__new__(CHAIRTask)
    from benchmarks.hallucination import SHAPES_VOCABULARY

    chair.vocabulary = SHAPES_VOCABULARY
    items = _caption_items(200)
    # A names the absent square on 60 % of the images; B on the same images minus 10 fixed ones
    a_replies = ["The circle. The square. The star." if i % 5 < 3 else "The circle. The star." for i in range(200)]
    b_replies = ["The circle. The star." if i < 50 and i % 5 == 0 else r for i, r in enumerate(a_replies)]
    a, b = chair.judge(items, a_replies), chair.judge(items, b_replies)
    ma, mb = chair.aggregate(a), chair.aggregate(b)
    assert ma["partner_hallucination"] == 0.6 and mb["partner_hallucination"] == 0.55
    ia = bootstrap_intervals(chair.aggregate, a, n_boot=500)["partner_hallucination"]
    ib = bootstrap_intervals(chair.aggregate, b, n_boot=500)["partner_hallucination"]
    assert ia[0] <= ib[1] and ib[0] <= ia[1]  # the marginal intervals overlap …
    diff = paired_difference(chair.aggregate, a, b, "partner_hallucination", n_boot=500)
    assert diff["diff"] == pytest.approx(-0.05)
    assert diff["excludes_zero"] and diff["interval"][1] < 0  # … the paired one does not
    same = paired_difference(chair.aggregate, a, a, "chair_i", n_boot=100)
    assert same["diff"] == 0 and same["interval"] == [0.0, 0.0] and not same["excludes_zero"]
    with pytest.raises(ValueError, match="same items"):
        paired_difference(chair.aggregate, a, a[:-1], "chair_i")


def test_mean_sd():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_sd([0.5]) == (0.5, 0.0)
    assert mean_sd([None, 0.25]) == (0.25, 0.0)
    assert mean_sd([]) == (None, None)


class ScoreOnly(Task):
    name = "score-only"

    def items(self, limit=None):
        return []

    def score(self, items, replies):
        return {"accuracy": sum(r == "a" for r in replies) / len(replies), "n": len(replies)}


def test_a_task_with_only_score_is_bootstrapped_through_it():
    task = ScoreOnly()
    records = task.judge([{}] * 4, ["a", "a", "b", "b"])
    assert task.aggregate(records) == {"accuracy": 0.5, "n": 4}
    lo, hi = bootstrap_intervals(task.aggregate, records, n_boot=200)["accuracy"]
    assert 0 <= lo < 0.5 < hi <= 1


def test_a_task_without_a_scorer_says_so():
    class Nothing(Task):
        def items(self, limit=None):
            return []

    with pytest.raises(NotImplementedError, match="neither score nor judge"):
        Nothing().score([{}], ["x"])


def test_records_of_one_item_are_resampled_together(pope):
    """Three seeds scoring the same 400 items are 400 draws, not 1,200: grouped by item, the interval of three
    identical copies is the interval of one copy (the same resamples), where resampling the records would make
    it about √3 narrower. Paired differences group the same way."""
    labels = ["yes", "no"] * 200
    replies = [label if i % 4 else ("no" if label == "yes" else "yes") for i, label in enumerate(labels)]
    one = pope.judge(_pope_items(labels), replies)
    three = one * 3  # seed 0's records, then seed 1's, then seed 2's
    ids = [str(i) for i in range(400)] * 3
    single = bootstrap_intervals(pope.aggregate, one, n_boot=500, seed=2)["accuracy"]
    grouped = bootstrap_intervals(pope.aggregate, three, n_boot=500, seed=2, groups=ids)["accuracy"]
    naive = bootstrap_intervals(pope.aggregate, three, n_boot=500, seed=2)["accuracy"]
    assert grouped == pytest.approx(single)
    assert (naive[1] - naive[0]) < 0.75 * (grouped[1] - grouped[0])
    better = pope.judge(_pope_items(labels), labels)  # a model right everywhere
    paired_one = paired_difference(pope.aggregate, one, better, "accuracy", n_boot=500, seed=2)
    paired_three = paired_difference(pope.aggregate, three, better * 3, "accuracy", n_boot=500, seed=2, groups=ids)
    assert paired_three["diff"] == pytest.approx(0.25) and paired_three["interval"] == pytest.approx(paired_one["interval"])
    with pytest.raises(ValueError, match="groups must label every record: 3 labels for 1200"):
        bootstrap_intervals(pope.aggregate, three, groups=ids[:3])
