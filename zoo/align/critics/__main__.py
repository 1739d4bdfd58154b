"""Critics from the command line: make critique triples with the world's critic, and measure a trained critic.

    python -m zoo.align.critics triples data/shapes-0 --out runs/critiques      # critiques.jsonl (+ summary.json)
    python -m zoo.align.critics triples data/shapes-0 --out runs/critiques-other --split ranked train \
        --task caption caption_ranked     # images disjoint from the pairs split that LLF's prompts come from
    python -m zoo.align.critics eval runs/critic/model runs/critiques --source data/shapes-0

``triples`` (``critiques.jsonl`` and ``summary.json``): every response of the rows of the world's split(s) — a
preference row's chosen and rejected caption, a caption row's completion, a ranked row's responses — gives a
triple, with the world critic's critique, the errors behind it and the corrected response (``refinement``): the
data of ``recipe=critic_sft`` (format ``critique``) and ``recipe=refiner_sft`` (format ``refine``).
``eval``: asks a critic model (`zoo.align.critics.prompted.PromptedCritic`) about the triples whose images the
formats hold out of training (`zoo.data.judging.held_out`) and prints `critique_quality` with a few examples.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.align.critics.world import WorldCritic, corrected, critique_quality, response_errors

TRIPLES = "critiques"


def _responses(row: dict, n: int, split: str) -> list[tuple[str, str]]:
    """(id suffix, text) of every response a row holds: ``chosen`` / ``rejected``, ``completion``, ``responses``."""
    from zoo.data.schema import response_text

    found = [(f, response_text(row[f], n, f)) for f in ("chosen", "rejected", "completion") if row.get(f) is not None]
    found += [(f"r{i}", response_text(r, n, f"responses[{i}]")) for i, r in enumerate(row.get("responses") or [])]
    return [(suffix, text.strip()) for suffix, text in found]


def make_triples(world: str | Path, split: str | Sequence[str] = "pairs", seed: int = 0, limit: int | None = None,
                 tasks: Sequence[str] | None = None) -> list[dict]:
    """The triples of the world's split(s) (module docstring): every response a row holds (``chosen`` and
    ``rejected``, a ``completion``, ranked ``responses``), rows of ``tasks`` only when given, the first ``limit``
    rows of each split; media paths stay relative to ``world``."""
    from zoo.data.formats import read_rows

    critic = WorldCritic(seed=seed)
    triples = []
    for name in [split] if isinstance(split, str) else split:
        rows = [r for r in read_rows(world, name) if tasks is None or r.get("task") in tasks][:limit]
        for n, row in enumerate(rows):
            base = {k: row[k] for k in ("image_id", "prompt", "images", "objects", "task", "answer") if k in row}
            for suffix, response in _responses(row, n, name):
                triple = {**base, "id": f"{row.get('id', f'{name}[{n}]')}-{suffix}", "response": response}
                triple["critique"] = critic([triple], [response])[0]
                triple["errors"] = response_errors(response, triple)
                triple["refinement"] = corrected(response, triple)
                triples.append(triple)
    return triples


def write_triples(world: str | Path, out: str | Path, split: str | Sequence[str] = "pairs", seed: int = 0,
                  limit: int | None = None, tasks: Sequence[str] | None = None) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    triples = make_triples(world, split, seed, limit, tasks)
    tmp = out / f"{TRIPLES}.jsonl.tmp"
    tmp.write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in triples), encoding="utf-8")
    tmp.replace(out / f"{TRIPLES}.jsonl")
    kinds: dict[str, int] = {}
    for t in triples:
        for e in t["errors"]:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    summary = {"world": str(world), "split": split, "tasks": tasks, "seed": seed, "limit": limit, "triples": len(triples),
               "with_errors": sum(bool(t["errors"]) for t in triples), "errors": kinds}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def evaluate_critic(critic, triples: Sequence[dict]) -> dict[str, Any]:
    """`critique_quality` of ``critic``'s critiques of the triples' responses, with the first examples."""
    responses = [t["response"] for t in triples]
    critiques = critic(list(triples), responses)
    quality = critique_quality(critiques, triples, responses)
    examples = [{"response": r, "critique": c, "truth": t["critique"]}
                for r, c, t in zip(responses[:5], critiques[:5], triples[:5])]
    return {**quality, "examples": examples}


def heldout_triples(folder: str | Path, split: str = TRIPLES, limit: int | None = None) -> list[dict]:
    """The triples whose images the ``critique`` / ``refine`` formats keep out of training."""
    from zoo.data.formats import read_rows
    from zoo.data.judging import held_out

    return [t for t in read_rows(folder, split) if held_out(t)][:limit]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.align.critics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("triples", help="critique triples of a world's split, by the world's critic")
    t.add_argument("world", help="the world folder (e.g. data/shapes-0)")
    t.add_argument("--out", required=True, help="the folder to write critiques.jsonl into")
    t.add_argument("--split", nargs="+", default=["pairs"], help="the world's split(s) (e.g. ranked train)")
    t.add_argument("--task", nargs="+", default=None, help="only rows of these tasks (e.g. caption caption_ranked)")
    t.add_argument("--seed", type=int, default=0, help="varies the phrasings")
    t.add_argument("--limit", type=int, default=None, help="the first rows of each split")
    e = sub.add_parser("eval", help="how often a critic model names the actual errors (held-out images)")
    e.add_argument("critic", help="the critic's model folder (or any zoo/HF VLM)")
    e.add_argument("triples", help="the folder of critiques.jsonl")
    e.add_argument("--source", default=None, help="where the triples' media paths start (the world folder)")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--max-new-tokens", type=int, default=160)
    e.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.command == "triples":
        summary = write_triples(args.world, args.out, args.split, args.seed, args.limit, args.task)
        print(json.dumps(summary, indent=2))
        print(f"written to {Path(args.out) / (TRIPLES + '.jsonl')}")
        return 0
    from zoo.align.critics.prompted import PromptedCritic

    critic = PromptedCritic(path=args.critic, source=args.source, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens)
    triples = heldout_triples(args.triples, limit=args.limit)
    if not triples:
        raise SystemExit(f"no held-out triples in {args.triples}")
    result = {"critic": args.critic, "triples": args.triples, **evaluate_critic(critic, triples)}
    for key in ("error_recall", "fully_named", "false_mentions", "clean_confirmed"):
        value = result[key]
        print(f"{key:16s} {'n/a' if isinstance(value, float) and math.isnan(value) else f'{value:.3f}'}")
    print(f"{'responses':16s} {result['responses']} ({result['responses_with_errors']} with errors, "
          f"{result['errors']} errors)")
    for ex in result["examples"][:3]:
        print(f"\n  response: {ex['response']}\n  critique: {ex['critique']}\n  truth:    {ex['truth']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
