"""Curry-DPO's pair source: the stage follows the global step, easy (best vs worst) to hard (best vs runner-up)."""

from __future__ import annotations

import pytest
import torch

from zoo.align.objectives import GroupLogps, Objective
from zoo.align.pairs.curriculum import CurriculumPairs
from zoo.data.batches import PrefixGroups


def ranked_batch(k=4, scores=None):
    scores = torch.tensor(scores if scores is not None else [[3.0, 2.0, 1.0, 0.0]] * 2)
    return PrefixGroups(example_index=[0, 1], k=k, scores=scores, pairs=((0, k - 1, 1.0),))


def test_stages_walk_from_the_widest_gap_to_the_narrowest():
    source = CurriculumPairs(steps_per_stage=10)
    seen = [source(None, ranked_batch(), step=s).pairs for s in (0, 9, 10, 19, 20, 25, 1000)]
    assert seen == [((0, 3, 1.0),)] * 2 + [((0, 2, 1.0),)] * 2 + [((0, 1, 1.0),)] * 3  # the last stage holds
    assert source.metrics == {"curriculum/stage": 2}


def test_the_objective_compares_the_stage_pair():
    g = torch.Generator().manual_seed(0)
    pol, ref = -torch.rand(2, 4, generator=g) * 9, -torch.rand(2, 4, generator=g) * 9
    batch = CurriculumPairs(steps_per_stage=5)(None, ranked_batch(), step=7)  # stage 1: slots 0 and 2
    loss, _ = Objective("sigmoid", {"beta": 0.5})(GroupLogps(pol, ref, None, batch.scores), batch.pairs)
    want, _ = Objective("sigmoid", {"beta": 0.5})(GroupLogps(pol[:, [0, 2]], ref[:, [0, 2]]))
    torch.testing.assert_close(loss, want)


def test_bad_use_is_refused():
    with pytest.raises(ValueError, match="steps_per_stage"):
        CurriculumPairs(steps_per_stage=0)
    unranked = PrefixGroups(example_index=[0], k=2)
    with pytest.raises(ValueError, match="ranked data"):
        CurriculumPairs(steps_per_stage=3)(None, unranked)
