"""Learning from language feedback (LLF; Ji et al., "Align Anything: Training All-Modality Models to Follow
Instructions with Language Feedback", arXiv:2412.15838): generate → critique → refine → pair.

For every prompt of the source split, before training:

1. **generate** — the policy writes a first answer (sampled at ``temperature``; 0: greedy);
2. **critique** — a critic (`zoo.align.critics`: the world's, a prompted VLM, a trained critic) writes a
   natural-language critique with refinement suggestions for it;
3. **refine** — the policy is shown its first answer and the critique (`zoo.data.critique.refine_row`: the
   row's prompt, the answer as its turn, then the critique and "Now, please refine the response based on the
   critique and refinement suggestions.") and writes the refinement;
4. **pair** — refinement ≻ first answer, optionally only when a judge (`zoo.align.judges`, e.g. the world's
   verifier) scores the refinement higher (``judge``; the paper keeps every pair).

Batched end to end: each chunk of ``batch_size`` prompts is encoded once, its media encoded once
(`Policy.encode_media`) and reused by both of the policy's generations (the refine prompt holds the same
media, in the same order); each stage is one generation (or one critic call) for the whole chunk.

Written to ``<output>/llf.jsonl`` (the kept pairs: ``chosen`` the refinement, ``rejected`` the first answer,
media paths as in the source: train with ``data.media_root=<source>``) and ``<output>/llf.dropped.jsonl``
(the rows that made no pair: the refinement is empty, unfinished, unchanged, or not better by the judge).
Every row of both files records its stages under ``llf`` (answer, critique, refinement, whether each
generation finished, the judge's scores, kept, reason): the audit. Resumable like BDHS's pair file
(`zoo.align.pairs.pairfile`): a rerun skips the ids in either file, and refuses other settings.
``fraction`` keeps the first share of the split's prompts (the worlds write them in random order), for the
paper's "LLF on 25 % of the prompts" comparison.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.align.pairs import PAIR_SOURCES, PairSource
from zoo.align.pairs.pairfile import check_settings, existing_ids, read_jsonl, row_id, write_summary
from zoo.data.collate import pad_batch
from zoo.data.critique import refine_row
from zoo.models.policy import Policy, eval_mode, to_device

OUTPUT_SPLIT = "llf"
DROPPED = "llf.dropped"
_ANNOTATION_FIELDS = ("rejected", "hallucination", "completion", "chosen", "chosen_errors", "rejected_errors",
                      "example_index")


@dataclass
class LLFConfig:
    """How the policy writes its two answers."""

    temperature: float = 1.0  # the first answer: sampled at this temperature (0: greedy)
    refine_temperature: float = 0.0  # the refinement (0: greedy)
    max_new_tokens: int = 48  # each answer's limit; an answer cut off by it makes no pair ("unfinished")
    batch_size: int = 32  # prompts per chunk (one generation per stage for the whole chunk)
    seed: int = 0

    def __post_init__(self):
        for name in ("temperature", "refine_temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"llf: {name} must be a number >= 0, not {value!r}")
        for name in ("max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"llf: {name} must be an integer >= 1, not {value!r}")


def _check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"llf: fraction (the share of the prompts used) must be in (0, 1], not {fraction!r}")
    return float(fraction)


def verdict(answer: str, refinement: str, finished: tuple[bool, bool], scores: tuple[float, float] | None) -> str:
    """Why a row makes a pair or not: ``kept``, or ``empty`` / ``unfinished`` (a generation hit the length limit)
    / ``unchanged`` (the refinement is the answer) / ``not_better`` (the judge scores it no higher)."""
    if not answer.strip() or not refinement.strip():
        return "empty"
    if not all(finished):
        return "unfinished"
    if refinement.strip() == answer.strip():
        return "unchanged"
    if scores is not None and not scores[1] > scores[0]:
        return "not_better"
    return "kept"


def _source_row(row: dict) -> dict:
    """The source row without its annotations (LLF uses none: the pair is made by the policy and the critic)."""
    return {k: v for k, v in row.items() if k not in _ANNOTATION_FIELDS}


class LLFSampler:
    """The generate → critique → refine → judge stages for a chunk of rows (module docstring).

    ``refiner``: the model that writes the refinement (None: the policy itself, as in the paper; its media
    encoding of the first answer is reused)."""

    def __init__(self, policy: Policy, critic, judge=None, config: LLFConfig | None = None, media_root=None,
                 refiner: Policy | None = None):
        from zoo.data.collate import ExampleEncoder

        self.policy, self.critic, self.judge = policy, critic, judge
        self.refiner = refiner if refiner is not None else policy
        self.config = config or LLFConfig()
        self.encoder = ExampleEncoder(policy.processor, media_root=media_root)
        self.refine_encoder = self.encoder if self.refiner is policy else \
            ExampleEncoder(self.refiner.processor, media_root=media_root)

    def _generate(self, rows: Sequence[dict], ids: Sequence[str], media, temperature: float, seed: int,
                  refine: bool = False):
        model, encoder = (self.refiner, self.refine_encoder) if refine else (self.policy, self.encoder)
        tok = model.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(model.parameters()).device
        batch = to_device(pad_batch([encoder.encode(r, i, None) for r, i in zip(rows, ids)], pad, "left"), device)
        if media is None:
            media = model.encode_media(batch)
        generator = torch.Generator().manual_seed(seed) if temperature > 0 else None
        gen = model.generate(batch, media=media, max_new_tokens=self.config.max_new_tokens,
                             do_sample=temperature > 0, temperature=temperature or 1.0, generator=generator)
        return gen, media

    def sample(self, rows: Sequence[dict], ids: Sequence[str], chunk: int = 0) -> list[dict]:
        """One audit record per row: ``answer``, ``critique``, ``refinement``, ``finished``, ``scores``, ``reason``."""
        cfg = self.config
        with eval_mode(self.policy), eval_mode(self.refiner), torch.no_grad():
            first, media = self._generate(rows, ids, None, cfg.temperature, cfg.seed * 1_000_003 + 2 * chunk)
            answers = [t.strip() for t in first.texts]
            # an empty answer has nothing to critique: the critic sees a placeholder, the row is dropped
            critiques = [c.strip() for c in self.critic(rows, [a or "(no answer)" for a in answers])]
            refine = [refine_row(row, answer or "(no answer)", critique or "(no critique)", i)
                      for row, answer, critique, i in zip(rows, answers, critiques, ids)]
            # the refine prompt holds the same media in the same order: the policy's encoding serves again
            reuse = media if self.refiner is self.policy else None
            second, _ = self._generate(refine, ids, reuse, cfg.refine_temperature, cfg.seed * 1_000_003 + 2 * chunk + 1,
                                       refine=True)
        refinements = [t.strip() for t in second.texts]
        scores: list[tuple[float, float] | None] = [None] * len(rows)
        if self.judge is not None:
            judged = self.judge([*answers, *refinements], [*rows, *rows])
            scores = [(float(a), float(r)) for a, r in zip(judged[:len(rows)], judged[len(rows):])]
        records = []
        for n in range(len(rows)):
            finished = (bool(first.finished[n]), bool(second.finished[n]))
            records.append({"answer": answers[n], "critique": critiques[n], "refinement": refinements[n],
                            "finished": list(finished), "scores": list(scores[n]) if scores[n] else None,
                            "reason": verdict(answers[n], refinements[n], finished, scores[n])})
        return records


def generate_dataset(policy: Policy, source: str | Path, output: str | Path, critic, judge=None,
                     split: str = "pairs", config: LLFConfig | dict | None = None, fraction: float = 1.0,
                     limit: int | None = None, critic_name: str | None = None, judge_name: str | None = None,
                     refiner: str | Path | None = None, world: str | None = None, world_config: dict | None = None,
                     progress: bool = True) -> dict:
    """Write ``<output>/llf.jsonl`` and ``llf.dropped.jsonl`` from the prompts of ``<source>/<split>`` (module
    docstring); returns the summary also written to ``llf.json`` (pairs, dropped by reason, the judge's view of
    the refinements, seconds). ``critic_name`` / ``judge_name`` describe them in the settings (a rerun with
    another critic is refused); ``refiner``: a model folder that writes the refinements instead of the policy."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from zoo.data.formats import read_rows

    source, output = Path(source), Path(output)
    if world is not None:
        from modalities.synthetic import ensure_world

        ensure_world(world, source, world_config)
    config = config if isinstance(config, LLFConfig) else LLFConfig(**(config or {}))
    fraction = _check_fraction(fraction)
    settings = {"config": asdict(config), "source": str(source), "split": split, "fraction": fraction,
                "limit": limit, "critic": critic_name or type(critic).__name__,
                "judge": judge_name or (type(judge).__name__ if judge is not None else None),
                "refiner": str(refiner) if refiner is not None else None}
    output.mkdir(parents=True, exist_ok=True)
    meta_path, pairs_path, dropped_path = (output / f"{OUTPUT_SPLIT}.json", output / f"{OUTPUT_SPLIT}.jsonl",
                                           output / f"{DROPPED}.jsonl")
    check_settings(meta_path, settings, "LLF pairs")
    rows = read_rows(source, split)
    rows = rows[:max(1, round(fraction * len(rows)))][:limit]
    done = existing_ids(pairs_path) | existing_ids(dropped_path)
    todo = [(i, row_id(r, split, i), r) for i, r in enumerate(rows) if row_id(r, split, i) not in done]
    refining = None
    if refiner is not None:
        from zoo.models import load_frozen_policy

        refining = load_frozen_policy(refiner, device=str(next(policy.parameters()).device))
    sampler = LLFSampler(policy, critic, judge, config, media_root=source, refiner=refining)
    start, made = time.perf_counter(), 0
    columns = (TextColumn("LLF pairs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar, pairs_path.open("a", encoding="utf-8") as kept, \
            dropped_path.open("a", encoding="utf-8") as dropped:
        task = bar.add_task("llf", total=len(rows), completed=len(rows) - len(todo), rate="")
        for at in range(0, len(todo), config.batch_size):
            chunk = todo[at:at + config.batch_size]
            # seeded by the chunk's first position in the split (a resume at a chunk boundary draws what one run would)
            records = sampler.sample([r for _, _, r in chunk], [i for _, i, _ in chunk], chunk=chunk[0][0])
            for (_, rid, row), record in zip(chunk, records):
                out = {**_source_row(row), "id": rid, "llf": {**record, "kept": record["reason"] == "kept"}}
                if record["reason"] == "kept":
                    out["chosen"] = [{"role": "assistant", "content": [{"type": "text", "text": record["refinement"]}]}]
                    out["rejected"] = [{"role": "assistant", "content": [{"type": "text", "text": record["answer"]}]}]
                (kept if record["reason"] == "kept" else dropped).write(json.dumps(out, sort_keys=True) + "\n")
            kept.flush()
            dropped.flush()
            made += len(chunk)
            bar.update(task, advance=len(chunk), rate=f"{made / (time.perf_counter() - start):.1f} prompts/s")
    seconds = time.perf_counter() - start
    summary = {**settings, **summarize([*read_jsonl(pairs_path), *read_jsonl(dropped_path)]),
               "generated_now": made, "seconds": round(seconds, 2),
               "prompts_per_second": round(made / seconds, 3) if made and seconds > 0 else None}
    write_summary(meta_path, summary)
    return summary


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over audit rows: prompts, pairs, dropped by reason, and — with a judge — how often the refinement
    scored higher / the same / lower than the first answer, and the mean scores."""
    reasons = Counter(r["llf"]["reason"] for r in rows)
    out: dict[str, Any] = {"prompts": len(rows), "pairs": reasons.get("kept", 0),
                           "dropped": {k: v for k, v in sorted(reasons.items()) if k != "kept"}}
    judged = [r["llf"]["scores"] for r in rows if r["llf"].get("scores")]
    if judged:
        n = len(judged)
        out["judge"] = {"judged": n, "refinement_better": round(sum(b > a for a, b in judged) / n, 4),
                        "refinement_same": round(sum(b == a for a, b in judged) / n, 4),
                        "refinement_worse": round(sum(b < a for a, b in judged) / n, 4),
                        "answer_mean": round(sum(a for a, _ in judged) / n, 4),
                        "refinement_mean": round(sum(b for _, b in judged) / n, 4)}
    return out


@PAIR_SOURCES.register("llf")
class LLFPairs(PairSource):
    """DPO+LLF's pairs: `prepare` writes ``<output>/llf.jsonl`` with the initial policy (resumable; see
    `generate_dataset`, whose arguments these are); the data then reads it as ordinary pairs.

    ``critic``: a `zoo.align.critics.Critic` (built by Hydra); ``judge``: an optional `zoo.align.judges.Judge`,
    the filter; ``config``: `LLFConfig` fields; ``refiner``: a model folder that refines instead of the policy
    (null: the policy, as in the paper)."""

    def __init__(self, critic, source: str, output: str, split: str = "pairs", judge=None,
                 config: dict | None = None, fraction: float = 1.0, limit: int | None = None,
                 refiner: str | None = None, world: str | None = None, world_config: dict | None = None,
                 layout: str = "shared_prefix"):
        super().__init__(layout)
        if not callable(critic):
            raise ValueError(f"llf: critic must be a critic (zoo.align.critics), not {critic!r}")
        if judge is not None and not callable(judge):
            raise ValueError(f"llf: judge must be a judge (zoo.align.judges) or null, not {judge!r}")
        LLFConfig(**(config or {}))  # refuse bad settings now, not after the model is loaded
        _check_fraction(fraction)
        self.critic, self.judge = critic, judge
        self.settings = dict(source=source, output=output, split=split, config=config, fraction=fraction,
                             limit=limit, refiner=refiner, world=world, world_config=world_config,
                             critic_name=describe(critic), judge_name=describe(judge) if judge is not None else None)
        self.summary: dict[str, Any] = {}

    def prepare(self, policy: Policy) -> None:
        self.summary = generate_dataset(policy, critic=self.critic, judge=self.judge, **self.settings)
        if not self.summary["pairs"]:
            dropped = ", ".join(f"{n} {reason}" for reason, n in self.summary["dropped"].items())
            raise ValueError(f"LLF made no pair from {self.summary['prompts']} prompts (dropped: {dropped}); every "
                             f"stage of every row is in {Path(self.settings['output']) / (DROPPED + '.jsonl')}")


def describe(part: Any) -> str:
    """A critic's or judge's name for the settings: its class and the model folder it asks, if any."""
    path = getattr(part, "path", None)
    return type(part).__name__ + (f"({path})" if path else "")

