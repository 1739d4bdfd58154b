"""``python -m zoo.align.judges JUDGE DATA [--split pairs] [--part heldout] [--limit N]``: a prompted pairwise
judge's agreement with the preference labels (chosen over rejected) of a split — by default on the images the
``pairwise_judge`` data format held out of training (``--part train`` / ``all`` for the others): ``correct``
(both orders prefer chosen), ``tie`` (the orders disagree), ``wrong`` (both prefer rejected)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    from zoo.align.judges.prompted import PromptedJudge, agreement
    from zoo.data.formats import read_rows
    from zoo.data.judging import JUDGE_HOLDOUT, held_out

    parser = argparse.ArgumentParser(prog="python -m zoo.align.judges", description=__doc__)
    parser.add_argument("judge", help="the judge's model folder (or HF VLM)")
    parser.add_argument("data", help="a dataset folder with preference rows (chosen / rejected)")
    parser.add_argument("--split", default="pairs")
    parser.add_argument("--part", choices=("heldout", "train", "all"), default="heldout")
    parser.add_argument("--holdout", type=float, default=JUDGE_HOLDOUT, help="the format's held-out share")
    parser.add_argument("--limit", type=int, default=None, help="the first N rows of the part only")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    rows = read_rows(args.data, args.split)
    if args.part != "all":
        rows = [r for r in rows if held_out(r, args.holdout) == (args.part == "heldout")]
    rows = rows[:args.limit] if args.limit else rows
    judge = PromptedJudge(args.judge, source=args.data, batch_size=args.batch_size, device=args.device)
    counts = agreement(judge, rows)
    n = sum(counts.values())
    print(f"{args.judge} on {n} {args.part} pairs of {args.data} ({args.split}): "
          + ", ".join(f"{k} {counts[k]} ({counts[k] / max(1, n):.3f})" for k in ("correct", "tie", "wrong")))
    return dict(counts)


if __name__ == "__main__":
    main()
