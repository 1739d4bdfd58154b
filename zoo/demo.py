"""`zoo demo` / `make demo`: the embedded default end to end on a laptop CPU.

Generates the shapes world, trains the SFT `shapes-vlm` base, and evaluates it: object recall of
captions on the unbiased test split, and how often it names the absent partner on the
bias-trigger split — the hallucination that the alignment recipes exist to remove. Then aligns it
twice from the same base on the same relative-preference pairs, with the same steps and lr: the
control (`recipe=sft_chosen`, fine-tuning on the chosen captions) and DPO (`recipe=dpo`); evaluates
both, pushes the base and DPO (with the control's results beside its own) to the local hub as the
zoo entries ``shapes-vlm`` and ``shapes-vlm.dpo`` (repos ``zoo/shapes-vlm``, ``zoo/shapes-vlm-dpo``;
`zoo.build.push_entry`), loads the aligned model back by name with `zoo.load` and prints the three
side by side, each figure with its bootstrap 95 % interval.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.suites import run_suite
from zoo.results import write_results
from zoo.train.run import compose_config, train


def _cell(results: dict, task: str, metric: str) -> str:
    value = results[task].get(metric)
    return "n/a" if value is None else f"{value:.3f}"


def report_table(results: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("split", "recall ↑", "CHAIR_i ↓", "CHAIR_s ↓", "names the absent partner ↓", "empty captions ↓"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, task in (("test", "chair"), ("trigger", "chair_trigger")):
        table.add_row(split, *(_cell(results, task, m) for m in
                               ("recall", "chair_i", "chair_s", "partner_hallucination", "empty_rate")))
    table.caption = "yes/no accuracy / F1: POPE adversarial (test) " + " · bias trigger (absent partner) ".join(
        f"{results[task]['accuracy']:.3f}/{results[task]['f1']:.3f}" for task in ("pope_adversarial", "pope_trigger")
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
    """SFT → eval; then (``align``) the control and DPO → eval → push base and DPO to the local hub → `load` → compare.

    ``overrides`` go to the SFT run; ``align_overrides`` to the DPO run (default: the data and
    trainer overrides among ``overrides``). Returns the SFT results (and, aligned, ``["control"]``, ``["aligned"]``).
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
    console.rule("[bold]control (SFT on the chosen captions) and DPO from the SFT base → evaluation → local hub → zoo.load")
    if align_overrides is None:
        align_overrides = [o for o in overrides if o.startswith(("data.", "data_root", "trainer.", "seed"))]
    base = ["model=pretrained", f"model.path={run / 'model'}", "overwrite=true", *align_overrides]
    control_cfg = compose_config(["recipe=sft_chosen", f"output_dir={output_dir}-sft-chosen", *base])
    control_run, control_results, _ = _train_and_eval(control_cfg, "control: SFT on the chosen", console)
    dpo_cfg = compose_config(["recipe=dpo", f"output_dir={output_dir}-dpo", *base])
    dpo_run, dpo_results, _ = _train_and_eval(dpo_cfg, "shapes-vlm.dpo", console)
    controls = dpo_run / "controls"  # the card of shapes-vlm.dpo shows these beside its own results
    controls.mkdir(exist_ok=True)
    shutil.copy2(control_run / "results.json", controls / "1-sft-chosen.json")
    shutil.copy2(out, controls / "2-sft-base.json")
    hub = hub or LocalHub()
    revisions = {name: push_entry(name, path, hub, message="zoo demo")
                 for name, path in (("shapes-vlm", run), ("shapes-vlm.dpo", dpo_run))}
    aligned = load("shapes-vlm.dpo", hub=hub)
    console.print(f"loaded [bold]shapes-vlm.dpo[/] from the {aligned.source} ({hub.root}), revision {aligned.revision}")
    console.print(compare_table([control_results, results, aligned.results]))
    console.print(f"demo finished in {round(time.perf_counter() - start, 1)} s · runs {run}, {control_run}, {dpo_run} · "
                  f"local hub revisions {revisions}")
    return {**results, "control": control_results, "aligned": aligned.results}
