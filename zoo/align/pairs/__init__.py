"""Pair and group sources: everything that turns the training data into the groups an objective sees.

A source is one small class (registry ``PAIR_SOURCES``, one file each) with three duties:

* ``prepare(policy)`` — before the data is read (offline BDHS writes its pair file here);
* ``collate(groups, pad_token_id)`` — the DataLoader's collate over `EncodedGroup` examples;
* ``__call__(policy, batch, step)`` — in the training step (``step``: the global step, restored on
  resume), the `GroupBatch` to train on (offline sources return the batch as it is; online ones write
  responses first, on token ids).

``online`` sources make new responses every step, so their reference cannot be cached.
``metrics`` holds what the last call wants logged (e.g. BDHS tries), prefixed by the module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.data.batches import EncodedGroup, ExampleBatch, GroupBatch
from zoo.data.collate import LAYOUTS, pad_groups
from zoo.models.policy import Policy
from zoo.registry import Registry

PAIR_SOURCES: Registry[type] = Registry("pair source")


class PairSource:
    """Offline groups as the data holds them (pairs: chosen vs rejected; ranked rows: best first)."""

    online = False

    def __init__(self, layout: str = "shared_prefix"):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: choose from {', '.join(LAYOUTS)}")
        self.layout = layout
        self.metrics: dict[str, Any] = {}

    def prepare(self, policy: Policy) -> None:
        """Work before the training data is read; nothing for a dataset that exists."""

    def collate(self, groups: Sequence[EncodedGroup], pad_token_id: int) -> GroupBatch | ExampleBatch:
        pairs = ((0, groups[0].k - 1, 1.0),) if groups and groups[0].scores is not None else ((0, 1, 1.0),)
        return pad_groups(groups, pad_token_id, self.layout, pairs=pairs)  # ranked rows: best vs worst

    def __call__(self, policy: Policy, batch: GroupBatch | ExampleBatch, step: int = 0) -> GroupBatch:
        return batch
