"""The `zoo` command: a small table of subcommand → function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _config_error(e: Exception) -> str:
    """The one line of a configuration error (Hydra wraps a constructor's error in its own)."""
    cause = e.__cause__ if e.__cause__ is not None else e
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


def cmd_train(args: argparse.Namespace) -> int:
    from hydra.errors import HydraException

    from zoo.train.run import compose_config, train
    from zoo.train.validate import ConfigError

    try:
        cfg = compose_config(args.overrides)
        metrics = train(cfg)
    except (ConfigError, HydraException) as e:  # a wrong override or value: say which, no traceback
        print(f"zoo train: {_config_error(e)}", file=sys.stderr)
        return 2
    # the closing lines: final losses, the run folder, where the logs are and the command that shows each, and
    # what comes next (evaluate; after SFT, DPO from this model)
    from shlex import quote

    run, model = Path(cfg.output_dir), quote(str(Path(cfg.output_dir) / "model"))
    shown = {"train/loss": "train/loss", "val/loss": "val/loss", "train/rewards/margin": "reward margin",
             "train/rewards/accuracy": "reward accuracy"}
    final = [f"{label} {metrics[key]:.4f}" for key, label in shown.items() if isinstance(metrics.get(key), float)]
    done = f"{cfg.get('recipe_name', 'train')} done: {metrics['global_step']} steps in {metrics['train_seconds']} s"
    lines = [" · ".join([done, *final]),
             f"  model written to {run / 'model'}",
             f"  run folder   {run}  (recipe.yaml, metrics.json, checkpoints/, logs/)"]
    for i, (name, log) in enumerate(metrics.get("logs", {}).items()):
        view = f"  ·  {log['view']}" if log["view"] else ""
        lines.append(f"  {'logs' if i == 0 else '':<12} {name}: {log['path']}{view}")
    world = ""
    if cfg.data.get("world") and Path(str(cfg.data.path)) != default_world():
        world = f" --world {quote(str(cfg.data.path))}"
    lines.append(f"  next         zoo eval {model} --suite smoke{world} --output {quote(str(run / 'results.json'))}")
    if str(cfg.module.get("_target_", "")).endswith("SFTModule"):
        lines.append(f"               zoo train recipe=dpo model=pretrained model.path={model}")
    print("\n".join(lines))
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    from modalities.synthetic import ensure_world, get_world

    config = dict(kv.split("=", 1) for kv in args.set)
    config = {k: (float(v) if "." in v else int(v)) for k, v in config.items()}
    try:
        get_world(args.world)
    except KeyError as e:  # an unknown world: the message lists the known ones
        print(f"zoo world: {e.args[0]}", file=sys.stderr)
        return 2
    path = ensure_world(args.world, args.out, config)
    print(f"{args.world} world in {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from zoo.demo import run_demo

    run_demo(output_dir=args.output_dir, overrides=args.overrides, parallel=False if args.sequential else None)
    return 0


def cmd_bdhs(args: argparse.Namespace) -> int:
    from hydra.utils import instantiate

    from zoo.train.run import compose_config

    cfg = compose_config(["recipe=bdhs", *args.overrides])
    source = instantiate(cfg.module.pairs)  # the offline BDHS pair source of the recipe
    policy = instantiate(cfg.model)
    try:
        source.prepare(policy)
    except ValueError as e:
        print(f"zoo bdhs: {e}", file=sys.stderr)
        return 2
    summary = source.summary
    rate = summary["pairs_per_second"]
    print(f"{summary['pairs']} BDHS pairs in {cfg.module.pairs.output} · {summary['generated_now']} new in "
          f"{summary['seconds']} s ({rate if rate is not None else '–'} pairs/s) · mean tries {summary['mean_tries']} · repetitive {summary['repetitive_fraction']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from zoo.entries import ENTRIES, list_models
    from zoo.hub import LocalHub

    hub = LocalHub()
    table = Table(title=f"zoo models (local hub: {hub.root})")
    for col in ("name", "also", "backbone", "modalities", "recipe", "repo", "local hub"):
        table.add_column(col, overflow="fold")  # overrides are copied from here: never cut
    for e in list_models():
        here = hub.main(e.repo) if hub.exists(e.repo) else ("– (zoo build " + e.name + ")" if e.embedded else "–")
        also = ",".join(ENTRIES.aliases(e.name))  # the older names, still accepted
        cells = (e.name, also, e.backbone, ",".join(e.modalities), " ".join(e.recipe), e.repo, here)
        table.add_row(*(escape(c) for c in cells))  # overrides hold [lists] that rich would read as markup
    Console(width=max(160, Console().width)).print(table)  # names must not be cut, even when piped
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from zoo.build import build_entry
    from zoo.entries import ENTRIES

    try:
        entry = ENTRIES.get(args.name)  # a name or an older alias
    except KeyError as e:  # the message lists the known names
        print(f"zoo build: {e.args[0]}", file=sys.stderr)
        return 2
    if not entry.embedded:
        print(f"zoo build: {entry.name} is not built from the embedded world: {entry.how_to_make()}", file=sys.stderr)
        return 2
    rev = build_entry(entry.name, runs_root=args.runs_root, extra=tuple(args.overrides))
    print(f"{args.name} built and pushed to the local hub: {rev.describe()}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from zoo.hub import HubError, push_run, push_run_to_hf

    try:
        if args.hub == "hf":
            rev = push_run_to_hf(args.run_dir, args.repo, message=args.message or "")
            done = f"HF Hub, revision {rev}"
        else:
            done = f"local hub: {push_run(args.run_dir, args.repo, message=args.message or '').describe()}"
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = " (log in with `hf auth login` or set HF_TOKEN)" if status in (401, 403) else ""
        first = (str(e).splitlines() or [type(e).__name__])[0]
        print(f"zoo push: the HF Hub refused the push: {first}{hint}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, HubError) as e:
        print(f"zoo push: {e}", file=sys.stderr)
        return 2
    print(f"pushed {args.run_dir} to {args.repo} ({done})")
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    from zoo.hub import HubError, LocalHub

    hub = LocalHub()
    try:
        reclaimed = hub.gc(args.repo, args.kind)
    except HubError as e:
        print(f"zoo hub gc: {e}", file=sys.stderr)
        return 2
    done = {repo: r for repo, r in reclaimed.items() if r is not None}
    for repo, (n, size) in done.items():
        if n:
            print(f"{repo}: removed {n} leftover(s) of killed pushes ({size / 2**20:.1f} MiB)")
    for repo in reclaimed.keys() - done.keys():
        print(f"{repo}: skipped, a push to it is in progress (run gc again later)")
    n, size = sum(n for n, _ in done.values()), sum(size for _, size in done.values())
    print(f"reclaimed {n} leftover(s), {size / 2**20:.1f} MiB, in {len(done)} repo(s) of {hub.root}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from zoo.hub import HubError
    from zoo.leaderboard import submit

    try:
        request = submit(args.model, repo=args.repo, to_hf=args.hub == "hf", revision=args.revision,
                         precision=args.precision, weight_type=args.weight_type)
    except (HubError, ValueError) as e:
        print(f"zoo submit: {e}", file=sys.stderr)
        return 2
    print(f"submitted {request['model']}@{request['revision']} to {args.repo} ({args.hub}): {request['status']}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from zoo.hub import HubError
    from zoo.leaderboard import leaderboard_folder, read_submissions, render_html

    try:
        folder = leaderboard_folder(repo=args.repo, from_hf=args.hub == "hf")
    except HubError as e:
        print(f"zoo leaderboard: {e} (submit a model first: zoo submit NAME)", file=sys.stderr)
        return 2
    subs = read_submissions(folder)
    out = render_html(subs, args.html)
    print(f"leaderboard with {len(subs)} submission(s) written to {out}")
    return 0


def default_world() -> Path:
    """``$ZOO_DATA/shapes-0`` (or ``data/shapes-0``), the default world of the shapes recipes."""
    return Path(os.environ.get("ZOO_DATA", "data")) / "shapes-0"


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmarks.suites import SUITES, run_suite
    from zoo.hub import HubError, folder_id
    from zoo.results import compare_table, write_results
    from zoo.zoo_model import load

    if args.suite not in SUITES:  # before loading a model for nothing
        print(f"zoo eval: unknown suite {args.suite!r}; suites: {', '.join(sorted(SUITES))}", file=sys.stderr)
        return 2
    try:  # a local folder, a zoo name or a hub repo, resolved as `zoo.load` does
        model = load(args.model, revision=args.revision)
    except (HubError, OSError, ValueError) as e:
        print(f"zoo eval: {e}", file=sys.stderr)
        return 2
    # what was evaluated, exactly: the resolved revision, or for a folder the revision id its files would get
    revision = folder_id(model.path) if model.source == "folder" else model.revision
    world = Path(args.world) if args.world else default_world()
    if not (world / "world.json").exists():
        print(f"generating the shapes world in {world} …", file=sys.stderr)
        from modalities.synthetic import ensure_world

        ensure_world("shapes", world)  # ShapesConfig's defaults are the shapes data recipe's

    policy = model.policy
    if args.device:
        policy = policy.to(args.device)
    results, samples = run_suite(
        policy, args.suite, model_name=args.name or str(args.model), revision=revision, limit=args.limit,
        seed=args.seed, source={"world": str(world)}, batch_size=args.batch_size, return_samples=True,
    )
    path = write_results(results, samples, args.output)
    from rich.console import Console

    Console().print(compare_table([results]))
    print(f"results written to {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from zoo.results import compare_markdown, compare_table, load_results

    try:
        results = [load_results(p) for p in args.results]
    except (FileNotFoundError, ValueError) as e:
        print(f"zoo compare: {e}", file=sys.stderr)
        return 2
    if args.markdown:
        print(compare_markdown(results), end="")
    else:
        from rich.console import Console

        Console().print(compare_table(results))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from benchmarks.plots import plot_run

    try:
        path = plot_run(args.run_dir, args.output)
    except (FileNotFoundError, ValueError) as e:
        print(f"zoo plot: {e}", file=sys.stderr)
        return 2
    print(f"curves written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo", description="Align multimodal models with preferences.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe: zoo train recipe=sft output_dir=DIR [Hydra overrides]")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_steps=300 model=shapes-vlm")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bdhs", help="write an offline BDHS pair dataset: zoo bdhs generate model=… [overrides]")
    p.add_argument("action", choices=["generate"])
    p.add_argument("overrides", nargs="*", help="Hydra overrides of recipe=bdhs, e.g. model=pretrained "
                   "model.path=runs/demo/model output_dir=runs/bdhs module.pairs.config.mask_threshold=0.9")
    p.set_defaults(func=cmd_bdhs)

    p = sub.add_parser("list", help="the zoo's models and whether the local hub holds them")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("build", help="train an embedded zoo entry (and its base) and push it to the local hub")
    p.add_argument("name")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for its recipe")
    p.add_argument("--runs-root", default="runs")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("push", help="push a run folder to a hub: zoo push RUN_DIR --repo ORG/NAME")
    p.add_argument("run_dir")
    p.add_argument("--repo", required=True)
    p.add_argument("--hub", default="local", choices=["local", "hf"])
    p.add_argument("--message", default=None)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("hub", help="local hub upkeep: zoo hub gc [ORG/NAME] reclaims what killed pushes left")
    p.add_argument("action", choices=["gc"])
    p.add_argument("repo", nargs="?", default=None, help="one repo (default: every repo)")
    p.add_argument("--kind", default=None, choices=["model", "dataset"], help="default: both")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("submit", help="submit a model's results to the leaderboard: zoo submit NAME_OR_REPO")
    p.add_argument("model")
    p.add_argument("--revision", default=None)
    p.add_argument("--repo", default="zoo/leaderboard", help="the leaderboard dataset repo")
    p.add_argument("--hub", default="local", choices=["local", "hf"])
    p.add_argument("--precision", default="float32")
    p.add_argument("--weight-type", default="Original")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("leaderboard", help="render the leaderboard: zoo leaderboard --html out.html")
    p.add_argument("--html", required=True)
    p.add_argument("--repo", default="zoo/leaderboard")
    p.add_argument("--hub", default="local", choices=["local", "hf"])
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("world", help="generate a synthetic world: zoo world shapes DIR [--set n_train=100]")
    p.add_argument("world", help="a registered synthetic world (modalities.synthetic.WORLDS), e.g. shapes")
    p.add_argument("out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="world config field")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("demo", help="the embedded default end to end: world → SFT → evaluation")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--sequential", action="store_true",
                   help="train the control and DPO one after the other (default: at once, each on half the cores)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="run a benchmark suite: zoo eval MODEL_DIR --suite NAME --output results.json")
    p.add_argument("model", help="a local model folder (e.g. runs/sft/model), a zoo name or a hub repo")
    p.add_argument("--suite", required=True, help="a suite name in benchmarks.suites.SUITES")
    p.add_argument("--limit", type=int, default=None, help="at most N items per task")
    p.add_argument("--world", default=None, help="shapes world folder (default $ZOO_DATA/shapes-0 or data/shapes-0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="model name recorded in the results (default: the MODEL argument)")
    p.add_argument("--revision", default=None, help="the hub revision to evaluate (an id or a prefix; default "
                   "main); the resolved id is recorded in the results")
    p.add_argument("--device", default=None, help="e.g. cuda; default: where the model loads")
    p.add_argument("--output", default="results.json", help="results JSON (samples go to <stem>.samples.jsonl)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="compare results files: zoo compare A.json B.json [--markdown]")
    p.add_argument("results", nargs="+", help="results JSON files written by zoo eval")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of a rich one")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="training curves of a run folder: zoo plot RUN_DIR [--output PNG]")
    p.add_argument("run_dir")
    p.add_argument("--output", default=None, help="PNG path (default RUN_DIR/curves.png)")
    p.set_defaults(func=cmd_plot)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
