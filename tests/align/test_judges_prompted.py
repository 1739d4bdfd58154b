"""The prompted pairwise judge: both orders, ties on disagreement, round-robin scores, one template shared with
the pairwise_judge data format, errors naming the example, and a real tiny model end to end."""

from __future__ import annotations

import re

import pytest
import torch

from zoo.align.judges import JUDGES
from zoo.align.judges.prompted import PromptedJudge, decide, round_robin
from zoo.align.pairs.online import select_pair
from zoo.data.formats import FORMATS, convert
from zoo.data.judging import (
    DEFAULT_JUDGE_QUESTION,
    check_question,
    held_out,
    judge_row,
    pairwise_judge,
)
from zoo.data.schema import DataError, validate_row

ROW = {
    "id": "pairs-00007-pair0",
    "image_id": "pairs-00007",
    "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}],
    "images": ["images/pairs/00007.png"],
    "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "The square is red."}]}],
    "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "The square is red. The circle is blue."}]}],
}


def answers(question_row) -> tuple[str, str]:
    """The two responses a judge row asks about (as the default template writes them)."""
    text = question_row["prompt"][0]["content"][-1]["text"]
    return re.search(r"\nA: (.*)\nB: ", text).group(1), re.search(r"\nB: (.*)\nAnswer", text).group(1)


class StubJudge(PromptedJudge):
    """A judge whose model we control: ``prefer(a, b)`` is its log p(A) − log p(B) for a question with a as A."""

    def __init__(self, prefer, **kwargs):
        super().__init__(policy=object(), **kwargs)
        self.prefer, self.asked = prefer, []

    def margins(self, questions):
        self.asked += list(questions)
        return [float(self.prefer(*answers(q))) for q in questions]


def by_quality(a: str, b: str) -> float:  # prefers the response with the larger number in it
    return int(re.search(r"\d+", a).group()) - int(re.search(r"\d+", b).group())


def always_a(a: str, b: str) -> float:  # position bias: answers A whatever the responses
    return 2.0


def test_a_pair_is_decided_only_when_both_orders_agree():
    judge = StubJudge(by_quality)
    assert judge.compare("reply 9", "reply 1", ROW) == 1
    assert judge.compare("reply 1", "reply 9", ROW) == -1
    # both orders were asked: (a, b) then (b, a)
    assert [answers(q) for q in judge.asked[-2:]] == [("reply 1", "reply 9"), ("reply 9", "reply 1")]
    biased = StubJudge(always_a)
    assert biased.compare("reply 9", "reply 1", ROW) == 0
    assert biased.compare("reply 1", "reply 9", ROW) == 0
    assert biased.metrics["judge/ties"] == 1 and biased.metrics["judge/decided"] == 0
    assert biased.metrics["judge/tie_rate"] == 1.0
    # the rule itself: the second order's margin counts for b
    assert decide(1.0, -0.5) == 1 and decide(-1.0, 0.5) == -1
    assert decide(1.0, 1.0) == 0 and decide(-1.0, -1.0) == 0 and decide(0.0, -1.0) == 0


def test_compare_many_counts_ties_and_decided_pairs_and_skips_identical_texts():
    judge = StubJudge(lambda a, b: 0.0 if "7" in a + b else by_quality(a, b))
    verdicts = judge.compare_many([("r 2", "r 1", ROW), ("r 7", "r 1", ROW), ("r 3", "r 3", ROW), ("r 1", "r 4", ROW)])
    assert verdicts == [1, 0, 0, -1]
    assert len(judge.asked) == 6  # the identical pair is a tie without a question
    assert judge.metrics == {"judge/pairs": 3.0, "judge/decided": 2.0, "judge/ties": 1.0, "judge/identical": 1.0,
                             "judge/tie_rate": pytest.approx(1 / 3)}
    judge.compare("r 5", "r 1", ROW)
    assert judge.totals["decided"] == 3 and judge.totals["ties"] == 1


