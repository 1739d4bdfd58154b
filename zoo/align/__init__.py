"""Preference alignment from parts: objectives (pure losses over sequence log-probs), references, and
pair/group sources (`zoo.align.pairs`). `zoo.train.modules.PreferenceModule` composes one of each."""

from zoo.align.objectives import (
    OBJECTIVES,
    RANKED_OBJECTIVES,
    GroupLogps,
    Objective,
    curriculum_pairs,
    preference_metrics,
    ranked_metrics,
)

__all__ = [
    "OBJECTIVES",
    "RANKED_OBJECTIVES",
    "GroupLogps",
    "Objective",
    "curriculum_pairs",
    "preference_metrics",
    "ranked_metrics",
]
