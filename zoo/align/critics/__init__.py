"""Critics: what writes the natural-language feedback of learning from language feedback (LLF).

One registry, ``CRITICS``. A critic reads a data row (its prompt, media and, for a synthetic world, the ground
truth) and a response, and writes a critique with refinement suggestions:
``critic(references, responses) -> list[str]``, one critique per response, in order.

* ``world`` — a synthetic world's critic: names the hallucinated, missing and misdescribed objects from the
  ground truth and says how to fix them, in varied phrasings (`zoo.align.critics.world`).
* ``prompted`` — any zoo/HF VLM asked the critic's question of `zoo.data.critique`; ``trained`` is the same
  class for a critic trained with ``recipe=critic_sft`` (`zoo.align.critics.prompted`).

Adding a critic is one new file in this package that registers its class with ``@CRITICS.register("name")``
(every module here is imported with the package), plus its test.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from typing import Any

from zoo.registry import Registry

CRITICS: Registry[type] = Registry("critic")


class Critic:
    """Writes one critique per (reference row, response) (see the module docstring)."""

    def __call__(self, references: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> list[str]:
        raise NotImplementedError


# Every module of this package registers its critics on import: a new critic is one new file.
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "__main__":  # the command line (python -m zoo.align.critics), not a critic
        importlib.import_module(f"{__name__}.{_module.name}")
