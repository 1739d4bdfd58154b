"""Evaluation on the shapes world: caption hallucination (CHAIR-style) and POPE-style existence QA.

A first, small form of the benchmark suite: greedy, batched generation through the public Policy
interface, scored against the world's exact ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress

from modalities.synthetic.shapes import caption_objects_metrics, parse_yes_no
from zoo.data.collate import ExampleEncoder, pad_batch
from zoo.data.formats import read_rows


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
    rows = [r for r in read_rows(world_dir, split) if r["task"] == "caption"][:limit]
    replies = generate_replies(policy, rows, world_dir, **kw)
    samples = [{"id": r["id"], "reply": t, "answer": r["answer"]} for r, t in zip(rows, replies)]
    return {"metrics": caption_objects_metrics(replies, rows), "samples": samples}


def evaluate_pope(policy, world_dir: str | Path, split: str = "test", limit: int | None = None, **kw) -> dict[str, Any]:
    """Existence questions per POPE kind: accuracy, F1 (yes = positive), yes-ratio, unparseable count."""
    rows = [r for r in read_rows(world_dir, split) if r["task"] == "existence" and r.get("pope")][:limit]
    replies = generate_replies(policy, rows, world_dir, max_new_tokens=8, **kw)
    metrics = {}
    for kind in sorted({r["pope"] for r in rows}):
        pairs = [(parse_yes_no(t), r["answer"]) for r, t in zip(rows, replies) if r["pope"] == kind]
        tp = sum(p == "yes" and a == "yes" for p, a in pairs)
        fp = sum(p == "yes" and a == "no" for p, a in pairs)
        fn = sum(p != "yes" and a == "yes" for p, a in pairs)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        metrics[kind] = {
            "accuracy": sum(p == a for p, a in pairs) / len(pairs),
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "yes_ratio": sum(p == "yes" for p, _ in pairs) / len(pairs),
            "unparseable": sum(p is None for p, _ in pairs),
        }
    samples = [{"id": r["id"], "reply": t, "answer": r["answer"]} for r, t in zip(rows, replies)]
    return {"metrics": metrics, "samples": samples}
