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
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return _hydra_hint(text)


def _hydra_hint(text: str) -> str:
    """Hydra's message, with what to do: the options of an unknown group choice, the + of a new key."""
    import re

    missing = re.search(r"Could not find '([\w/]+)/([\w.-]+)'", text)
    if missing:
        from zoo.train.config import config_groups

        group, option = missing.groups()
        options = config_groups().get(group)
        if options is not None:
            return f"unknown {group} {option!r}; {group} options: {', '.join(options)} (zoo train --help lists every group)"
    key = re.search(r"Key '([^']+)' is not in struct", text)
    if key:
        return (f"unknown key {key.group(1)!r}: see `zoo train --help` and `zoo train --cfg job` for the keys; "
                f"add a new one with +KEY=VALUE")
    return text


TRAIN_USAGE = """usage: zoo train [GROUP=OPTION | KEY=VALUE ...] [--config FILE] [--cfg job] [--resolve] [--debug]

Train a recipe: the config is composed by Hydra from recipes/ (train.yaml and one option per group),
then --config FILE's overrides, then the command line's (they win).

options:
  -h, --help     this help: the config groups, their options and the keys
  --config FILE  a YAML file of overrides (a command line written as YAML, or a run's recipe.yaml):
                   recipe: dpo
                   model: pretrained
                   model.path: runs/sft/model
                   trainer: {max_steps: 300}
  --cfg job      print the composed config and exit (--resolve: with interpolations resolved)
  --debug        the full traceback of an error (or ZOO_DEBUG=1)

examples:
  zoo train recipe=sft output_dir=runs/sft trainer.max_steps=300
  zoo train recipe=dpo model=pretrained model.path=runs/sft/model output_dir=runs/dpo
  zoo train data.path=data/small          # a world made by `zoo world shapes data/small --set n_train=200`
"""


def cmd_train(args: argparse.Namespace) -> int:
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from zoo.train.config import compose_config, describe_config
    from zoo.train.validate import ConfigError

    if args.help:
        print(TRAIN_USAGE + "\n" + describe_config())
        return 0
    try:
        cfg = compose_config(args.overrides, config_file=args.config)
        if args.cfg:
            print(OmegaConf.to_yaml(cfg, resolve=args.resolve), end="")
            return 0
        # Lightning: only when there is a run to make
        from zoo.train.run import is_global_zero, train

        metrics = train(cfg)
        if not is_global_zero():  # another rank of a multi-process run: rank 0 says how it went
            return 0
    except (ConfigError, HydraException) as e:  # a wrong override or value: say which, no traceback
        if _debug(args):
            raise
        print(f"zoo train: {_config_error(e)}", file=sys.stderr)
        return 2
    # the closing lines: final losses, the run folder, where the logs are and the command that shows each, and
    # what comes next (evaluate; after SFT, DPO from this model)
    from shlex import quote

    run, model = Path(cfg.output_dir), quote(str(Path(cfg.output_dir) / "model"))
    shown = {"train/loss": "train/loss", "val/loss": "val/loss", "train/rewards/margin": "reward margin",
             "train/rewards/accuracy": "reward accuracy", "val/rewards/accuracy": "val reward accuracy"}
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
        data = f" data.path={quote(str(cfg.data.path))}" if world else ""  # the same world's pairs
        lines.append(f"               zoo train recipe=dpo model=pretrained model.path={model}{data}")
    print("\n".join(lines))
    return 0