def test_round_robin_scores_are_wins_minus_losses_within_each_group():
    judge = StubJudge(by_quality)
    other = {**ROW, "id": "another prompt"}
    texts = ["r 3", "r 1", "r 2", "r 1", "r 5", "r 4"]
    scores = judge(texts, [ROW] * 4 + [other] * 2)
    # group 1: r3 beats all three; r2 beats both r1; each r1 loses to r3 and r2 and ties with its twin
    assert scores == [3.0, -2.0, 1.0, -2.0, 1.0, -1.0]
    assert judge.metrics["judge/pairs"] == 4  # distinct pairs: 3 in group 1, 1 in group 2, each asked twice
    assert len(judge.asked) == 8
    # online DPO's rule applies unchanged: best vs worst, the first of equals
    assert select_pair(scores[:4], [True] * 4) == (0, 1)
    # a position-biased judge ties everything: online DPO falls back to the dataset's pair
    flat = StubJudge(always_a)(texts[:4], [ROW] * 4)
    assert flat == [0.0] * 4 and select_pair(flat, [True] * 4) is None
    assert round_robin(["x", " x", "y"], {("x", "y"): 1, (" x", "y"): 1}) == [1.0, 1.0, -2.0]


def test_the_format_and_the_judge_ask_the_same_question():
    rows = pairwise_judge(ROW, 0)
    judge = StubJudge(lambda a, b: 1.0)
    judge.compare_many([("The square is red.", "The square is red. The circle is blue.", ROW)])
    assert [q["prompt"] for q in judge.asked] == [r["prompt"] for r in rows]
    assert all(q["images"] == r["images"] == ROW["images"] for q, r in zip(judge.asked, rows))
    assert judge.question == DEFAULT_JUDGE_QUESTION
    # a custom question reaches both sides alike
    custom = "Is A or B right? {prompt}\nA: {a}\nB: {b}\nAnswer A or B."
    asked = StubJudge(lambda a, b: 1.0, question=custom)
    asked.compare("one", "two", ROW)
    made = pairwise_judge({**ROW, "chosen": "one", "rejected": "two"}, 0, question=custom)
    assert [q["prompt"] for q in asked.asked] == [r["prompt"] for r in made]
    assert "Describe the image." in made[0]["prompt"][0]["content"][-1]["text"]
    with pytest.raises(ValueError, match=r"must name \{a\} and \{b\}"):
        check_question("Which is better? {a}")
    with pytest.raises(ValueError, match="must name"):
        PromptedJudge("some/model", question="{a} {b} {image}")


def test_the_format_turns_one_pair_into_two_rows_with_swapped_letters():
    first, second = pairwise_judge(ROW, 3)
    assert first["completion"] == "A" and second["completion"] == "B"
    assert answers(first) == ("The square is red.", "The square is red. The circle is blue.")
    assert answers(second) == ("The square is red. The circle is blue.", "The square is red.")
    assert first["prompt"][0]["content"][0] == {"type": "image"}
    for row in (first, second):
        validate_row(row, 3)  # an SFT row of the one schema
        assert "chosen" not in row and "rejected" not in row
    # through convert (what data.format=pairwise_judge_all runs): two rows per record
    assert [r["completion"] for r in convert([ROW, {**ROW, "id": "x"}], "pairwise_judge_all")] == ["A", "B", "A", "B"]
    assert "pairwise_judge" in FORMATS and "pairwise_judge_heldout" in FORMATS


def test_the_holdout_is_by_image_and_splits_the_rows_without_overlap():
    rows = [{**ROW, "id": f"p{i}-{j}", "image_id": f"img{i}"} for i in range(300) for j in range(2)]
    train = convert(rows, "pairwise_judge")
    heldout = convert(rows, "pairwise_judge_heldout")
    assert len(train) + len(heldout) == 2 * len(rows)
    assert 0 < len(heldout) < len(train)
    held_images = {r["image_id"] for r in rows if held_out(r)}
    assert {r["meta"]["example"].split("-")[0] for r in heldout} == {i.replace("img", "p") for i in held_images}
    # both pairs of an image fall on the same side
    assert all(held_out(rows[2 * i]) == held_out(rows[2 * i + 1]) for i in range(300))
    # no image_id: the image paths decide
    assert held_out({"images": ["a.png"]}) == held_out({"images": ["a.png"], "id": "other"})


def test_a_row_without_what_the_judge_needs_is_a_one_line_error_naming_example_and_field():
    judge = StubJudge(by_quality)
    with pytest.raises(DataError) as e:
        judge.compare("r 1", "r 2", {"id": "pairs-00042", "images": ["x.png"]})
    assert str(e.value).startswith("example pairs-00042, field 'prompt':") and "\n" not in str(e.value)
    with pytest.raises(DataError) as e:
        judge_row({"example_index": "pairs[3]", "prompt": "Describe"}, "a", "b")
    assert "example pairs[3], field 'prompt'" in str(e.value)
    with pytest.raises(DataError) as e:
        pairwise_judge({k: v for k, v in ROW.items() if k != "rejected"}, 5, part="all")
    assert str(e.value).startswith("example 5, field 'rejected': missing") and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="path"):
        PromptedJudge()


