"""`zoo demo` / `make demo`: the embedded default end to end on a laptop CPU.

Generates the shapes world, trains the SFT `shapes-vlm` base, and evaluates it: object recall of
captions on the unbiased test split, and how often it names the absent partner on the
bias-trigger split — the hallucination that the alignment recipes exist to remove.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from zoo.train.run import compose_config, train


def evaluate(policy, world: Path) -> dict:
    from benchmarks.shapes import evaluate_captions, evaluate_pope

    return {
        "captions_test": evaluate_captions(policy, world, "test")["metrics"],
        "captions_trigger": evaluate_captions(policy, world, "trigger")["metrics"],
        "pope_test": evaluate_pope(policy, world, "test")["metrics"],
    }


def report_table(results: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("split", "recall", "CHAIR_i", "CHAIR_s", "partner hallucination"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split in ("test", "trigger"):
        m = results[f"captions_{split}"]
        partner = m["partner_hallucination"]
        table.add_row(split, f"{m['recall']:.3f}", f"{m['chair_i']:.3f}", f"{m['chair_s']:.3f}",
                      "—" if partner is None else f"{partner:.3f}")
    pope = results["pope_test"]
    table.caption = "POPE (test) accuracy / F1: " + ", ".join(
        f"{k} {v['accuracy']:.3f}/{v['f1']:.3f}" for k, v in pope.items()
    )
    return table


def run_demo(output_dir: str = "runs/demo", overrides: list[str] | None = None) -> dict:
    from zoo.models import load_policy

    console = Console()
    start = time.perf_counter()
    cfg = compose_config(["recipe=sft", f"output_dir={output_dir}", "overwrite=true", *(overrides or [])])
    console.rule("[bold]zoo demo: shapes world → SFT shapes-vlm → evaluation")
    metrics = train(cfg)
    policy = load_policy(Path(cfg.output_dir) / "model")
    results = evaluate(policy, Path(cfg.data.path))
    results["train"] = {k: metrics[k] for k in ("global_step", "train_seconds", "parameters")}
    results["seconds"] = round(time.perf_counter() - start, 1)
    out = Path(cfg.output_dir) / "eval.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    console.print(report_table(results, f"SFT shapes-vlm ({metrics['global_step']} steps)"))
    console.print(f"demo finished in {results['seconds']} s · model in {cfg.output_dir}/model · results in {out}")
    return results
