"""The `zoo` command: a small table of subcommand → function."""

from __future__ import annotations

import argparse
import logging
import sys


def cmd_train(args: argparse.Namespace) -> int:
    from zoo.train.run import compose_config, train

    cfg = compose_config(args.overrides)
    metrics = train(cfg)
    print(f"model written to {cfg.output_dir}/model · steps {metrics['global_step']} · {metrics['train_seconds']} s")
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    from zoo.train.data import ensure_world

    config = dict(kv.split("=", 1) for kv in args.set)
    config = {k: (float(v) if "." in v else int(v)) for k, v in config.items()}
    path = ensure_world(args.world, args.out, config)
    print(f"{args.world} world in {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from zoo.demo import run_demo

    run_demo(output_dir=args.output_dir, overrides=args.overrides)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo", description="Align multimodal models with preferences.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe: zoo train recipe=sft output_dir=DIR [Hydra overrides]")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_steps=300 model=shapes-vlm")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("world", help="generate a synthetic world: zoo world shapes DIR [--set n_train=100]")
    p.add_argument("world", choices=["shapes"])
    p.add_argument("out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="world config field")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("demo", help="the embedded default end to end: world → SFT → evaluation")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    p.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
