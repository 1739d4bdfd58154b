"""The world's critic: critiques of responses about a synthetic world, written from its ground truth.

`response_errors` reads a response against the row's ``objects`` (the shapes world): every shape named that the
image lacks is ``hallucinated``; every shape present and never named is ``missing``; a named, present shape whose
clause gives another colour or quadrant is a ``colour`` / ``position`` error; for the world's question rows
(existence, colour, count, position: the row's ``answer``) a wrong short answer is an ``answer`` error.
Clauses are split at sentence marks and semicolons; a clause that names two shapes gets no attribute check
(which shape a colour belongs to is ambiguous there).

`WorldCritic` turns the errors into a short natural critique with refinement suggestions — one sentence per
error saying what is wrong and how to fix it, an opening and a closing line — drawn from several phrasings per
kind by a generator seeded with (seed, the row's id, the response), so a rerun or resume writes the same text.
An error-free response gets a short confirmation that names no shape. `corrected` is the response with every
error fixed: the true caption (one sentence per object, as the world writes captions) or the true short answer.

`critique_quality` measures any critic (a trained one above all) against the truth: how often its critique names
each actual error (the shape, and for a colour or position error the true value), and how many shapes it names
that are no error's (false mentions).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.align.critics import CRITICS, Critic

_CLAUSE = re.compile(r"[.!?;\n]+")

OPENINGS = ("Some of this does not match the image.", "A few details are wrong.", "Not quite right.",
            "The description needs some fixes.", "")
CLOSINGS = ("Keep the rest as it is.", "The rest is fine.", "Otherwise it is correct.", "")
PHRASES: dict[str, tuple[str, ...]] = {
    "hallucinated": ("There is no {shape} in the image: remove the sentence about it.",
                     "The {shape} you mention is not there; drop it.",
                     "Delete the {shape}: the image has none.",
                     "No {shape} appears in the picture, so leave it out."),
    "missing": ("You left out the {colour} {shape} at the {position}: add it.",
                "The image also shows a {colour} {shape} at the {position}; mention it.",
                "Add the {shape} ({colour}, {position}), which is missing.",
                "Do not forget the {colour} {shape} in the {position} corner."),
    "colour": ("The {shape} is {true}, not {said}.",
               "Fix the colour of the {shape}: it is {true}.",
               "The {shape} should be described as {true} rather than {said}."),
    "position": ("The {shape} is at the {true}, not the {said}.",
                 "Move the {shape} to the {true} in your description.",
                 "The {shape} sits at the {true}; correct its position."),
    "answer": ("The answer should be {true}, not {said}.",
               "That is wrong: the right answer is {true}.",
               "Correct the answer to {true}."),
}
CONFIRMATIONS = ("The description is accurate; keep it as it is.",
                 "Everything matches the image. No change is needed.",
                 "This is correct and complete.",
                 "Accurate: every object is named with the right colour and position.")
ANSWER_CONFIRMATIONS = ("The answer is correct.", "That is right; keep the answer.", "Correct.")


def _example(reference: Mapping[str, Any]) -> Any:
    return reference.get("example_index", reference.get("id", "?")) if isinstance(reference, Mapping) else "?"


def _objects(reference: Mapping[str, Any]) -> list[dict]:
    if not isinstance(reference, Mapping) or not isinstance(reference.get("objects"), list):
        raise ValueError(f"world critic: example {_example(reference)} has no 'objects' (the image's ground truth)")
    return reference["objects"]


def is_question(reference: Mapping[str, Any]) -> bool:
    """A question row of the world (a short ``answer``), not a description."""
    return reference.get("task") in ("existence", "colour", "count", "position") and reference.get("answer") is not None


def _short_answer(text: str, task: str) -> str | None:
    from modalities.synthetic.shapes import COLOURS, NUMBER_WORDS, POSITIONS, parse_yes_no

    low = text.lower()
    if task == "existence":
        return parse_yes_no(text)
    if task == "colour":
        return next((c for c in COLOURS if re.search(rf"\b{c}\b", low)), None)
    if task == "position":
        return next((p for p in POSITIONS if p in low), None)
    digits = re.search(r"\b(\d)\b", low)
    if digits and int(digits.group(1)) < len(NUMBER_WORDS):
        return NUMBER_WORDS[int(digits.group(1))]
    return next((w for w in NUMBER_WORDS if re.search(rf"\b{w}\b", low)), None)


def response_errors(text: str, reference: Mapping[str, Any]) -> list[dict]:
    """The response's errors against the row's ground truth (module docstring), in the order a reader meets them:
    hallucinated and misdescribed shapes by first mention, then the missing shapes in the world's shape order."""
    from modalities.synthetic.shapes import COLOURS, POSITIONS, SHAPES, mentioned_shapes

    objects = _objects(reference)
    if is_question(reference):
        said = _short_answer(text, reference["task"])
        true = str(reference["answer"])
        return [] if said == true else [{"kind": "answer", "said": said or "no answer", "true": true}]
    by_shape = {o["shape"]: o for o in objects}
    errors: list[dict] = []
    for clause in _CLAUSE.split(text):
        shapes = mentioned_shapes(clause)
        for shape in shapes:
            if shape not in by_shape and not any(e["kind"] == "hallucinated" and e["shape"] == shape for e in errors):
                errors.append({"kind": "hallucinated", "shape": shape})
        if len(shapes) != 1 or shapes[0] not in by_shape:
            continue
        obj, low = by_shape[shapes[0]], clause.lower()
        colours = [c for c in COLOURS if re.search(rf"\b{c}\b", low)]
        if colours and obj["colour"] not in colours:
            errors.append({"kind": "colour", "shape": obj["shape"], "said": colours[0], "true": obj["colour"]})
        positions = [p for p in POSITIONS if p in low]
        if positions and obj["position"] not in positions:
            errors.append({"kind": "position", "shape": obj["shape"], "said": positions[0], "true": obj["position"]})
    named = set(mentioned_shapes(text))
    errors += [{"kind": "missing", "shape": s} for s in SHAPES if s in by_shape and s not in named]
    return errors


