"""Preference-optimisation objectives: small, pure loss functions over sequence log-probabilities.

Contract
--------
Every objective receives one struct, `GroupLogps` — the summed response log-probs of K responses per
prompt under the policy and the reference, their lengths, and (ranked data) their scores — and returns
the per-example loss ``[B]``. Metrics are computed once, by the caller (`Objective`), not by each loss.

* **Pairwise** objectives (registry ``OBJECTIVES``) see a pair (K = 2, chosen in slot 0): ``lp.chosen``,
  ``lp.rejected``, ``lp.ref_chosen``, ``lp.ref_rejected`` ``[B]``, ``lp.lengths`` ``[B, 2]``::

      f(lp, *, beta=0.1, <its own hparams>) -> loss [B]

  Reference-free objectives (``simpo``, ``sft``) accept ``lp.reference is None``.
* **Ranked** objectives (registry ``RANKED_OBJECTIVES``) see the whole group: ``lp.policy``,
  ``lp.reference`` (may be None), ``lp.lengths`` and ``lp.scores`` ``[B, K]`` (higher is better).
* **Policy-gradient** objectives (``policy_gradient.py``: GRPO, Dr. GRPO, DAPO, RLOO) are ranked ones
  registered with ``tokens=True``: they also read ``lp.tokens`` (`TokenLogps`, ``[B, K, T]``: policy,
  reference, the sampling policy, mask) and ``lp.scores`` are the judge's rewards.

``beta`` is the inverse temperature / KL-regularisation strength (its exact role is given per
objective). Objectives are pure: no state, no parameters, no reduction, no device or dtype changes.
Stateful quantities some papers keep (e.g. BCO's running reward mean) are explicit arguments.

Adding an objective is one new file in this package (it is imported here automatically) that
registers its loss with ``@objective("name")`` (``ranked=True`` for a ranked one,
``needs_reference=False`` when it trains without a reference), plus its test.

`Objective` is the training part: a weighted sum of registered terms with shared hparams, applied to
each pair a group batch names (``GroupBatch.pairs``: chosen vs rejected by default, best vs worst on
ranked rows) and, for ranked terms, to the whole group; it returns ``(loss [B], metrics)``.
:func:`curriculum_pairs` orders pairs of a ranked list easy-to-hard for Curry-DPO.
"""

from __future__ import annotations

import importlib
import pkgutil

from zoo.align.objectives.base import (
    OBJECTIVES,
    RANKED_OBJECTIVES,
    GroupLogps,
    Objective,
    TokenLogps,
    objective,
    stack_tokens,
    preference_metrics,
    ranked_metrics,
)

# Every module of this package registers its losses on import: a new objective is one new file.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from zoo.align.objectives.ranked import curriculum_pairs  # noqa: E402

__all__ = [
    "OBJECTIVES",
    "RANKED_OBJECTIVES",
    "GroupLogps",
    "Objective",
    "TokenLogps",
    "curriculum_pairs",
    "objective",
    "preference_metrics",
    "ranked_metrics",
    "stack_tokens",
]