# Errors of the user's input met after start-up (DataError, MediaError, WorldMismatch and ConfigError are
# ValueErrors; a run folder that exists): one line, the traceback behind --debug.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def cmd_world(args: argparse.Namespace) -> int:
    from modalities.synthetic import ensure_world, parse_world_settings

    try:  # an unknown world lists the known ones; a setting is read as its field's type
        config = parse_world_settings(args.world, args.set)
        path = ensure_world(args.world, args.out, config, overwrite=args.force)
    except (KeyError, ValueError) as e:  # WorldMismatch: the folder holds another world, and what differs
        print(f"zoo world: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    print(f"{args.world} world in {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from zoo.demo import run_demo

    run_demo(output_dir=args.output_dir, overrides=args.overrides, parallel=False if args.sequential else None)
    return 0


def cmd_bdhs(args: argparse.Namespace) -> int:
    from hydra.utils import instantiate

    from zoo.train.config import compose_config

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
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.text import Text

    from zoo.entries import ENTRIES, list_models
    from zoo.hub import HubError, LocalHub, repo_summary

    hub, console = LocalHub(), Console(highlight=False)  # the terminal's width; 80 columns when piped
    width = max(console.width, 40)

    def pack(tokens: list[str], indent: str, first: str = "") -> list[str]:
        """Whole tokens on lines of at most ``width`` (a token is never cut; one longer than a line stands
        alone on its line): an override copied from here must work."""
        lines, line = [], first
        for token in (t for t in tokens if t):
            if line.strip() and len(line) + 1 + len(token) > width:
                lines.append(line)
                line = indent
            line += ("" if not line.strip() else " ") + token
        return [*lines, line] if line.strip() else lines

    def show(title: str, details: list[list[str]]) -> None:
        lines = pack(title.split(" "), "    ")
        text = Text(lines[0])
        text.stylize("bold", 0, len(title.split(" ")[0]))
        console.print(text, soft_wrap=True)
        for line in lines[1:] + [out for tokens in details for out in pack(tokens, "    ", "  ")]:
            console.print(line, soft_wrap=True, markup=False)  # overrides hold [lists]: not rich markup

    for line in pack(f"zoo models (local hub: {hub.root})".split(" "), "    "):
        console.print(line, style="bold", soft_wrap=True, markup=False)
    entry_repos = set()
    for e in list_models():
        entry_repos.add(e.repo)
        also = ENTRIES.aliases(e.name)  # the older names, still accepted
        title = " ".join([e.name, *([f"(also {', '.join(also)})"] if also else []), "·", ", ".join(e.modalities),
                          "·", e.backbone])
        here = (f"local hub: {hub.main(e.repo)}" if hub.exists(e.repo)
                else f"not in the local hub: {e.how_to_make()}" if e.embedded else "not in the local hub")
        base = f"({{base}}: the model of {e.base})".split(" ") if e.base else []
        details = [e.description.split(" "), ["repo", e.repo, "·", *here.split(" ")], ["recipe:", *e.recipe, *base]]
        if not e.embedded:  # the recipe's overrides are on the line above: not repeated
            run = f"runs/{e.name}"
            details.append(f"make it (GPU): zoo train RECIPE output_dir={run}, then zoo push {run} --repo {e.repo}"
                           .split(" "))
        console.print()
        show(title, details)

    pushed = [r for r in hub.repos() if r not in entry_repos]
    console.print()
    if not pushed:
        console.print("nothing else pushed to the local hub (zoo push RUN_DIR --repo ORG/NAME)", soft_wrap=True)
        return 0
    console.print(f"pushed to the local hub ({len(pushed)} repo{'s' * (len(pushed) > 1)})", style="bold",
                  soft_wrap=True)
    for repo in pushed:
        console.print()
        try:
            r = repo_summary(hub, repo)
        except (HubError, OSError, ValueError) as e:  # one damaged repo does not hide the others
            show(repo, [["unreadable:", *str(e).split(" ")]])
            continue
        date = (datetime.fromtimestamp(r.created, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                if r.created is not None else "date unknown")
        count = f"{r.revisions} revision{'s' * (r.revisions > 1)}"
        facts = [f"recipe {r.recipe}" if r.recipe else None,
                 "from scratch" if r.base == "scratch" else f"base {r.base}" if r.base else None]
        show(f"{repo} · main {r.revision} · {date} · {count}",
             [" · ".join(f for f in facts if f).split(" ")] if any(facts) else [])
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


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.train.export import export_checkpoint

    output = export_checkpoint(args.run_dir, args.output, args.checkpoint)  # errors: one line (USER_ERRORS)
    print(f"checkpoint {args.checkpoint} of {args.run_dir} written to {output} (load it with zoo.load('{output}'))")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from zoo.hub import HubError, push_run, push_run_to_hf

    # the card's metadata; what is not given comes from recipe.yaml's card: section, then the recipe itself
    card = {k: v for k, v in (("base_model", args.base_model), ("license", args.license),
                              ("datasets", args.dataset)) if v}
    try:
        if args.hub == "hf":
            rev = push_run_to_hf(args.run_dir, args.repo, message=args.message or "", **card)
            done = f"HF Hub, revision {rev}"
        else:
            done = f"local hub: {push_run(args.run_dir, args.repo, message=args.message or '', **card).describe()}"
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
    try:
        out = render_html(subs, args.html, sort=args.sort)
    except ValueError as e:
        print(f"zoo leaderboard: {e}", file=sys.stderr)
        return 2
    print(f"leaderboard with {len(subs)} submission(s) written to {out}")
    return 0


def default_world() -> Path:
    """``$ZOO_DATA/shapes-0`` (or ``data/shapes-0``), the default world of the shapes recipes."""
    return Path(os.environ.get("ZOO_DATA", "data")) / "shapes-0"


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmarks.suites import SUITES, run_suite, task_names

    if args.list:
        for name, entries in SUITES.items():
            print(f"suite {name}: {', '.join(task for task, _ in entries)}")
        print(f"tasks (--tasks a,b): {', '.join(task_names())}")
        return 0
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if (args.suite is None) == (tasks is None):
        print("zoo eval: give --suite NAME or --tasks a,b (zoo eval --list shows both)", file=sys.stderr)
        return 2
    if args.suite is not None and args.suite not in SUITES:  # before loading a model for nothing
        print(f"zoo eval: unknown suite {args.suite!r}; suites: {', '.join(sorted(SUITES))}", file=sys.stderr)
        return 2
    unknown = [t for t in tasks or [] if t not in task_names()]
    if unknown:
        print(f"zoo eval: unknown task(s) {', '.join(unknown)}; tasks: {', '.join(task_names())}", file=sys.stderr)
        return 2
    if args.model is None:
        print("zoo eval: which model? zoo eval MODEL --suite NAME (a run's model folder, a zoo name or a hub repo)",
              file=sys.stderr)
        return 2
    from zoo.hub import HubError, folder_id
    from zoo.results import compare_table, write_results
    from zoo.zoo_model import load
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
        seed=args.seed, source={"world": str(world)}, batch_size=args.batch_size, return_samples=True, tasks=tasks,
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
    from benchmarks.suites import SUITES  # a dict: no torch import

    parser = argparse.ArgumentParser(prog="zoo", description="Align multimodal models with preferences.",
                                     epilog="`zoo COMMAND --help` explains each command; start with `zoo demo`.")
    parser.add_argument("--version", action="version", version=f"zoo {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (or ZOO_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe: zoo train recipe=sft output_dir=DIR [Hydra overrides]",
                       add_help=False, usage=TRAIN_USAGE.split("\n")[0][len("usage: "):])
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--config", default=None)
    p.add_argument("--cfg", choices=["job"], default=None)
    p.add_argument("--resolve", action="store_true")
    p.add_argument("--debug", action="store_true", dest="train_debug")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bdhs", help="write an offline BDHS pair dataset: zoo bdhs generate model=… [overrides]")
    p.add_argument("action", choices=["generate"], help="generate: the initial model writes the rejected responses")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of recipe=bdhs, e.g. model=pretrained "
                   "model.path=runs/demo/model output_dir=runs/bdhs module.pairs.config.mask_threshold=0.9")
    p.set_defaults(func=cmd_bdhs)

    p = sub.add_parser("list", help="the zoo's models, whether the local hub holds them, and the repos pushed to it")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("build", help="train an embedded zoo entry (and its base) and push it to the local hub")
    p.add_argument("name", help="a zoo entry (zoo list), e.g. shapes-vlm.dpo")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for its recipe")
    p.add_argument("--runs-root", default="runs", help="where the runs are written (default runs/)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("export", help="a run's checkpoint as a model folder (LoRA merged): zoo export RUN_DIR "
                       "--output DIR [--checkpoint last|STEP]")
    p.add_argument("run_dir", help="a run folder written by zoo train (recipe.yaml, checkpoints/)")
    p.add_argument("--output", required=True, help="the model folder to write")
    p.add_argument("--checkpoint", default="last", help="last (default), a saved step number, or a .ckpt file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("push", help="push a run folder to a hub: zoo push RUN_DIR --repo ORG/NAME")
    p.add_argument("run_dir", help="a run folder written by zoo train (model/, recipe.yaml, results.json …)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the repo to push to")
    p.add_argument("--hub", default="local", choices=["local", "hf"],
                   help="local: the local hub under ZOO_HOME (default); hf: the HF Hub (token from HF_TOKEN or hf auth login)")
    p.add_argument("--message", default=None, help="the revision's message (default: push RUN_DIR)")
    p.add_argument("--base-model", default=None, metavar="ORG/NAME",
                   help="the card's base_model (default: recipe.yaml's card.base_model, else the hub repo its "
                   "model.path names; none when trained from scratch)")
    p.add_argument("--license", default=None, help="the card's license, e.g. apache-2.0 (default: recipe.yaml's "
                   "card.license; else none)")
    p.add_argument("--dataset", action="append", default=None, metavar="ORG/NAME",
                   help="a hub dataset for the card's datasets; repeat for several (default: recipe.yaml's "
                   "card.datasets, else data.path when it is a hub dataset id; a synthetic world has none)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("hub", help="local hub upkeep: zoo hub gc [ORG/NAME] reclaims what killed pushes left")
    p.add_argument("action", choices=["gc"], help="gc: remove what killed pushes left (never a live push's files)")
    p.add_argument("repo", nargs="?", default=None, help="one repo (default: every repo)")
    p.add_argument("--kind", default=None, choices=["model", "dataset"], help="default: both")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("submit", help="submit a model's results to the leaderboard: zoo submit NAME_OR_REPO")
    p.add_argument("model", help="a zoo name (zoo list) or a hub repo ORG/NAME whose card holds results")
    p.add_argument("--revision", default=None, help="the model revision to submit (default: main, resolved to its id)")
    p.add_argument("--repo", default="zoo/leaderboard", help="the leaderboard dataset repo (default zoo/leaderboard)")
    p.add_argument("--hub", default="local", choices=["local", "hf"], help="where the model and leaderboard live")
    p.add_argument("--precision", default="float32", help="recorded with the submission (float32, bfloat16, …)")
    p.add_argument("--weight-type", default="Original", help="recorded with the submission: Original, Delta "
                   "(weights relative to a base) or Adapter")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("leaderboard", help="render the leaderboard: zoo leaderboard --html out.html",
                       description="Render every submission as one self-contained HTML page (works offline): the "
                       "headline metrics with their direction, sortable by a click, a plot that follows the sort, "
                       "every other metric in each row's details.")
    p.add_argument("--html", required=True, help="the page to write, e.g. board.html (open board.html#sort=COLUMN "
                   "to open it sorted)")
    p.add_argument("--repo", default="zoo/leaderboard", help="the leaderboard dataset repo (default zoo/leaderboard)")
    p.add_argument("--hub", default="local", choices=["local", "hf"], help="read it from the local hub or the HF Hub")
    p.add_argument("--sort", default=None, metavar="TASK/METRIC", help="the headline column the page opens ranked "
                   "by, best first (default: the first, chair_trigger/chair_i)")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("world", help="generate a synthetic world: zoo world shapes DIR [--set n_train=100]",
                       description="Write a synthetic world into a folder (its world.json records the settings; "
                       "`zoo train data.path=DIR` and `zoo eval --world DIR` read them from there).")
    p.add_argument("world", help="a registered synthetic world (modalities.synthetic.WORLDS), e.g. shapes")
    p.add_argument("out", help="the world folder (the recipes read $ZOO_DATA/shapes-<seed>, default data/shapes-0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a world setting (repeatable), e.g. --set n_train=200 --set caption_order=position")
    p.add_argument("--force", action="store_true",
                   help="replace a world already in the folder (default: keep it; other settings are an error)")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("demo", help="the embedded default end to end: world → SFT → evaluation")
    p.add_argument("--output-dir", default="runs/demo", help="the SFT run's folder; the control and DPO runs go "
                   "beside it (default runs/demo)")
    p.add_argument("--sequential", action="store_true",
                   help="train the control and DPO one after the other (default: at once, each on half the cores)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="run a benchmark suite: zoo eval MODEL_DIR --suite NAME --output results.json")
    p.add_argument("model", nargs="?", help="a local model folder (e.g. runs/sft/model), a zoo name or a hub repo")
    p.add_argument("--suite", default=None, help=f"a suite: {', '.join(SUITES)} (zoo eval --list shows their tasks)")
    p.add_argument("--tasks", default=None, help="instead of a suite, these tasks (comma-separated, lmms-eval "
                   "style), e.g. --tasks pope_random,chair_trigger")
    p.add_argument("--list", action="store_true", help="list the suites and the tasks, then exit")
    p.add_argument("--limit", type=int, default=None, help="at most N items per task (the results say it: partial)")
    p.add_argument("--world", default=None, help="shapes world folder (default $ZOO_DATA/shapes-0 or data/shapes-0)")
    p.add_argument("--batch-size", type=int, default=64, help="items generated or scored at once (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seeds sampling and item order (default 0)")
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

    p = sub.add_parser("plot", help="training curves of a run folder: zoo plot RUN_DIR [--output PNG]",
                       description="Draw a run's logged metrics (RUN_DIR/logs/csv) as one PNG: one labelled panel per "
                       "quantity and unit (loss, learning rate, rewards, rates, counts …) against the global step.")
    p.add_argument("run_dir", help="a training run folder (zoo train output_dir=…)")
    p.add_argument("--output", default=None, help="PNG path (default RUN_DIR/curves.png)")
    p.set_defaults(func=cmd_plot)

    args = parser.parse_args(argv)
    if args.command is None:  # bare `zoo`: what it can do, not an error
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as e:  # bad input or config met after start-up: one line; the traceback behind --debug
        if _debug(args):
            raise
        message = str(e.args[0]) if len(e.args) == 1 else str(e)
        print(f"zoo {args.command}: {message}\n(the full traceback: zoo --debug {args.command} …, or ZOO_DEBUG=1)",
              file=sys.stderr)
        return 2


def _debug(args: argparse.Namespace) -> bool:
    return bool(args.debug or getattr(args, "train_debug", False) or os.environ.get("ZOO_DEBUG", "") not in ("", "0"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zoo")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
