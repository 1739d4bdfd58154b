"""Online DPO and Mixed-DPO (zoo.align.pairs.online) and the judges (zoo.align.judges)."""

from __future__ import annotations

import pytest
import torch

from zoo.align.judges import JUDGES, VerifierJudge, WeightedJudge
from zoo.align.pairs.online import OnlineDPOPairs, select_pair, takes_online

OBJECTS = {"objects": [{"shape": "circle"}, {"shape": "star"}]}


def test_the_verifier_counts_hallucinated_and_omitted_objects():
    judge = VerifierJudge(omission_weight=0.5)
    texts = ["The circle is red. The star is blue.",  # exact
             "The circle is red. The square is blue. The star is green.",  # + square (the absent partner)
             "The ball is red.",  # a synonym of circle; the star omitted
             "Nothing here."]  # both omitted
    assert [judge.counts(t, OBJECTS) for t in texts] == [(0, 0), (1, 0), (0, 1), (0, 2)]
    assert judge(texts, [OBJECTS] * 4) == [0.0, -1.0, -0.5, -1.0]
    with pytest.raises(ValueError, match="example pairs\\[3\\] has no 'objects'"):
        judge(["x"], [{"example_index": "pairs[3]"}])
    with pytest.raises(ValueError, match="omission_weight"):
        VerifierJudge(omission_weight=-1)
    assert JUDGES.get("verifier") is VerifierJudge


def test_a_weighted_judge_sums_its_parts():
    strict, lenient = VerifierJudge(omission_weight=1.0), VerifierJudge(omission_weight=0.0)
    judge = WeightedJudge({"strict": (strict, 0.25), "lenient": lenient})
    texts = ["The ball is red.", "The square is red. The circle is red. The star is red."]
    assert judge(texts, [OBJECTS] * 2) == [0.25 * -1.0 + 0.0, 0.25 * -1.0 + -1.0]


def test_select_pair_best_worst_ties_and_the_eos_rule():
    assert select_pair([-1.0, 0.0, -2.0, 0.0], [True] * 4) == (1, 2)  # first of the tied best
    assert select_pair([-1.0, -1.0, -1.0], [True] * 3) is None  # all tied: nothing to learn
    # the best response never finished: dropped, or penalised below the others
    assert select_pair([0.0, -1.0, -2.0], [False, True, True], eos="drop") == (1, 2)
    assert select_pair([0.0, -1.0, -2.0], [False, True, True], eos="penalize", eos_penalty=3.0) == (1, 0)
    assert select_pair([0.0, -1.0], [False, True], eos="drop") is None  # one candidate left
    with pytest.raises(ValueError, match="eos must be one of drop, penalize"):
        select_pair([0.0, 1.0], [True, True], eos="keep")


def test_the_mixed_dpo_draw_has_its_ratio_and_depends_on_example_and_step_only():
    draws = [takes_online(0, f"pairs[{i}]", step=5, mix=0.5) for i in range(4000)]
    share = sum(draws) / len(draws)
    assert abs(share - 0.5) < 4 * (0.25 / 4000) ** 0.5  # 4 sd of a Bernoulli(0.5) mean
    assert abs(sum(takes_online(0, f"pairs[{i}]", 5, 0.2) for i in range(4000)) / 4000 - 0.2) < 4 * (0.16 / 4000) ** 0.5
    assert draws == [takes_online(0, f"pairs[{i}]", 5, 0.5) for i in range(4000)]  # no hidden state
    assert draws != [takes_online(0, f"pairs[{i}]", 6, 0.5) for i in range(4000)]  # a new draw every step
    assert all(takes_online(0, i, 1, 1.0) for i in range(50)) and not any(takes_online(0, i, 1, 0.0) for i in range(50))


def test_online_source_refuses_bad_settings():
    judge = VerifierJudge()
    for kwargs, message in [({"k": 1}, "k \\(responses per prompt\\)"), ({"mix": 1.5}, "mix"),
                            ({"eos": "keep"}, "eos must be"), ({"judge": 3}, "judge must be")]:
        with pytest.raises(ValueError, match=message):
            OnlineDPOPairs(**{"judge": judge, "source": "x", **kwargs})


def test_online_and_mixed_dpo_train_from_the_cli(tmp_path):
    from tests.train.test_sft import tiny_overrides
    from zoo.train.run import compose_config, train

    small = ["module.pairs.k=3", "module.pairs.max_new_tokens=6", "data.batch_size=4"]
    metrics = train(compose_config(["recipe=online_dpo", *tiny_overrides(tmp_path, steps=2), *small]))
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    for key in ("train/online/share", "train/online/ties", "train/online/no_eos"):
        assert key in metrics and 0 <= metrics[key] <= 1, key
    cfg = compose_config(["recipe=mixed_dpo", *tiny_overrides(tmp_path / "mixed", steps=2), *small])
    assert cfg.module.pairs.mix == 0.5 and cfg.module.reference._target_ == "zoo.align.reference.FrozenReference"
    assert train(cfg)["global_step"] == 2


def test_the_online_pair_is_best_vs_worst_and_a_tie_keeps_the_datasets_pair(tiny_policy, tiny_world, monkeypatch):
    """Group construction inside a training step, with the policy's K samples scripted."""
    from zoo.data.batches import ExampleBatch
    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows
    from zoo.models.policy import Generation

    from modalities.synthetic.shapes import SHAPES

    rows = read_rows(tiny_world, "pairs")[:2]
    encoder = ExampleEncoder(tiny_policy.processor, max_length=128, media_root=tiny_world)
    groups = [encoder.encode_group(r, f"pairs[{i}]") for i, r in enumerate(rows)]
    eos = tiny_policy.tokenizer.eos_token_id
    present = [o["shape"] for o in rows[0]["objects"]]
    absent = next(s for s in SHAPES if s not in present)
    exact = " ".join(f"The {s} is red." for s in present)
    texts = [f"{exact} The {absent} is red.", exact, exact + " The " + absent + " is blue, the other " + absent + "."]
    texts += ["The x."] * 3  # prompt 1: three equal scores, a tie
    ids = [[10 + r, 20 + r, eos] for r in range(6)]
    ids[2] = [12, 22]  # cut off by the length limit: no EOS (worst by score, but dropped)
    finished = [True, True, False, True, True, True]
    monkeypatch.setattr(type(tiny_policy), "generate_group",
                        lambda self, batch, k, **kw: Generation(ids, texts, finished), raising=True)
    source = OnlineDPOPairs(VerifierJudge(), source=str(tiny_world), split="pairs", k=3)
    batch = source(tiny_policy, ExampleBatch(groups), step=0)
    responses, B = batch.responses, 2

    def slot(k, b):
        row = k * B + b
        return responses.input_ids[row][responses.attention_mask[row].bool()].tolist()

    assert slot(0, 0) == ids[1] and slot(1, 0) == ids[0]  # best: the exact caption; worst: + an absent object
    assert slot(0, 1) == groups[1].chosen.tolist() and slot(1, 1) == groups[1].rejected.tolist()  # tie: the data's
    assert source.metrics["online/ties"] == 0.5 and source.metrics["online/share"] == 0.5
    assert source.metrics["online/no_eos"] == pytest.approx(1 / 6)
    assert source.metrics["online/score_best"] == 0.0 and source.metrics["online/score_worst"] == -1.0
