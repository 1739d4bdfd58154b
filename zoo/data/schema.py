"""The one data schema for every modality (TRL's conversational format extended to media).

A row has ``prompt`` (a list of messages whose content parts are ``{"type": "text", "text": …}``
or media placeholders ``{"type": "image"|"audio"|"video"}``), a response — ``completion`` for SFT,
``chosen`` + ``rejected`` for preferences, ``responses`` + ``scores`` for ranked data — and media
columns ``images`` / ``audios`` / ``videos`` (one per modality record) holding paths, bytes or arrays
in placeholder order. Responses are a string or a list of assistant messages.

Every check raises `DataError`, which names the example and the field.
"""

from __future__ import annotations

from typing import Any

from modalities.record import all_modalities

# modality -> its column, from the modality records (modalities/*.py)
MEDIA_COLUMNS = {m.name: m.column for m in all_modalities()}
RESPONSE_FIELDS = ("completion", "chosen", "rejected")


class DataError(ValueError):
    """Bad input, located: which file (``source``, when known), which example (``index``) or 1-based
    ``line``, which field, what is wrong. ``kind`` is the short reason skipped input is counted by."""

    def __init__(self, index: Any, field: str, message: str, *, kind: str | None = None,
                 source: Any = None, line: int | None = None):
        self.index, self.field, self.reason = index, field, message
        self.kind, self.source, self.line = kind, source, line
        super().__init__(message)

    def __str__(self) -> str:  # built on demand: a reader may add the ``source`` it read the example from
        where = [str(self.source)] if self.source else []
        where.append(f"line {self.line}" if self.line is not None else f"example {self.index}")
        if self.field:
            where.append(f"field '{self.field}'")
        return ", ".join(where) + f": {self.reason}"


def _parts(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    raise TypeError(f"message content must be a string or a list of parts, not {type(content).__name__}")


def placeholder_counts(messages: list[dict]) -> dict[str, int]:
    """How many placeholders of each media kind the messages hold."""
    counts = dict.fromkeys(MEDIA_COLUMNS, 0)
    for message in messages:
        for part in _parts(message.get("content")):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in counts:
                counts[kind] += 1
    return counts


def response_text(response, index: Any = None, field: str = "completion") -> str:
    """The text of a response given as a string or a list of assistant messages."""
    if isinstance(response, str):
        return response
    if isinstance(response, list):
        texts = []
        for message in response:
            if not isinstance(message, dict) or "content" not in message:
                raise DataError(index, field, "each message needs 'role' and 'content'")
            for part in _parts(message["content"]):
                if not isinstance(part, dict):
                    raise DataError(index, field, f"a content part is a {type(part).__name__}, not an object "
                                                  "like {'type': 'text', 'text': …}")
                if part.get("type") == "text":
                    texts.append(part.get("text") or "")
                elif part.get("type") in MEDIA_COLUMNS:
                    raise DataError(index, field, "media in a response is not supported for input-side training")
        return "".join(texts)
    raise DataError(index, field, f"expected a string or a list of messages, got {type(response).__name__}")


def media_items(row: dict, kind: str) -> list:
    items = row.get(MEDIA_COLUMNS[kind])
    return list(items) if items is not None else []


def validate_row(row: dict, index: Any, response_fields: tuple[str, ...] = ("completion",)) -> None:
    """Check structure, placeholder/media counts and responses; raise DataError on the first problem."""
    if not isinstance(row, dict):
        raise DataError(index, "", f"expected an object (a row), got {type(row).__name__}", kind="not an object")
    prompt = row.get("prompt")
    if prompt is None:
        raise DataError(index, "prompt", "missing")
    if not isinstance(prompt, list):
        raise DataError(index, "prompt", f"expected a list of messages, got {type(prompt).__name__}", kind="not a list")
    if not prompt:
        raise DataError(index, "prompt", "empty (no messages)")
    for m, message in enumerate(prompt):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(index, f"prompt[{m}]", "each message needs 'role' and 'content'")
        try:
            parts = _parts(message["content"])
        except TypeError as e:
            raise DataError(index, f"prompt[{m}].content", str(e)) from None
        for p, part in enumerate(parts):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise DataError(index, f"prompt[{m}].content[{p}]", f"expected an object with a 'type' "
                                f"(text, image, audio, video), got {part!r:.60}")
    for kind, column in MEDIA_COLUMNS.items():
        items = row.get(column)
        if items is not None and not isinstance(items, (list, tuple)):
            hint = f"; for one file write [{items!r}]" if isinstance(items, str) else ""
            raise DataError(index, column, f"expected a list of {kind}s, got {type(items).__name__} "
                                           f"{items!r:.60}{hint}", kind="not a list")
    counts = placeholder_counts(prompt)
    for kind, column in MEDIA_COLUMNS.items():
        n_items = len(media_items(row, kind))
        if counts[kind] != n_items:
            raise DataError(
                index, column, f"the prompt has {counts[kind]} {kind} placeholder(s) but {n_items} {kind}(s) are given"
            )
    texts = {}
    for field in response_fields:
        if field not in row or row[field] is None:
            raise DataError(index, field, "missing")
        text = response_text(row[field], index, field)
        if not text.strip():
            raise DataError(index, field, "empty response")
        texts[field] = text
    if "chosen" in texts and "rejected" in texts and texts["chosen"].strip() == texts["rejected"].strip():
        raise DataError(index, "rejected", "identical to 'chosen': the pair carries no preference")
