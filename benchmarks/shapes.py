"""Evaluation on the shapes world: caption hallucination (CHAIR-style) and POPE-style existence QA.

A first, small form of the benchmark suite: greedy, batched generation through the public Policy
interface, scored against the world's exact ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress

from zoo.data.collate import ExampleEncoder, pad_batch


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


def evaluate_captions(policy, world_dir: str | Path, split: str = "test", limit: int | None = None, **kw) -> dict[str, Any]:
    """CHAIR-style caption metrics of one split: a thin wrapper over ``benchmarks.hallucination.CHAIRTask``."""
    from benchmarks.hallucination import CHAIRTask

    task = CHAIRTask(world=world_dir, split=split)
    items = task.items(limit)
    kw.setdefault("max_new_tokens", task.max_new_tokens)
    replies = generate_replies(policy, items, task.media_root, **kw)
    metrics = task.score(items, replies)
    metrics["n_captions"] = metrics["n"]  # the older key
    samples = [{"id": it["id"], "reply": t, "answer": it["reference"]["answer"]} for it, t in zip(items, replies)]
    return {"metrics": metrics, "samples": samples}


def evaluate_pope(policy, world_dir: str | Path, split: str = "test", limit: int | None = None, **kw) -> dict[str, Any]:
    """Existence questions per POPE kind (accuracy, precision, recall, F1 with yes = positive, yes-ratio,
    unparseable count, n): a thin wrapper over the ``pope_*`` tasks; ``limit`` applies per kind."""
    from benchmarks.hallucination import POPE_TASKS

    tasks = [cls(world=world_dir, split=split) for cls in POPE_TASKS]
    per_kind = [(task, task.items(limit)) for task in tasks]
    rows = [it for _, items in per_kind for it in items]
    kw.setdefault("max_new_tokens", 8)
    replies = generate_replies(policy, rows, world_dir, **kw) if rows else []
    metrics, start = {}, 0
    for task, items in per_kind:
        if items:
            metrics[task.kind] = task.score(items, replies[start : start + len(items)])
        start += len(items)
    samples = [{"id": it["id"], "reply": t, "answer": it["reference"]["label"]} for it, t in zip(rows, replies)]
    return {"metrics": dict(sorted(metrics.items())), "samples": samples}