def test_the_judge_runs_end_to_end_on_a_saved_tiny_model(tiny_policy, tiny_world, tmp_path):
    from zoo.data.collate import ExampleEncoder, pad_batch
    from zoo.data.formats import read_rows
    from zoo.data.schema import response_text

    folder = tmp_path / "judge"
    tiny_policy.backbone.save_pretrained(folder)
    judge = JUDGES.get("prompted")(str(folder), source=str(tiny_world), device="cpu", batch_size=3)
    rows = read_rows(tiny_world, "pairs")[:4]
    items = [(response_text(r["chosen"]), response_text(r["rejected"]), r) for r in rows]
    verdicts = judge.compare_many(items)
    assert len(verdicts) == 4 and set(verdicts) <= {-1, 0, 1}
    assert judge.metrics["judge/pairs"] == 4 and judge.metrics["judge/decided"] + judge.metrics["judge/ties"] == 4
    assert not any(p.requires_grad for p in judge.policy.parameters()) and not judge.policy.training

    # the margins are log p(A) − log p(B) of the token after the assistant turn starts: checked against the full
    # logits of one unpadded question at a time (what the batched, left-padded shared-prefix pass must equal)
    questions = [judge_row(r, a, b) for a, b, r in items[:2]] + [judge_row(r, b, a) for a, b, r in items[:2]]
    got = judge.margins(questions)
    encoder = ExampleEncoder(judge.policy.processor, media_root=tiny_world)
    a_id, b_id = judge.letter_ids
    tok = judge.policy.tokenizer
    assert [tok.decode([a_id]), tok.decode([b_id])] == ["A", "B"]
    for q, margin in zip(questions, got):
        batch = pad_batch([encoder.encode(q, 0, None)], tok.pad_token_id)
        with torch.no_grad():
            last = judge.policy.logits(batch)[0, -1].float().log_softmax(-1)
        assert margin == pytest.approx(float(last[a_id] - last[b_id]), abs=1e-4)
    assert [decide(got[i], got[i + 2]) for i in range(2)] == verdicts[:2]

    # the letter a pairwise_judge row trains is the token the judge reads
    sft = encoder.encode(pairwise_judge(rows[0], 0, part="all")[1], 0, "completion")
    assert int(sft.input_ids[sft.prompt_length]) == b_id

    # the pointwise interface on K = 3 responses to one prompt: round-robin scores, antisymmetric
    texts = [items[0][0], items[0][1], "The square is red."]
    scores = judge(texts, [rows[0]] * 3)
    assert len(scores) == 3 and sum(scores) == 0 and all(abs(s) <= 2 for s in scores)

    # the agreement command (python -m zoo.align.judges) counts every pair once
    from zoo.align.judges.__main__ import main

    counts = main([str(folder), str(tiny_world), "--part", "all", "--limit", "3", "--device", "cpu"])
    assert sum(counts.values()) == 3 and set(counts) <= {"correct", "tie", "wrong"}


def test_a_judge_trains_with_sft_on_the_format_and_judges_online_dpo_from_the_cli(tmp_path):
    """SFT on data.format=pairwise_judge, then online DPO with pairs=online_dpo_prompted judged by that model."""
    from tests.train.test_sft import tiny_overrides
    from zoo.train.run import compose_config, train

    room = ["model.text_config.max_position_embeddings=512", "data.max_length=480"]  # the question holds 2 captions
    judge = train(compose_config(["recipe=sft", *tiny_overrides(tmp_path / "judge", steps=2), *room,
                                  "data.train_split=pairs", "data.format=pairwise_judge", "data.val_split=null"]))
    assert judge["global_step"] == 2 and judge["data"]["pairs"]["reasons"]  # the held-out images, counted
    folder = tmp_path / "judge" / "run" / "model"
    cfg = compose_config(["recipe=online_dpo", "pairs=online_dpo_prompted", f"module.pairs.judge.path={folder}",
                          "module.pairs.judge.device=cpu", *tiny_overrides(tmp_path / "online", steps=2),
                          "module.pairs.k=3", "module.pairs.max_new_tokens=6", "data.batch_size=4"])
    assert cfg.module.pairs.judge._target_ == "zoo.align.judges.prompted.PromptedJudge"
    metrics = train(cfg)
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert 0 <= metrics["train/online/ties"] <= 1
