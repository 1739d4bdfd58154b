"""Preference alignment: objectives (pure losses over sequence log-probs) and, later, trainers built on them."""

from zoo.align.objectives import (
    OBJECTIVES,
    RANKED_OBJECTIVES,
    combine,
    curriculum_pairs,
    preference_metrics,
    ranked_metrics,
)

__all__ = [
    "OBJECTIVES",
    "RANKED_OBJECTIVES",
    "combine",
    "curriculum_pairs",
    "preference_metrics",
    "ranked_metrics",
]
