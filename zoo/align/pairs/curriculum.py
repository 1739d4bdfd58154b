"""Curry-DPO: ranked responses trained as pairs, easy to hard (Pattnaik et al., "Curry-DPO: Enhancing
Alignment using Curriculum Learning & Ranked Preferences", arXiv:2403.07230)."""

from __future__ import annotations

from dataclasses import replace

from zoo.align.pairs import PAIR_SOURCES, PairSource
from zoo.data.batches import GroupBatch
from zoo.models.policy import Policy


@PAIR_SOURCES.register("curriculum")
class CurriculumPairs(PairSource):
    """Ranked groups (sorted best first) become one pair per step whose difficulty grows with training:
    stage s = step // ``steps_per_stage`` compares the best response with the one in slot K-1-s — the
    worst first (the largest score gap, the easiest pair), the runner-up last. This is the paper's main
    setting (pairs whose chosen is the best response, ordered by score gap: ``curriculum_pairs(top_only=True)``
    on a sorted group). The stage follows the global step, so a resumed run continues where it stopped.
    All K responses stay in the batch, so a cached reference holds every stage's rejected response.
    """

    def __init__(self, steps_per_stage: int, layout: str = "shared_prefix"):
        super().__init__(layout)
        if steps_per_stage < 1:
            raise ValueError(f"steps_per_stage must be >= 1, got {steps_per_stage}")
        self.steps_per_stage = steps_per_stage

    def __call__(self, policy: Policy, batch: GroupBatch, step: int = 0) -> GroupBatch:
        if batch.scores is None or batch.k < 2:
            raise ValueError("curriculum pairs need ranked data (responses + scores, K >= 2)")
        stage = min(step // self.steps_per_stage, batch.k - 2)
        self.metrics = {"curriculum/stage": stage}
        return replace(batch, pairs=((0, batch.k - 1 - stage, 1.0),))
