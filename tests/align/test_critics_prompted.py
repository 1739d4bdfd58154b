"""The prompted / trained critic (zoo/align/critics/prompted.py) and the critic's data format (zoo/data/critique.py)."""

from __future__ import annotations

import pytest

from zoo.align.critics import CRITICS
from zoo.align.critics.prompted import PromptedCritic
from zoo.data.critique import CRITIC_TEMPLATE, critic_row, critique
from zoo.data.formats import convert
from zoo.data.schema import DataError

ROW = {"id": "pairs-00001-pair0", "image_id": "pairs-00001", "images": ["images/pairs/00001.png"],
       "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]}


def test_the_critic_question_is_the_papers():
    row = critic_row(ROW, " The star is red. ")
    assert row["images"] == ROW["images"]
    (message,) = row["prompt"]
    assert message["content"][0] == {"type": "image"}
    assert message["content"][1]["text"] == ("##Prompt: Describe the image. ##Response: The star is red. "
                                             "Your critique and refinement:")
    assert CRITIC_TEMPLATE.endswith("Your critique and refinement:")


def test_the_critique_format_makes_sft_rows_and_holds_out_images():
    rows = [{**ROW, "id": f"x{i}", "image_id": f"img{i}", "response": "The star is red.",
             "critique": "There is no star: remove it."} for i in range(60)]
    train, heldout, every = (convert(rows, f) for f in ("critique", "critique_heldout", "critique_all"))
    assert len(every) == 60 and len(train) + len(heldout) == 60 and 0 < len(heldout) < 20
    assert {r["meta"]["example"] for r in train}.isdisjoint({r["meta"]["example"] for r in heldout})
    assert every[0]["completion"] == "There is no star: remove it."
    assert every[0]["prompt"] == critic_row(ROW, "The star is red.")["prompt"]
    with pytest.raises(DataError, match="example 3.*critique"):
        critique({**rows[0], "critique": None}, 3, part="all")
    with pytest.raises(DataError, match="example 4.*response"):
        critique({**rows[0], "response": "  "}, 4, part="all")


def test_prompted_critic_writes_one_critique_per_response_whatever_the_batch(tiny_policy, tiny_world):
    from zoo.data.formats import read_rows

    rows = read_rows(tiny_world, "pairs")[:3]
    responses = ["The circle is red.", "The star is blue and at the top left.", "The cross."]
    one = PromptedCritic(policy=tiny_policy, source=str(tiny_world), batch_size=1, max_new_tokens=5)
    many = PromptedCritic(policy=tiny_policy, source=str(tiny_world), batch_size=8, max_new_tokens=5)
    texts = one(rows, responses)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert many(rows, responses) == texts
    with pytest.raises(ValueError, match="2 responses but 3 references"):
        one(rows, responses[:2])


def test_prompted_and_trained_are_one_class_and_bad_settings_are_refused():
    assert CRITICS.get("trained") is CRITICS.get("prompted") is PromptedCritic
    with pytest.raises(ValueError, match="path"):
        PromptedCritic()
    with pytest.raises(ValueError, match="batch_size"):
        PromptedCritic(path="x", batch_size=0)


def test_the_refine_format_teaches_the_refine_turn():
    from zoo.data.critique import REFINE_INSTRUCTION, refine, refine_row

    row = {**ROW, "response": "The star is red. The circle is blue.", "critique": "There is no star: remove it.",
           "refinement": "The circle is blue."}
    (made,) = convert([row], "refine_all")
    assert made["completion"] == "The circle is blue."
    assert made["prompt"] == refine_row(ROW, row["response"], row["critique"])["prompt"]
    assert made["prompt"][-1]["content"][0]["text"].endswith(REFINE_INSTRUCTION)
    with pytest.raises(DataError, match="example 7.*refinement"):
        refine({**row, "refinement": None}, 7, part="all")
