"""The pairwise judge's question, in one place: what the prompted judge (`zoo.align.judges.prompted`) asks a
model at inference and what the ``pairwise_judge`` data format (registered in `zoo.data.formats`) trains a
judge on — the same template, the same letters, the same row layout, so a judge trained here is asked
exactly what it learned.

A judge row is a schema row: one user message holding the data row's media placeholders (in order) and then
the question, the template filled with the two responses (``{a}``, ``{b}``) and, if the template names it, the
row's own prompt text (``{prompt}``); the row's media columns are kept. The answer is one letter, ``A`` when
the first response is the better one, ``B`` otherwise.

``pairwise_judge`` turns a preference row (``chosen`` / ``rejected``) into two SFT rows, both orders — chosen
as A (answer ``A``), then chosen as B (answer ``B``) — so the letters alternate and position carries no
information. It holds out the images whose hash falls in the first ``holdout`` share of buckets
(`held_out`: by ``image_id`` when the row has one, else by its media paths or bytes), so every pair of an
image is on one side and the judge's agreement can be measured on images it never saw
(``python -m zoo.align.judges.prompted``); ``pairwise_judge_all`` keeps every row.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

from zoo.data.schema import MEDIA_COLUMNS, DataError, response_text

DEFAULT_JUDGE_QUESTION = "Which description matches the image better?\nA: {a}\nB: {b}\nAnswer with A or B."
JUDGE_LETTERS = ("A", "B")
JUDGE_HOLDOUT = 0.1  # the share of images the pairwise_judge format keeps out of training
_FIELDS = {"a", "b", "prompt"}


def check_question(question: str) -> str:
    """The template, checked: a string naming ``{a}`` and ``{b}`` (and optionally ``{prompt}``), nothing else."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"judge question: expected a non-empty template string, got {question!r}")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(question) if name is not None}
    except ValueError as e:
        raise ValueError(f"judge question: not a valid template ({e}): {question!r}") from None
    if not {"a", "b"} <= names or not names <= _FIELDS:
        raise ValueError(f"judge question: the template must name {{a}} and {{b}} (and may name {{prompt}}), "
                         f"it names {sorted(names)}: {question!r}")
    return question


def prompt_parts(reference: Mapping[str, Any], index: Any = None, who: str = "the pairwise judge") -> tuple[list[dict], str]:
    """The data row's media placeholders (in order, ``{"type": kind}``) and its user text (the parts joined by a
    space): what a question about the row (the judge's, the critic's) shows the model. A row without a
    ``prompt`` list of messages is a `DataError` naming the example and the field; ``who`` names the asker."""
    if not isinstance(reference, Mapping):
        raise DataError(index, "", f"{who} needs the data row (its prompt and media), got {type(reference).__name__}")
    prompt = reference.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        raise DataError(index, "prompt", f"missing or not a list of messages: {who} asks about the row's prompt "
                                         "and its media")
    placeholders, texts = [], []
    for m, message in enumerate(prompt):
        content = message.get("content") if isinstance(message, Mapping) else None
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise DataError(index, f"prompt[{m}]", "each message needs 'role' and 'content'")
        for part in parts:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in MEDIA_COLUMNS:
                placeholders.append({"type": kind})
            elif kind == "text" and message.get("role", "user") == "user":
                texts.append(str(part.get("text") or "").strip())
    return placeholders, " ".join(t for t in texts if t)


def media_columns(reference: Mapping[str, Any]) -> dict[str, list]:
    """The row's media columns (``images``, ``audios``, ``videos``) that it has, copied."""
    return {column: list(reference[column]) for column in MEDIA_COLUMNS.values() if reference.get(column) is not None}


def row_index(reference: Any, index: Any = None) -> Any:
    """The example's name for errors: ``index``, else the row's ``example_index`` or ``id``."""
    if index is None and isinstance(reference, Mapping):
        index = reference.get("example_index", reference.get("id"))
    return index


def judge_row(reference: Mapping[str, Any], text_a: str, text_b: str, question: str = DEFAULT_JUDGE_QUESTION,
              index: Any = None) -> dict:
    """The judge's question about two responses ``text_a`` (A) and ``text_b`` (B) to the data row ``reference``:
    a schema row with the row's media placeholders then the question, and the row's media columns.

    A row without a ``prompt`` list of messages (the media placeholders and the question asked) is a
    `DataError` naming the example and the field."""
    index = row_index(reference, index)
    placeholders, asked = prompt_parts(reference, index)
    for name, text in (("A", text_a), ("B", text_b)):
        if not isinstance(text, str):
            raise DataError(index, f"response {name}", f"expected a string, got {type(text).__name__}")
    filled = question.format(a=text_a.strip(), b=text_b.strip(), prompt=asked)
    row: dict[str, Any] = {"prompt": [{"role": "user", "content": [*placeholders, {"type": "text", "text": filled}]}]}
    return {**row, **media_columns(reference)}


def image_key(row: Mapping[str, Any]) -> str:
    """What identifies a row's image(s) for the hold-out: ``image_id``, else its media (paths, or a hash of bytes)."""
    if row.get("image_id") is not None:
        return str(row["image_id"])
    items = []
    for column in MEDIA_COLUMNS.values():
        for item in row.get(column) or []:
            if isinstance(item, Mapping):
                item = item.get("path") or item.get("bytes")
            if isinstance(item, (bytes, bytearray)):
                item = hashlib.sha256(item).hexdigest()
            items.append(str(item))
    return json.dumps(items)


def held_out(row: Mapping[str, Any], holdout: float = JUDGE_HOLDOUT) -> bool:
    """Whether the row's image is in the held-out share ``holdout`` (a stable hash of `image_key`, 1000 buckets)."""
    bucket = int(hashlib.sha256(image_key(row).encode()).hexdigest()[:8], 16) % 1000
    return bucket < round(holdout * 1000)


def pairwise_judge(row: dict, index: Any = None, question: str = DEFAULT_JUDGE_QUESTION,
                   holdout: float = JUDGE_HOLDOUT, part: str = "train") -> list[dict]:
    """A preference row (``chosen`` / ``rejected``) as two judge SFT rows, chosen as A (completion ``A``) then
    chosen as B (completion ``B``). ``part``: ``train`` keeps the images outside the held-out share, ``heldout``
    the images inside it, ``all`` every row; the others raise `SkipExample` (counted by `convert`)."""
    from zoo.data.formats import SkipExample

    if part not in ("train", "heldout", "all"):
        raise ValueError(f"pairwise_judge: part must be train, heldout or all, not {part!r}")
    if not isinstance(row, dict):
        raise DataError(index, "", f"expected a record (dict), got {type(row).__name__}")
    if part != "all" and held_out(row, holdout) != (part == "heldout"):
        raise SkipExample("held out for judge evaluation (by image)" if part == "train" else "a training image")
    texts = {}
    for field in ("chosen", "rejected"):
        if row.get(field) is None:
            raise DataError(index, field, "missing: the pairwise judge format needs a preference pair")
        texts[field] = response_text(row[field], index, field).strip()
        if not texts[field]:
            raise DataError(index, field, "empty response")
    if texts["chosen"] == texts["rejected"]:
        raise DataError(index, "rejected", "identical to 'chosen': the pair carries no preference")
    meta = {"source": "pairwise_judge", "example": row.get("id", index)}
    out = []
    for first, second, letter in (("chosen", "rejected", JUDGE_LETTERS[0]), ("rejected", "chosen", JUDGE_LETTERS[1])):
        judged = judge_row(row, texts[first], texts[second], question, index)
        out.append({**judged, "completion": letter, "meta": {**meta, "order": f"{first} first"}})
    return out
