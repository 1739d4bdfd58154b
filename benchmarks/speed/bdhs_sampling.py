"""BDHS pair-generation throughput: all sentences of all examples completed in one batched generation (each
example's image encoded once) vs the same batches encoding each row's image again vs sentence by sentence (one
generation per sentence), side by side on the same model and prompts.

    .venv/bin/python -m benchmarks.speed.bdhs_sampling [--model runs/demo/model] [--world data/shapes-0]
        [--pairs 128] [--batch-size 64] [--rounds 3] [--output runs/bench/bdhs_sampling.json]

Both sides run `BDHSSampler` with one try and no similarity filter (the filter costs the same on both
sides), greedy: the rejected responses (token ids) must come out identical, which the script checks.
The figure is pairs/s of each side (median over rounds, rounds alternate) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def run(args) -> dict:
    from zoo.align.pairs.bdhs import BDHSConfig, BDHSItem, BDHSSampler, TokenText
    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows
    from zoo.models import load_policy

    if not Path(args.model, "config.json").exists():
        raise SystemExit(f"no model in {args.model}: run `make demo` first (it trains runs/demo/model), or pass --model")
    torch.set_num_threads(args.threads or os.cpu_count())
    policy = load_policy(args.model).eval()
    rows = read_rows(args.world, "pairs")[: args.pairs]
    encoder = ExampleEncoder(policy.processor, media_root=args.world)
    items = [BDHSItem.encode(encoder, r, i) for i, r in enumerate(rows)]
    tokens = TokenText(policy.tokenizer)  # the vocabulary read once, outside the timed sampling
    sentences = sum(len(tokens.sentences(i.chosen)) for i in items)

    def never_similar(a, b):
        return [0.0] * len(a)

    sides = {
        # max_tries=2: with max_tries=1 the only try would be the unguided last one
        "batched": BDHSConfig(max_tries=2, batch_size=args.batch_size),
        # the same batches, each row's image encoded again (before the image-once change)
        "batched_image_per_row": BDHSConfig(max_tries=2, batch_size=args.batch_size),
        "sentence_by_sentence": BDHSConfig(max_tries=2, batch_size=1),
    }
    backbone = policy.backbone
    times = {name: [] for name in sides}
    written = {}
    for r in range(args.rounds):
        for name, config in sides.items():
            sampler = BDHSSampler(policy, config, never_similar, tokens=tokens)
            if name == "batched_image_per_row":
                backbone.can_select_media = False  # an instance attribute over the class's: encode per row
            start = time.perf_counter()
            out = sampler.sample(items)
            times[name].append(time.perf_counter() - start)
            vars(backbone).pop("can_select_media", None)
            written[name] = [s.rejected_ids for s in out]
            print(f"round {r + 1}/{args.rounds} {name:>21}: {len(items) / times[name][-1]:7.2f} pairs/s", flush=True)
    if not written["batched"] == written["batched_image_per_row"] == written["sentence_by_sentence"]:
        raise SystemExit("the three ways of sampling BDHS wrote different rejected responses")
    rate = {name: len(items) / statistics.median(t) for name, t in times.items()}
    return {
        "benchmark": "bdhs_sampling",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.speed.bdhs_sampling", *sys.argv[1:]]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu"},
        "model": str(args.model), "pairs": len(items), "sentences": sentences, "batch_size": args.batch_size,
        "pairs_per_second": rate, "ratio": rate["batched"] / rate["sentence_by_sentence"],
        "ratio_image_once": rate["batched"] / rate["batched_image_per_row"],
        "identical_outputs": True, "seconds": times,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/demo/model")
    p.add_argument("--world", default=os.path.join(os.environ.get("ZOO_DATA", "data"), "shapes-0"))
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", default="runs/bench/bdhs_sampling.json")
    args = p.parse_args(argv)
    result = run(args)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["pairs_per_second"]
    print(f"\nBDHS pairs/s ({result['pairs']} pairs, {result['sentences']} sentences, greedy, 2 tries):\n"
          f"  batched (rows per generation {args.batch_size}): {r['batched']:.2f}\n"
          f"  batched, each row's image encoded again: {r['batched_image_per_row']:.2f}\n"
          f"  sentence by sentence:                  {r['sentence_by_sentence']:.2f}\n"
          f"  ratio: {result['ratio']:.1f}x batched / sentence by sentence, {result['ratio_image_once']:.2f}x image "
          f"once / per row   (identical rejected responses: yes) → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