def corrected(text: str, reference: Mapping[str, Any], order: str = "shape") -> str:
    """The response with every error fixed: the true short answer of a question row (as the world writes it), or
    the true caption (`modalities.synthetic.shapes.caption`, objects in ``order``)."""
    from modalities.synthetic.shapes import caption

    objects = _objects(reference)
    if is_question(reference):
        answer = str(reference["answer"])
        return f"At the {answer}." if reference["task"] == "position" else f"{answer.capitalize()}."
    return caption(objects, order)


def _rng(seed: int, reference: Mapping[str, Any], response: str) -> np.random.Generator:
    key = str(reference.get("id", reference.get("example_index", "")))
    return np.random.default_rng([seed, zlib.crc32(key.encode()), zlib.crc32(response.encode())])


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def write_critique(errors: Sequence[Mapping[str, Any]], reference: Mapping[str, Any], rng: np.random.Generator) -> str:
    """The critique of ``errors`` (from `response_errors`): opening, one fix per error, closing; or a confirmation."""
    if not errors:
        return _pick(rng, ANSWER_CONFIRMATIONS if is_question(reference) else CONFIRMATIONS)
    by_shape = {o["shape"]: o for o in _objects(reference)}
    lines = [_pick(rng, OPENINGS)]
    for error in errors:
        fields = {**by_shape.get(error.get("shape"), {}), **error}
        lines.append(_pick(rng, PHRASES[error["kind"]]).format(**fields))
    lines.append(_pick(rng, CLOSINGS))
    return " ".join(line for line in lines if line)


@CRITICS.register("world")
class WorldCritic(Critic):
    """The shapes world's critic (module docstring). ``seed``: varies the phrasings (not what is said)."""

    def __init__(self, world: str = "shapes", seed: int = 0):
        if world != "shapes":
            raise ValueError(f"the world critic knows the shapes world only, not {world!r}")
        self.world, self.seed = world, int(seed)

    def __call__(self, references, responses):
        if len(references) != len(responses):
            raise ValueError(f"world critic: {len(responses)} responses but {len(references)} references")
        return [write_critique(response_errors(text, ref), ref, _rng(self.seed, ref, text))
                for ref, text in zip(references, responses)]


def _names(critique: str, error: Mapping[str, Any]) -> bool:
    from modalities.synthetic.shapes import mentioned_shapes

    low = critique.lower()
    if error["kind"] == "answer":
        return re.search(rf"\b{re.escape(error['true'])}\b", low) is not None
    if error["shape"] not in mentioned_shapes(critique):
        return False
    return error["kind"] not in ("colour", "position") or error["true"] in low


def critique_quality(critiques: Sequence[str], references: Sequence[Mapping[str, Any]],
                     responses: Sequence[str]) -> dict[str, float]:
    """How well critiques name the actual errors of their responses (against the world's truth):

    * ``error_recall``: named errors / errors — an error is named when the critique mentions its shape (synonyms
      count) and, for a colour or position error, the true value (for an answer error: the true answer);
    * ``fully_named``: the share of erroneous responses whose every error is named;
    * ``false_mentions``: shapes per critique that are no error's shape (a critic that accuses the wrong object);
    * ``clean_confirmed``: the share of error-free responses whose critique names no shape at all (no false
      accusation; a confirmation);
    * counts: ``responses``, ``responses_with_errors``, ``errors``.
    """
    from modalities.synthetic.shapes import mentioned_shapes

    if not len(critiques) == len(references) == len(responses):
        raise ValueError(f"critique_quality: {len(critiques)} critiques, {len(references)} references and "
                         f"{len(responses)} responses")
    errors_total = named_total = with_errors = fully = clean = clean_ok = false = 0
    for critique, reference, response in zip(critiques, references, responses):
        errors = response_errors(response, reference)
        error_shapes = {e.get("shape") for e in errors}
        false += sum(shape not in error_shapes for shape in mentioned_shapes(critique))
        if errors:
            named = sum(_names(critique, e) for e in errors)
            errors_total, named_total, with_errors = errors_total + len(errors), named_total + named, with_errors + 1
            fully += named == len(errors)
        else:
            clean += 1
            clean_ok += not mentioned_shapes(critique)
    n = len(critiques)
    return {"error_recall": named_total / errors_total if errors_total else float("nan"),
            "fully_named": fully / with_errors if with_errors else float("nan"),
            "false_mentions": false / n if n else float("nan"),
            "clean_confirmed": clean_ok / clean if clean else float("nan"),
            "responses": n, "responses_with_errors": with_errors, "errors": errors_total}
