"""`zoo demo` / `make demo`: the embedded default end to end on a laptop CPU.

Generates the shapes world, trains the SFT `shapes-vlm` base, and evaluates it: object recall of
captions on the unbiased test split, and how often it names the absent partner on the
bias-trigger split — the hallucination that the alignment recipes exist to remove.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.results import run_suite, write_results
from zoo.train.run import compose_config, train


def report_table(results: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("split", "recall", "CHAIR_i", "CHAIR_s", "partner hallucination"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, task in (("test", "chair"), ("trigger", "chair_trigger")):
        m = results[task]
        partner = m["partner_hallucination"]
        table.add_row(split, f"{m['recall']:.3f}", f"{m['chair_i']:.3f}", f"{m['chair_s']:.3f}",
                      "—" if partner is None else f"{partner:.3f}")
    table.caption = "POPE (test) accuracy / F1: " + ", ".join(
        f"{kind} {results[f'pope_{kind}']['accuracy']:.3f}/{results[f'pope_{kind}']['f1']:.3f}"
        for kind in ("random", "popular", "adversarial")
    )
    return table


def run_demo(output_dir: str = "runs/demo", overrides: list[str] | None = None) -> dict:
    from zoo.models import load_policy

    console = Console()
    start = time.perf_counter()
    cfg = compose_config(["recipe=sft", f"output_dir={output_dir}", "overwrite=true", *(overrides or [])])
    console.rule("[bold]zoo demo: shapes world → SFT shapes-vlm → evaluation")
    metrics = train(cfg)
    model_dir = Path(cfg.output_dir) / "model"
    policy = load_policy(model_dir)
    train_info = {k: metrics[k] for k in ("global_step", "train_seconds", "parameters")}
    results, samples = run_suite(policy, "demo", model_name=str(model_dir), source={"world": str(cfg.data.path)},
                                 config={"train": train_info}, return_samples=True)
    out = Path(cfg.output_dir) / "results.json"
    write_results(results, samples, out)
    seconds = round(time.perf_counter() - start, 1)
    console.print(report_table(results["results"], f"SFT shapes-vlm ({metrics['global_step']} steps)"))
    console.print(f"demo finished in {seconds} s · model in {model_dir} · results in {out}")
    return results
