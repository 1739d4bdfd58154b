"""The benchmark Task interface: items in the zoo schema, batched greedy replies, a pure scorer.

A task is data + scoring. ``items()`` yields rows in the one schema (``prompt`` messages,
``images``) plus a ``reference`` dict with the ground truth the scorer needs; ``score(items,
replies)`` is a pure function, so a test can score hand-made replies with known answers; ``run``
generates the replies through the public Policy interface and returns ``{metrics, samples}``.
Sources (the synthetic worlds, readers of public formats) only produce items; scoring never
depends on where the items came from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress

from zoo.data import ExampleEncoder, pad_batch
from zoo.registry import Registry


class Task(ABC):
    """One benchmark task. Subclasses set ``name`` and implement ``items`` and either ``score`` or, so that
    the bootstrap resamples cheap per-item records instead of re-parsing replies, ``judge`` + ``aggregate``.

    ``run`` adds a bootstrap 95 % interval over items to every rate and score (:mod:`benchmarks.stats`).
    """

    name: str = ""
    max_new_tokens: int = 48

    def __init__(self, media_root: str | Path | None = None):
        self.media_root = media_root  # relative media paths in items resolve against it

    @abstractmethod
    def items(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Schema rows (``id``, ``prompt``, ``images``) each with a ``reference`` dict; first ``limit``."""

    def score(self, items: list[dict[str, Any]], replies: list[str]) -> dict[str, Any]:
        """Metrics of ``replies`` (one per item, same order). Pure: no model, no randomness."""
        if type(self).aggregate is Task.aggregate:
            raise NotImplementedError(f"{type(self).__name__} implements neither score nor judge + aggregate")
        return self.aggregate(self.judge(items, replies))

    def judge(self, items: list[dict[str, Any]], replies: list[str]) -> list[Any]:
        """One record per item (what the metrics are sums over); by default the (item, reply) pair itself."""
        if len(items) != len(replies):
            raise ValueError(f"{len(replies)} replies for {len(items)} items")
        return list(zip(items, replies))

    def aggregate(self, records: list[Any]) -> dict[str, Any]:
        """Metrics of a list of ``judge`` records (a bootstrap resample, or all of them)."""
        if type(self).score is Task.score:
            raise NotImplementedError(f"{type(self).__name__} implements neither score nor judge + aggregate")
        return self.score([item for item, _ in records], [reply for _, reply in records])

    def run(self, model, limit: int | None = None, batch_size: int = 64, progress: bool = True,
            n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Replies, metrics, per-sample records and the bootstrap intervals (``n_boot`` resamples; 0: none)."""
        from benchmarks.stats import bootstrap_intervals

        items = self.items(limit)
        replies = generate_replies(
            model, items, self.media_root, batch_size=batch_size, max_new_tokens=self.max_new_tokens, progress=progress
        )
        samples = [{"id": it["id"], "reply": r, "reference": it["reference"]} for it, r in zip(items, replies)]
        records = self.judge(items, replies)
        intervals = bootstrap_intervals(self.aggregate, records, n_boot=n_boot, seed=seed) if n_boot else {}
        return {"metrics": self.aggregate(records), "samples": samples, "intervals": intervals}


TASKS: Registry[type[Task]] = Registry("benchmark task")


def generate_replies(policy, rows: list[dict], media_root, batch_size: int = 64, max_new_tokens: int = 48,
                     progress: bool = True) -> list[str]:
    """Greedy replies to each row's prompt, in row order."""
    encoder = ExampleEncoder(policy.processor, media_root=media_root)
    pad_id = policy.tokenizer.pad_token_id
    device = next(policy.parameters()).device
    replies: list[str] = []
    was_training = policy.training
    policy.eval()
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("generating", total=len(rows))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            examples = [encoder.encode(r, r.get("example_index", start + i), None) for i, r in enumerate(chunk)]
            batch = pad_batch(examples, pad_id, padding_side="left")
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            replies += policy.generate(batch, max_new_tokens=max_new_tokens).texts
            bar.advance(task, len(chunk))
    policy.train(was_training)
    return replies

