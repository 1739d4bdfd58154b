"""On-policy group sampling throughput: K responses per prompt from one prefill (`Policy.generate_group`:
media encoded and the prompt run once, its KV cache copied K ways) vs K separate prefills (`Policy.generate`
on the batch with every prompt repeated K times), side by side on the same model, prompts and generator.

    .venv/bin/python -m benchmarks.speed.group_sampling [--model runs/demo/model] [--world data/shapes-0]
        [--prompts 32] [--k 8] [--max-new-tokens 32] [--rounds 3] [--output runs/bench/group_sampling.json]

Sampled decoding (temperature 1) from one seeded generator on both sides: the K·B responses (token ids) must
come out identical, which the script checks. The figure is generated tokens/s of each side (median over
rounds, the sides alternating) and their ratio.
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
    from zoo.data.collate import ExampleEncoder, pad_batch
    from zoo.data.formats import read_rows
    from zoo.models import load_policy

    if not Path(args.model, "config.json").exists():
        raise SystemExit(f"no model in {args.model}: run `make demo` first (it trains runs/demo/model), or pass --model")
    torch.set_num_threads(args.threads or os.cpu_count())
    policy = load_policy(args.model).eval()
    rows = read_rows(args.world, "pairs")[: args.prompts]
    encoder = ExampleEncoder(policy.processor, media_root=args.world)
    examples = [encoder.encode(r, i, None) for i, r in enumerate(rows)]
    pad = policy.tokenizer.pad_token_id
    batch = pad_batch(examples, pad, "left")
    repeated = pad_batch([e for e in examples for _ in range(args.k)], pad, "left")
    common = dict(do_sample=True, temperature=1.0, max_new_tokens=args.max_new_tokens)
    sides = {
        "shared_prefill": lambda g: policy.generate_group(batch, args.k, generator=g, **common),
        "separate_prefills": lambda g: policy.generate(repeated, generator=g, **common),
    }
    times = {name: [] for name in sides}
    tokens, written = {}, {}
    with torch.no_grad():
        for r in range(args.rounds):
            for name, sample in sides.items():
                start = time.perf_counter()
                out = sample(torch.Generator().manual_seed(args.seed))
                times[name].append(time.perf_counter() - start)
                written[name] = out.token_ids
                tokens[name] = sum(len(t) for t in out.token_ids)
                print(f"round {r + 1}/{args.rounds} {name:>17}: {tokens[name] / times[name][-1]:8.1f} tokens/s",
                      flush=True)
    if written["shared_prefill"] != written["separate_prefills"]:
        raise SystemExit("the shared prefill and the separate prefills sampled different responses")
    rate = {name: tokens[name] / statistics.median(t) for name, t in times.items()}
    prompt_tokens = int(batch["attention_mask"].sum()) / len(examples)
    return {
        "benchmark": "group_sampling",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.speed.group_sampling", *sys.argv[1:]]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu"},
        "model": str(args.model), "prompts": len(examples), "k": args.k, "prompt_tokens_mean": prompt_tokens,
        "generated_tokens": tokens["shared_prefill"], "tokens_per_second": rate,
        "ratio": rate["shared_prefill"] / rate["separate_prefills"], "identical_outputs": True, "seconds": times,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/demo/model")
    p.add_argument("--world", default=os.path.join(os.environ.get("ZOO_DATA", "data"), "shapes-0"))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", default="runs/bench/group_sampling.json")
    args = p.parse_args(argv)
    result = run(args)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["tokens_per_second"]
    print(f"\ngroup sampling, K = {args.k} responses to each of {result['prompts']} prompts "
          f"({result['prompt_tokens_mean']:.0f} prompt tokens each, media included), sampled:\n"
          f"  shared prefill:    {r['shared_prefill']:.1f} tokens/s\n"
          f"  separate prefills: {r['separate_prefills']:.1f} tokens/s\n"
          f"  ratio: {result['ratio']:.2f}x   (identical responses: yes) → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
