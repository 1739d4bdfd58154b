"""The world's critic (zoo/align/critics/world.py): errors read off the truth, critiques that name them and say how
to fix them in varied but reproducible words, the quality measure, and the triples command."""

from __future__ import annotations

import json
import math

import pytest

from zoo.align.critics import CRITICS
from zoo.align.critics.world import (
    CONFIRMATIONS,
    PHRASES,
    WorldCritic,
    corrected,
    critique_quality,
    response_errors,
)

OBJECTS = [{"shape": "circle", "colour": "red", "position": "top left"},
           {"shape": "star", "colour": "blue", "position": "bottom right"},
           {"shape": "square", "colour": "green", "position": "top right"}]
ROW = {"id": "img-1", "objects": OBJECTS,
       "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]}


def kinds(text, row=ROW):
    return [(e["kind"], e.get("shape")) for e in response_errors(text, row)]


def test_errors_are_read_off_the_truth():
    exact = "The circle is red and at the top left. The star is blue and at the bottom right. " \
            "The square is green and at the top right."
    assert response_errors(exact, ROW) == []
    assert kinds("The circle is red. The square is green. The triangle is red.") == \
        [("hallucinated", "triangle"), ("missing", "star")]
    assert response_errors("A ball is blue and at the top left. The star is blue. A box.", ROW)[0] == \
        {"kind": "colour", "shape": "circle", "said": "blue", "true": "red"}  # synonyms: ball = circle, box = square
    errors = response_errors("The circle is red and at the bottom left; the star is blue. The square.", ROW)
    assert errors == [{"kind": "position", "shape": "circle", "said": "bottom left", "true": "top left"}]
    # a clause naming two shapes gets no attribute check (whose colour is it?)
    assert response_errors("The circle and the star are green. The square.", ROW) == []


def test_question_rows_are_checked_on_their_answer():
    row = {**ROW, "task": "count", "answer": "three"}
    assert response_errors("Three.", row) == [] and response_errors("There are 3.", row) == []
    assert response_errors("Two.", row) == [{"kind": "answer", "said": "two", "true": "three"}]
    existence = {**ROW, "task": "existence", "answer": "no"}
    assert response_errors("Yes.", existence) == [{"kind": "answer", "said": "yes", "true": "no"}]
    assert corrected("Yes.", existence) == "No." and corrected("x", {**ROW, "task": "position",
                                                                     "answer": "top left"}) == "At the top left."


def test_the_critique_names_each_error_and_its_fix():
    critic = WorldCritic(seed=0)
    text = "The circle is green and at the top left. The triangle is red and at the top right."
    (critique,) = critic([ROW], [text])
    assert "triangle" in critique and "circle" in critique and "red" in critique  # the true colour
    assert "star" in critique and "blue" in critique and "bottom right" in critique  # the missing one, described
    assert "square" in critique
    assert critique_quality([critique], [ROW], [text])["error_recall"] == 1.0


def test_phrasings_vary_over_rows_but_repeat_for_the_same_row():
    critic = WorldCritic(seed=0)
    text = "The circle is red and at the top left. The star is blue and at the bottom right. " \
           "The square is green and at the top right. The cross is red."
    rows = [{**ROW, "id": f"img-{i}"} for i in range(40)]
    critiques = critic(rows, [text] * 40)
    assert len({c for c in critiques}) >= 3
    hallucination_lines = {p.format(shape="cross") for p in PHRASES["hallucinated"]}
    assert len({line for c in critiques for line in hallucination_lines if line in c}) >= 3
    assert critic(rows, [text] * 40) == critiques  # deterministic
    assert WorldCritic(seed=1)(rows, [text] * 40) != critiques  # the seed varies the words


def test_an_accurate_response_is_confirmed_without_naming_a_shape():
    exact = corrected("anything", ROW)
    assert response_errors(exact, ROW) == []
    critiques = WorldCritic()([{**ROW, "id": str(i)} for i in range(10)], [exact] * 10)
    assert set(critiques) <= set(CONFIRMATIONS) and len(set(critiques)) >= 2


def test_critique_quality_against_the_truth():
    responses = ["The circle is red and at the top left. The star is blue and at the bottom right. "
                 "The square is green and at the top right.", "The circle is blue. The cross is red."]
    rows = [ROW, ROW]
    nothing = critique_quality(["Fine.", "Fine."], rows, responses)
    assert nothing["error_recall"] == 0.0 and nothing["clean_confirmed"] == 1.0 and nothing["errors"] == 4
    assert nothing["responses_with_errors"] == 1 and nothing["fully_named"] == 0.0
    own = critique_quality(WorldCritic()(rows, responses), rows, responses)
    assert own["error_recall"] == 1.0 and own["fully_named"] == 1.0 and own["false_mentions"] == 0.0
    # naming the circle without its true colour does not name the colour error; accusing the clean one is counted
    partial = critique_quality(["The triangle is wrong.", "The circle is wrong; remove the cross; add the star "
                                                          "and the square."], rows, responses)
    assert partial["error_recall"] == pytest.approx(3 / 4) and partial["clean_confirmed"] == 0.0
    assert partial["false_mentions"] == pytest.approx(1 / 2)  # the triangle, in the first critique
    empty = critique_quality([], [], [])
    assert empty["responses"] == 0 and math.isnan(empty["error_recall"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="example x7 has no 'objects'"):
        WorldCritic()([{"id": "x7"}], ["The circle."])
    with pytest.raises(ValueError, match="shapes world only"):
        WorldCritic(world="tones")
    assert CRITICS.get("world") is WorldCritic


def test_triples_train_a_critic_and_a_refiner(tiny_world, tmp_path):
    from zoo.align.critics.__main__ import evaluate_critic, heldout_triples, main
    from zoo.data.formats import convert, read_rows

    assert main(["triples", str(tiny_world), "--out", str(tmp_path / "c")]) == 0
    triples = read_rows(tmp_path / "c", "critiques")
    pairs = read_rows(tiny_world, "pairs")
    assert len(triples) == 2 * len(pairs)
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["triples"] == len(triples)
    for t in triples[:6]:
        assert t["critique"] == WorldCritic()([t], [t["response"]])[0]
        assert t["errors"] == response_errors(t["response"], t)
        assert response_errors(t["refinement"], t) == []  # the refinement fixes every error
    critic_rows, refine_rows = convert(triples, "critique_all"), convert(triples, "refine_all")
    assert [r["completion"] for r in critic_rows] == [t["critique"] for t in triples]
    assert [r["completion"] for r in refine_rows] == [t["refinement"] for t in triples]
    held = heldout_triples(tmp_path / "c")
    assert len(held) == len(convert(triples, "critique_heldout"))
    result = evaluate_critic(WorldCritic(), triples)
    assert result["error_recall"] == 1.0 and len(result["examples"]) == 5


def test_triples_of_other_splits_and_tasks(tiny_world):
    """Caption rows (completion) and ranked rows (every response) give triples too, on images LLF never prompts
    with; ``tasks`` keeps the caption rows of the train split."""
    from zoo.align.critics.__main__ import make_triples
    from zoo.data.formats import read_rows

    triples = make_triples(tiny_world, ["ranked", "train"], tasks=["caption", "caption_ranked"], limit=3)
    ranked = read_rows(tiny_world, "ranked")[:3]
    assert len(triples) == sum(len(r["responses"]) for r in ranked) + 3
    assert [t["id"] for t in triples[:2]] == [f"{ranked[0]['id']}-r0", f"{ranked[0]['id']}-r1"]
    assert triples[0]["errors"] == [] and triples[1]["errors"]  # the ranked truth first, then a hallucination
    assert {t["task"] for t in triples} == {"caption_ranked", "caption"}
    assert all(t["image_id"].startswith(("ranked", "train")) for t in triples)


def test_the_constant_critic_is_the_control_of_a_critiques_content():
    from zoo.align.critics.constant import ConstantCritic

    critic = CRITICS.get("constant")()
    assert isinstance(critic, ConstantCritic) and critic([ROW, ROW], ["a", "b"]) == ["Please refine the response."] * 2
    assert ConstantCritic(" Again. ")([ROW], ["a"]) == ["Again."]
    with pytest.raises(ValueError, match="non-empty"):
        ConstantCritic("")
    with pytest.raises(ValueError, match="1 responses but 2 references"):
        critic([ROW, ROW], ["a"])
