"""`zoo demo` / `make demo`: the embedded default end to end on a laptop CPU.

Generates the shapes world, trains the SFT `shapes-vlm` base, and evaluates it: object recall of
captions on the unbiased test split, and how often it names the absent partner on the
bias-trigger split — the hallucination that the alignment recipes exist to remove. Then aligns it
with DPO (`recipe=dpo`), evaluates that, pushes both to the local hub as the zoo entries ``shapes-vlm``
and ``shapes-vlm.dpo`` (repos ``zoo/shapes-vlm``, ``zoo/shapes-vlm-dpo``; `zoo.build.push_entry`), loads
the aligned model back by name with `zoo.load` and prints the
comparison.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.suites import run_suite
from zoo.results import write_results
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


def _train_and_eval(cfg, title: str, console: Console) -> tuple[Path, dict, dict]:
    from zoo.models import load_policy

    metrics = train(cfg)
    run = Path(cfg.output_dir)
    policy = load_policy(run / "model")
    train_info = {k: metrics[k] for k in ("global_step", "train_seconds", "parameters")}
    results, samples = run_suite(policy, "demo", model_name=title, source={"world": str(cfg.data.path)},
                                 config={"train": train_info}, return_samples=True)
    write_results(results, samples, run / "results.json")
    console.print(report_table(results["results"], f"{title} ({metrics['global_step']} steps)"))
    return run, results, metrics


def run_demo(output_dir: str = "runs/demo", overrides: list[str] | None = None, align: bool = True,
             align_overrides: list[str] | None = None, hub=None) -> dict:
    """SFT → eval; then (``align``) DPO → eval → push both to the local hub → `load` by name → compare.

    ``overrides`` go to the SFT run; ``align_overrides`` to the DPO run (default: the data and
    trainer overrides among ``overrides``). Returns the SFT results (and, aligned, ``["aligned"]``).
    """
    from zoo.build import push_entry
    from zoo.hub import LocalHub
    from zoo.results import compare_table
    from zoo.zoo_model import load

    console = Console()
    start = time.perf_counter()
    overrides = list(overrides or [])
    console.rule("[bold]zoo demo: shapes world → SFT shapes-vlm → evaluation")
    cfg = compose_config(["recipe=sft", f"output_dir={output_dir}", "overwrite=true", *overrides])
    run, results, metrics = _train_and_eval(cfg, "shapes-vlm (SFT)", console)
    out = run / "results.json"
    if not align:
        console.print(f"demo finished in {round(time.perf_counter() - start, 1)} s · model in {run / 'model'} · "
                      f"results in {out}")
        return results
    console.rule("[bold]DPO from the SFT base → evaluation → local hub → zoo.load")
    if align_overrides is None:
        align_overrides = [o for o in overrides if o.startswith(("data.", "data_root", "trainer.", "seed"))]
    dpo_cfg = compose_config(["recipe=dpo", "model=pretrained", f"model.path={run / 'model'}",
                              f"output_dir={output_dir}-dpo", "overwrite=true", *align_overrides])
    dpo_run, dpo_results, _ = _train_and_eval(dpo_cfg, "shapes-vlm.dpo", console)
    hub = hub or LocalHub()
    revisions = {name: push_entry(name, path, hub, message="zoo demo")
                 for name, path in (("shapes-vlm", run), ("shapes-vlm.dpo", dpo_run))}
    aligned = load("shapes-vlm.dpo", hub=hub)
    console.print(f"loaded [bold]shapes-vlm.dpo[/] from the {aligned.source} ({hub.root}), revision {aligned.revision}")
    console.print(compare_table([results, aligned.results]))
    console.print(f"demo finished in {round(time.perf_counter() - start, 1)} s · runs {run}, {dpo_run} · "
                  f"local hub revisions {revisions}")
    return {**results, "aligned": aligned.results}
