"""Learning from language feedback (LLF): the critic's question and the refine turn, in one place.

What a critic model is asked at inference (`zoo.align.critics`), what the ``critique`` data format trains a
critic on (``recipe=critic_sft``) and what the policy is asked when it refines its answer — the same strings
everywhere, so a critic trained here is asked exactly what it learned. The shapes follow "Align Anything:
Training All-Modality Models to Follow Instructions with Language Feedback" (Ji et al., arXiv:2412.15838):

* the **critic row**: one user message with the data row's media placeholders (in order) and then
  ``##Prompt: {prompt} ##Response: {response} Your critique and refinement:``; the row's media columns are
  kept; its completion is the critique;
* the **refine row**: the data row's own prompt (media included), the policy's first answer as the
  assistant's turn, then a user turn with the critique and ``Now, please refine the response based on the
  critique and refinement suggestions.``; the policy's next assistant turn is the refinement.

The ``critique`` format turns rows that hold a ``response`` and its ``critique`` (the triples that
``python -m zoo.align.critics triples`` writes, or align-anything's LLF data converted by ``aa_llf``) into
critic SFT rows, holding out the images whose hash falls in the first ``holdout`` share (`held_out`, as the
pairwise judge's format does) so a trained critic's quality is measured on images it never saw. The ``refine``
format turns the same rows, when they also hold the ``refinement``, into refine-turn SFT rows (completion: the
refinement): what teaches a model that has never seen a refine turn to follow one (``recipe=refiner_sft``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.data.judging import held_out, media_columns, prompt_parts, row_index
from zoo.data.schema import DataError, response_text

CRITIC_TEMPLATE = "##Prompt: {prompt} ##Response: {response} Your critique and refinement:"
REFINE_INSTRUCTION = "Now, please refine the response based on the critique and refinement suggestions."
CRITIC_HOLDOUT = 0.1  # the share of images the critique format keeps out of training


def _text(value: Any, index: Any, field: str) -> str:
    if not isinstance(value, str):
        raise DataError(index, field, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(index, field, "empty")
    return value.strip()


def critic_row(reference: Mapping[str, Any], response: str, index: Any = None) -> dict:
    """The critic's question about ``response`` to the data row ``reference`` (module docstring)."""
    index = row_index(reference, index)
    placeholders, asked = prompt_parts(reference, index, who="the critic")
    text = CRITIC_TEMPLATE.format(prompt=asked, response=_text(response, index, "response"))
    return {"prompt": [{"role": "user", "content": [*placeholders, {"type": "text", "text": text}]}],
            **media_columns(reference)}


def refine_row(reference: Mapping[str, Any], response: str, critique: str, index: Any = None) -> dict:
    """The policy's refine turn: the row's prompt, its first answer ``response``, then the ``critique`` and the
    instruction; generation continues with the refined answer."""
    index = row_index(reference, index)
    prompt_parts(reference, index, who="the refine step")  # the same checks as the critic's
    turn = f"{_text(critique, index, 'critique')}\n{REFINE_INSTRUCTION}"
    messages = [*reference["prompt"],
                {"role": "assistant", "content": [{"type": "text", "text": _text(response, index, "response")}]},
                {"role": "user", "content": [{"type": "text", "text": turn}]}]
    return {"prompt": messages, **media_columns(reference)}


def _part(row: Any, index: Any, holdout: float, part: str, what: str) -> None:
    """Raise `SkipExample` for a row outside ``part`` (``train``: images outside the held-out share; ``heldout``:
    inside it; ``all``: every row); a row that is no record is a `DataError`."""
    from zoo.data.formats import SkipExample

    if part not in ("train", "heldout", "all"):
        raise ValueError(f"{what} format: part must be train, heldout or all, not {part!r}")
    if not isinstance(row, dict):
        raise DataError(index, "", f"expected a record (dict), got {type(row).__name__}")
    if part != "all" and held_out(row, holdout) != (part == "heldout"):
        raise SkipExample(f"held out for {what} evaluation (by image)" if part == "train" else "a training image")


def _fields(row: dict, index: Any, fields: tuple[str, ...], what: str) -> list[str]:
    for field in fields:
        if row.get(field) is None:
            raise DataError(index, field, f"missing: the {what} format needs {', '.join(fields)}")
    return [_text(response_text(row[f], index, f), index, f) for f in fields]


def critique(row: dict, index: Any = None, holdout: float = CRITIC_HOLDOUT, part: str = "train") -> dict:
    """A row with ``prompt``, media, ``response`` and ``critique`` as one critic SFT row (completion: the
    critique). ``part``: ``train`` keeps the images outside the held-out share, ``heldout`` those inside it,
    ``all`` every row; the others raise `SkipExample` (counted by `convert`)."""
    _part(row, index, holdout, part, "critique")
    response, text = _fields(row, index, ("response", "critique"), "critique")
    return {**critic_row(row, response, index), "completion": text,
            "meta": {"source": "critique", "example": row.get("id", index)}}


def refine(row: dict, index: Any = None, holdout: float = CRITIC_HOLDOUT, part: str = "train") -> dict:
    """A row with ``prompt``, media, ``response``, ``critique`` and ``refinement`` as one refine-turn SFT row
    (`refine_row`; completion: the refinement); ``part`` as in `critique`."""
    _part(row, index, holdout, part, "refine")
    response, text, refinement = _fields(row, index, ("response", "critique", "refinement"), "refine")
    return {**refine_row(row, response, text, index), "completion": refinement,
            "meta": {"source": "refine", "example": row.get("id", index)}}
