"""The alignment table: every preference recipe beside its controls, over seeds, with error bars.

    python -m benchmarks.alignment --out runs/alignment                     # the README's table (3 seeds;
                                                                            # online BDHS: seed 0, --slow-seeds)
    python -m benchmarks.alignment --rows sft_chosen dpo --seeds 0 --steps 50   # a quick look
    python -m benchmarks.alignment --rows sft_chosen dpo llf llf_refiner llf_refiner_quarter \
        llf_trained_critic llf_prompted_critic --seeds 0                    # LLF beside binary DPO and the control

Each row is trained from the same SFT base with ``zoo train`` (the base itself is trained first when
``--base`` does not exist) and evaluated with ``zoo eval … --suite demo`` — the commands a user runs, so
every figure can be reproduced one run at a time. A run whose ``results.json`` exists is reused
(``--force`` retrains). Written to ``--out``: one folder per row and seed, ``alignment.json`` (every
figure) and ``alignment.md`` (the table).

The table gives, per row and metric, the mean ± sd over seeds and the bootstrap 95 % interval over items
(all seeds' items pooled); and for each method the change of bias-trigger CHAIR_i against the control
(SFT on the chosen responses, same data, steps and lr) with the interval of the paired difference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import bootstrap_intervals, mean_sd, paired_difference
from benchmarks.suites import build_suite
from zoo.results import atomic_write, load_results, load_samples, metric_info

SUITE = "demo"
CONTROL = "sft_chosen"


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    recipe: str | None  # None: the SFT base itself, evaluated as it is
    slow: bool = False  # trained only at the --slow-seeds (online generation every step)
    overrides: tuple[str, ...] = ()  # added to the recipe; may name {base}, {world} and the HELPERS' models


ROWS: dict[str, Row] = {
    "sft_base": Row("SFT base", None),
    "sft_chosen": Row("control: SFT on the chosen", "sft_chosen"),
    "dpo": Row("DPO (+ SFT term)", "dpo"),
    "dpo_no_sft": Row("control: DPO without the SFT term", "dpo_no_sft"),
    "bdhs": Row("offline BDHS", "bdhs"),
    "bdhs_rewrite": Row("offline BDHS, the paper's rewrite (no insertion)", "bdhs", overrides=(
        "module.pairs.config.insert=0.0", "module.pairs.config.rewrite=true", "module.pairs.config.noise_step=100")),
    "online_bdhs": Row("online BDHS", "online_bdhs", slow=True),
    "online_dpo": Row("online DPO (verifier, K = 8)", "online_dpo", slow=True),
    "mixed_dpo": Row("Mixed-DPO (p = 0.5)", "mixed_dpo", slow=True),
    "grpo": Row("GRPO (verifier rewards, K = 8)", "grpo", slow=True),
    "online_dpo_k4": Row("online DPO (verifier, K = 4)", "online_dpo", slow=True, overrides=("module.pairs.k=4",)),
    "online_dpo_prompted": Row("online DPO (prompted judge, K = 4)", "online_dpo", slow=True, overrides=(
        "pairs=online_dpo_prompted", "module.pairs.judge.path={judge}", "module.pairs.k=4")),
    "online_dpo_rm": Row("online DPO (reward model, K = 8)", "online_dpo", slow=True,
                         overrides=("pairs=online_dpo_rm", "module.pairs.judge.path={reward}")),
    "llf": Row("DPO+LLF (world critic; the policy refines)", "llf"),
    "llf_refiner": Row("DPO+LLF (world critic, trained refiner)", "llf", overrides=("module.pairs.refiner={refiner}",)),
    "llf_refiner_quarter": Row("DPO+LLF (world critic, trained refiner, 25 % of prompts)", "llf",
                               overrides=("module.pairs.refiner={refiner}", "module.pairs.fraction=0.25")),
    "llf_no_critique": Row("control: LLF with a constant critique (trained refiner)", "llf",
                           overrides=("critic=constant", "module.pairs.refiner={refiner}")),
    "llf_refiner_other": Row("DPO+LLF (world critic, refiner trained on other images)", "llf",
                             overrides=("module.pairs.refiner={refiner_other}",)),
    "llf_trained_critic": Row("DPO+LLF (trained critic, trained refiner)", "llf", overrides=(
        "critic=prompted", "module.pairs.critic.path={critic}", "module.pairs.refiner={refiner}")),
    "llf_prompted_critic": Row("DPO+LLF (the SFT base as critic, trained refiner)", "llf", overrides=(
        "critic=prompted", "module.pairs.critic.path={base}", "module.pairs.refiner={refiner}")),
}
DEFAULT_ROWS = ("sft_base", "sft_chosen", "dpo", "dpo_no_sft", "bdhs", "online_bdhs", "online_dpo", "mixed_dpo", "grpo")
# The models (and data) rows use besides the base: made once under OUT/helpers/<name> by the commands a user runs,
# named in a row's overrides as {name}. Each: (the command — "zoo …" or "python …" — and the result inside its folder).
HELPERS: dict[str, tuple[tuple[str, ...], str]] = {
    "judge": (("zoo", "train", "recipe=sft", "model=pretrained", "model.path={base}", "data.path={world}",
               "data.train_split=pairs", "data.format=pairwise_judge", "data.val_split=null", "data.max_length=240",
               "trainer.max_steps=400", "output_dir={here}", "overwrite=true"), "model"),
    "reward": (("zoo", "train", "recipe=reward", "model=pretrained", "model.path={base}", "data.path={world}",
                "output_dir={here}", "overwrite=true"), "model"),
    "critiques": (("python", "-m", "zoo.align.critics", "triples", "{world}", "--out", "{here}"), ""),
    # triples on images LLF never prompts with: the ranked split's captions and the train split's (true, partial) ones
    "critiques_other": (("python", "-m", "zoo.align.critics", "triples", "{world}", "--out", "{here}", "--split", "ranked",
                         "train", "--task", "caption", "caption_ranked", "--limit", "4000"), ""),
    "refiner_other": (("zoo", "train", "recipe=refiner_sft", "model=pretrained", "model.path={base}",
                       "data.path={critiques_other}", "data.media_root={world}", "output_dir={here}", "overwrite=true"),
                      "model"),
    "critic": (("zoo", "train", "recipe=critic_sft", "model=pretrained", "model.path={base}", "data.path={critiques}",
                "data.media_root={world}", "output_dir={here}", "overwrite=true"), "model"),
    "refiner": (("zoo", "train", "recipe=refiner_sft", "model=pretrained", "model.path={base}",
                 "data.path={critiques}", "data.media_root={world}", "output_dir={here}", "overwrite=true"), "model"),
}
# (task, metric) columns of the table, the headline first
COLUMNS = (
    ("chair_trigger", "chair_i"),
    ("chair_trigger", "recall"),
    ("chair_trigger", "empty_rate"),
    ("chair", "chair_i"),
    ("chair", "recall"),
    ("pope_trigger", "accuracy"),
    ("pope_adversarial", "f1"),
)
HEADLINE = COLUMNS[0]
# paired differences against the control: the headline, and what a method must not pay for it
VERSUS = (HEADLINE, ("chair_trigger", "recall"), ("pope_trigger", "accuracy"))


def _zoo(*args: str) -> None:
    """Run ``zoo ARGS`` (this interpreter's), failing loudly with the command."""
    cmd = [sys.executable, "-m", "zoo.cli", *args]
    print("$ zoo " + " ".join(args), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"failed: zoo {' '.join(args)}")


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(arg: str, base: Path, out: Path, world: Path, here: Path | None = None) -> str:
    """``arg`` with {base}, {world}, {here} and each helper's {name} replaced (a helper is made when first named)."""
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key in ("base", "world") or (key == "here" and here is not None):
            return str({"base": base, "world": world, "here": here}[key])
        if key not in HELPERS:
            raise SystemExit(f"unknown placeholder {{{key}}} in {arg!r}: known are base, world, {', '.join(HELPERS)}")
        return str(helper(key, base, out, world))

    return _PLACEHOLDER.sub(value, arg)


def helper(name: str, base: Path, out: Path, world: Path) -> Path:
    """The helper model (or data) ``name`` (`HELPERS`), made under OUT/helpers/<name> unless it is there."""
    command, result = HELPERS[name]
    here = out / "helpers" / name
    done = here / result / ("config.json" if result == "model" else "critiques.jsonl")
    if not done.exists():
        args = [fill(a, base, out, world, here) for a in command]
        if args[0] == "zoo":
            _zoo(*args[1:])
        else:
            print("$ " + " ".join(args), flush=True)
            if subprocess.run([sys.executable, *args[1:]]).returncode != 0:
                raise SystemExit(f"failed: {' '.join(args)}")
    return here / result if result else here


def results_name(world: Path, eval_world: Path) -> str:
    """A run's results file: ``results.json`` on its own world, ``results.<eval world folder>.json`` on another."""
    return "results.json" if eval_world.resolve() == world.resolve() else f"results.{eval_world.name}.json"


def run_row(name: str, seed: int, base: Path, out: Path, world: Path, extra: list[str], force: bool,
            eval_world: Path | None = None) -> Path:
    """Train (unless the base row, or its model is there already) and evaluate one row at one seed on
    ``eval_world`` (default: the training world); the run folder."""
    row = ROWS[name]
    eval_world = eval_world or world
    run = out / (name if row.recipe is None else f"{name}-s{seed}")
    results = run / results_name(world, eval_world)
    if results.exists() and not force:
        return run
    model = base
    trained = (run / "model" / "config.json").exists() and not force
    if row.recipe is not None and trained:
        model = run / "model"  # trained for another world's evaluation: evaluate it here too
    elif row.recipe is not None:
        overrides = [fill(o, base, out, world) for o in row.overrides]
        _zoo("train", f"recipe={row.recipe}", "model=pretrained", f"model.path={base}", f"seed={seed}",
             f"output_dir={run}", "overwrite=true", f"data_root={world.parent}", *overrides, *extra)
        model = run / "model"
    _zoo("eval", str(model), "--suite", SUITE, "--world", str(eval_world), "--output", str(results),
         "--name", f"{name} (seed {seed})" if row.recipe else name)
    return run


def _records(tasks: dict, results: Path) -> dict[str, tuple[list[str], list]]:
    """Per task, the item ids and judge records of a run's samples (the scorer re-applied to the stored replies)."""
    by_task: dict[str, list[dict]] = {}
    for sample in load_samples(results):
        by_task.setdefault(sample["task"], []).append(sample)
    return {task: ([s["id"] for s in samples],
                   tasks[task].judge([{"id": s["id"], "reference": s["reference"]} for s in samples],
                                     [s["reply"] for s in samples]))
            for task, samples in by_task.items() if task in tasks}


def summarize(runs: dict[str, list[Path]], world: Path, n_boot: int = 1000,
              results: str = "results.json") -> dict[str, Any]:
    """Mean ± sd over seeds, pooled bootstrap intervals, and paired differences against the control, from each
    run's ``results`` file (scored on ``world``). The seeds score the same items, so the bootstrap resamples
    items with all their seeds' records (`benchmarks.stats`: groups), not the records one by one."""
    tasks = {t.name: t for t in build_suite(SUITE, world=world)}
    records = {name: [_records(tasks, run / results) for run in paths] for name, paths in runs.items()}
    summary: dict[str, Any] = {"rows": {}, "vs_control": {}}
    for name, paths in runs.items():
        cells = {}
        for task, metric in COLUMNS:
            values = [load_results(run / results)["results"][task][metric] for run in paths]
            ids = [i for per_seed in records[name] for i in per_seed[task][0]]
            pooled = [r for per_seed in records[name] for r in per_seed[task][1]]
            interval = bootstrap_intervals(tasks[task].aggregate, pooled, n_boot=n_boot, groups=ids).get(metric)
            mean, sd = mean_sd(values)
            cells[f"{task}/{metric}"] = {"values": values, "mean": mean, "sd": sd, "interval": interval}
        summary["rows"][name] = {"label": ROWS[name].label, "seeds": len(paths), "runs": [str(p) for p in paths],
                                 "metrics": cells}
    if CONTROL in runs:
        control = runs[CONTROL]
        for name, paths in runs.items():
            if name == CONTROL:
                continue
            summary["vs_control"][name] = {}
            for task, metric in VERSUS:
                # pair seed s of the method with seed s of the control (the base has one run: repeat it)
                n = max(len(paths), len(control))
                ids = [i for s in range(n) for i in records[CONTROL][s % len(control)][task][0]]
                if ids != [i for s in range(n) for i in records[name][s % len(paths)][task][0]]:
                    raise ValueError(f"{name} and the control were not scored on the same {task} items")
                a = [r for s in range(n) for r in records[CONTROL][s % len(control)][task][1]]
                b = [r for s in range(n) for r in records[name][s % len(paths)][task][1]]
                diff = paired_difference(tasks[task].aggregate, a, b, metric, n_boot=n_boot, groups=ids)
                ref = summary["rows"][CONTROL]["metrics"][f"{task}/{metric}"]["mean"]
                diff["relative"] = diff["diff"] / ref if diff["diff"] is not None and ref else None
                summary["vs_control"][name][f"{task}/{metric}"] = diff
    return summary


def _fmt(cell: dict) -> str:
    if cell["mean"] is None:
        return "n/a"
    text = f"{cell['mean']:.3f} ± {cell['sd']:.3f}"
    if cell["interval"]:
        text += f" [{cell['interval'][0]:.3f}, {cell['interval'][1]:.3f}]"
    return text


def _change(vs: dict | None, relative: bool) -> str:
    if not vs or vs["diff"] is None:
        return "—"
    rel = f"{100 * vs['relative']:+.0f} %, " if relative and vs["relative"] is not None else ""
    lo, hi = vs["interval"]
    return f"{rel}Δ {vs['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("" if vs["excludes_zero"] else " (includes 0)")


def markdown(summary: dict[str, Any]) -> str:
    """Two tables: per row, mean ± sd over seeds [pooled 95 % interval]; then each row's paired change vs the control."""
    heads = [f"{t} {m} {metric_info(m).arrow}".rstrip() for t, m in COLUMNS]
    lines = ["| row | seeds | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for row in summary["rows"].values():
        cells = [_fmt(row["metrics"][f"{t}/{m}"]) for t, m in COLUMNS]
        lines.append(f"| {row['label']} | {row['seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "| row | " + " | ".join(f"Δ {t} {m} vs control (paired 95 % interval)" for t, m in VERSUS) + " |",
              "|---|" + "---|" * len(VERSUS)]
    for name, row in summary["rows"].items():
        vs = summary["vs_control"].get(name) or {}
        cells = [_change(vs.get(f"{t}/{m}"), relative=(t, m) == HEADLINE) for t, m in VERSUS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/alignment", help="folder of the runs and the table")
    p.add_argument("--base", default=None, help="the SFT base model folder (default: OUT/sft-base, trained if missing)")
    p.add_argument("--world", default="data/shapes-0", help="the shapes world (generated if missing)")
    p.add_argument("--eval-world", default=None,
                   help="score the rows on another world's splits (e.g. unseen trigger images: `zoo world shapes DIR "
                        "--set seed=2 --set n_trigger=1000`); trained rows are reused, the results land beside them as "
                        "results.<DIR name>.json and the table as alignment.<DIR name>.md (default: --world)")
    p.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=list(ROWS),
                   help="rows to train and tabulate (default: %(default)s; the judge and LLF rows are asked by name: "
                        "they first make the models they use under OUT/helpers)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--slow-seeds", nargs="+", type=int, default=[0],
                   help="seeds of the slow rows (online BDHS generates every step: ~10 min a run on 2 CPU cores)")
    p.add_argument("--steps", type=int, default=None, help="trainer.max_steps of every aligned row (default: the recipe's)")
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate runs that have results")
    p.add_argument("overrides", nargs="*", help="Hydra overrides added to every training run")
    args = p.parse_args(argv)
    out, world = Path(args.out), Path(args.world)
    eval_world = Path(args.eval_world) if args.eval_world else world
    results = results_name(world, eval_world)
    tag = results.removeprefix("results").removesuffix(".json")  # "" on the training world, ".<DIR name>" else
    extra = list(args.overrides) + ([f"trainer.max_steps={args.steps}"] if args.steps else [])
    start = time.perf_counter()
    base = Path(args.base) if args.base else out / "sft-base" / "model"
    if not (base / "config.json").exists():
        if args.base:
            raise SystemExit(f"--base {base} is not a saved model folder")
        _zoo("train", "recipe=sft", f"output_dir={base.parent}", "overwrite=true", f"data_root={world.parent}")
    def seeds(row: Row) -> list[int]:
        return args.seeds[:1] if row.recipe is None else args.slow_seeds if row.slow else args.seeds

    runs = {name: [run_row(name, seed, base, out, world, extra, args.force, eval_world)
                   for seed in seeds(ROWS[name])] for name in args.rows}
    summary = summarize(runs, eval_world, results=results)
    summary.update(base=str(base), world=str(world), eval_world=str(eval_world), seeds=args.seeds, overrides=extra,
                   seconds=round(time.perf_counter() - start, 1))
    files = out / f"alignment{tag}.json", out / f"alignment{tag}.md"
    atomic_write(files[0], json.dumps(summary, indent=2) + "\n")  # rows in table order
    table = markdown(summary)
    atomic_write(files[1], table)
    print(table)
    print(f"written to {files[0]} and {files[1]} in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
