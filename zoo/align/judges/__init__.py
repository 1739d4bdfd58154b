"""Judges: what scores a response for on-policy alignment (online DPO picks best vs worst of K by it).

One registry, ``JUDGES``. A judge maps responses and their references (what the data row knows about the
prompt: for a synthetic world, its ground truth) to one score each, higher is better:
``judge(texts, references) -> list[float]``.

* ``verifier`` — a synthetic world's programmatic check: every object named that the image lacks is a
  hallucination (−1 each), every object present and not named an omission (−``omission_weight`` each).
* ``weighted`` — a weighted sum of other judges.

Adding a judge is one new file in this package that registers its class with ``@JUDGES.register("name")``
(every module here is imported with the package), plus its test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import importlib
import pkgutil

from zoo.registry import Registry

JUDGES: Registry[type] = Registry("judge")


class Judge:
    """Scores responses, higher is better (see the module docstring)."""

    def __call__(self, texts: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[float]:
        raise NotImplementedError


@JUDGES.register("verifier")
class VerifierJudge(Judge):
    """The world's verifier: −(hallucinated objects) − ``omission_weight`` · (omitted objects).

    ``references``: rows carrying the image's ``objects`` (each with its ``shape``), as the shapes world's
    rows do. A row without them is an error naming it: the verifier cannot guess the truth.
    """

    def __init__(self, world: str = "shapes", omission_weight: float = 0.5):
        if world != "shapes":
            raise ValueError(f"the verifier knows the shapes world only, not {world!r}")
        if isinstance(omission_weight, bool) or not isinstance(omission_weight, (int, float)) or omission_weight < 0:
            raise ValueError(f"verifier: omission_weight must be a number >= 0, not {omission_weight!r}")
        self.omission_weight = float(omission_weight)

    def counts(self, text: str, reference: Mapping[str, Any]) -> tuple[int, int]:
        """(hallucinated, omitted) objects of one response."""
        from modalities.synthetic.shapes import mentioned_shapes

        if not isinstance(reference, Mapping) or not isinstance(reference.get("objects"), list):
            index = reference.get("example_index", "?") if isinstance(reference, Mapping) else "?"
            raise ValueError(f"verifier: example {index} has no 'objects' (the image's ground truth) to check against")
        present = {o["shape"] for o in reference["objects"]}
        named = set(mentioned_shapes(text))
        return len(named - present), len(present - named)

    def __call__(self, texts, references):
        scores = []
        for text, reference in zip(texts, references, strict=True):
            hallucinated, omitted = self.counts(text, reference)
            scores.append(-float(hallucinated) - self.omission_weight * omitted)
        return scores


@JUDGES.register("weighted")
class WeightedJudge(Judge):
    """Σ weight · judge(texts, references) over ``judges`` ({name: (judge, weight)} or {name: judge} with 1)."""

    def __init__(self, judges: Mapping[str, Any]):
        if not judges:
            raise ValueError("weighted judge: give at least one judge")
        self.parts = [(j, 1.0) if isinstance(j, Judge) else (j[0], float(j[1])) for j in judges.values()]

    def __call__(self, texts, references):
        total = [0.0] * len(texts)
        for judge, weight in self.parts:
            for i, score in enumerate(judge(texts, references)):
                total[i] += weight * score
        return total


# Every module of this package registers its judges on import: a new judge is one new file.
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "__main__":  # the command line (python -m zoo.align.judges), not a judge
        importlib.import_module(f"{__name__}.{_module.name}")
