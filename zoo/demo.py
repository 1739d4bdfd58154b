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

import os
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
    _print_report(console, title, results, metrics)
    return run, results, metrics


def _print_report(console: Console, title: str, results: dict, metrics: dict) -> None:
    console.print(report_table(results["results"], f"{title} ({metrics['global_step']} steps)"))


def _child_train_and_eval(cfg, title: str, threads: int) -> tuple[Path, dict, dict]:
    """`_train_and_eval` in a worker process: its own share of the cores, its output to ``<run>/demo.log``."""
    import torch

    torch.set_num_threads(threads)
    log = Path(cfg.output_dir) / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:  # the parent draws the progress; two live progress bars on one terminal would garble
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        return _train_and_eval(cfg, title, Console(file=f, width=100))


def _steps_logged(run: Path) -> int:
    """The last training step the run's CSV log holds (written every 100 steps: coarse, but free)."""
    import csv

    logs = sorted((run / "logs" / "csv").glob("version_*/metrics.csv"))
    if not logs:
        return 0
    try:
        with logs[-1].open() as f:
            return max((int(row["step"]) + 1 for row in csv.DictReader(f) if row.get("step")), default=0)
    except (OSError, ValueError, KeyError):  # being written
        return 0


def _train_and_eval_side_by_side(jobs: list[tuple], console: Console, parallel: bool) -> list[tuple[Path, dict, dict]]:
    """Train and evaluate independent recipes ``[(cfg, title), …]``: in parallel worker processes that split the
    cores between them (on 2 cores, two 1-thread runs finish sooner than two 2-thread runs in turn), or in turn."""
    if not parallel:
        return [_train_and_eval(cfg, title, console) for cfg, title in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    threads = max(1, (os.cpu_count() or 2) // len(jobs))
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"), TimeElapsedColumn())
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool, \
            Progress(*columns, console=console) as bar:
        futures = [pool.submit(_child_train_and_eval, cfg, title, threads) for cfg, title in jobs]
        tasks = [bar.add_task(title, total=cfg.trainer.max_steps, stage="training") for cfg, title in jobs]
        while not all(f.done() for f in futures):
            for (cfg, _), task, future in zip(jobs, tasks, futures):
                steps = _steps_logged(Path(cfg.output_dir))
                stage = "done" if future.done() else "evaluating" if steps >= cfg.trainer.max_steps else "training"
                bar.update(task, completed=steps, stage=stage)
            time.sleep(1)
        out = [f.result() for f in futures]  # a failed run raises here, with its log in <run>/demo.log
        for task, (cfg, _) in zip(tasks, jobs):
            bar.update(task, completed=cfg.trainer.max_steps, stage="done")
    for (_, title), (_, results, metrics) in zip(jobs, out):
        _print_report(console, title, results, metrics)
    return out


def run_demo(output_dir: str = "runs/demo", overrides: list[str] | None = None, align: bool = True,
             align_overrides: list[str] | None = None, hub=None, parallel: bool | None = None) -> dict:
    """SFT → eval; then (``align``) the control and DPO → eval → push base and DPO to the local hub → `load` → compare.

    ``overrides`` go to the SFT run; ``align_overrides`` to the DPO run (default: the data and
    trainer overrides among ``overrides``). ``parallel``: train the control and DPO at once in two worker
    processes (default: when the machine has 2 or more cores). Returns the SFT results (and, aligned,
    ``["control"]``, ``["aligned"]``).
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
    dpo_cfg = compose_config(["recipe=dpo", f"output_dir={output_dir}-dpo", *base])
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2
    (control_run, control_results, _), (dpo_run, _, _) = _train_and_eval_side_by_side(
        [(control_cfg, "control: SFT on the chosen"), (dpo_cfg, "shapes-vlm.dpo")], console, parallel)
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
