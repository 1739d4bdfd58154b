"""The constant critic: the same words for every response — the control that tells whether a critique's content
matters (an LLF run whose refiner does as well with "Please refine the response." learned nothing from feedback)."""

from __future__ import annotations

from zoo.align.critics import CRITICS, Critic

DEFAULT_TEXT = "Please refine the response."


@CRITICS.register("constant")
class ConstantCritic(Critic):
    """Writes ``text`` for every response."""

    def __init__(self, text: str = DEFAULT_TEXT):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"constant critic: text must be a non-empty string, not {text!r}")
        self.text = text.strip()

    def __call__(self, references, responses):
        if len(references) != len(responses):
            raise ValueError(f"constant critic: {len(responses)} responses but {len(references)} references")
        return [self.text] * len(responses)
