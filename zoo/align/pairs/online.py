"""On-policy pairs and groups: online DPO, Mixed-DPO (Guo et al. 2024; the BDHS paper's baselines) and the
group source of GRPO / RLOO.

Each step the current policy samples K responses to every prompt of the batch in one group generation
(`Policy.generate_group`: media and prompt once, the KV cache copied K ways), a judge (`zoo.align.judges`)
scores them, and the best and the worst become the pair. A group whose best and worst score the same (a
tie) teaches nothing: it falls back to the dataset's own pair and is counted (``online/ties``). A response
the length limit cut off (no EOS) is dropped from the candidates (``eos="drop"``) or scored
``eos_penalty`` lower (``eos="penalize"``); counted as ``online/no_eos``.

Mixed-DPO: each example takes the fresh online pair with probability ``mix`` and the dataset's pair
otherwise, drawn from (seed, example, step) alone — so batching and resuming change nothing. ``mix=1``
is online DPO.

The group source (``online_group``) keeps all K responses with the judge's scores as rewards, for the
policy-gradient objectives (`zoo.align.objectives.policy_gradient`). A response without EOS is scored
``eos_penalty`` lower; ``drop_uniform`` drops the groups whose rewards are all equal (DAPO's dynamic
sampling, without its refill: they carry no advantage); ``iterations`` μ > 1 reuses one sample for μ updates,
with the sampling policy's per-token log-probs kept for the clipped importance ratio.

Several processes (``trainer.strategy=ddp``): each rank samples for its own share of the global batch (the
loaders shard it, `zoo.train.data.EpochBatches`) from a generator of (seed, step, rank) — `sampling_seed`,
whose rank 0 is the one-process stream — under `zoo.models.distributed.gathered_for_generation` (a no-op
on one process and DDP; what FSDP needs is written there). ``record``: a folder where each rank appends
one JSON line per step (``rank{R}.jsonl``: the examples it sampled for, their K scores, the pair picked) —
an audit of the online data; a resumed run appends, so a step after the checkpoint appears twice.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.align.objectives.base import stack_tokens
from zoo.align.pairs import PAIR_SOURCES, PairSource
from zoo.data.batches import EncodedGroup, ExampleBatch, GroupBatch
from zoo.data.collate import pad_batch, pad_groups
from zoo.models.distributed import gathered_for_generation, process_rank
from zoo.models.policy import Policy, eval_mode, to_device

EOS_RULES = ("drop", "penalize")


def select_pair(scores: Sequence[float], finished: Sequence[bool], eos: str = "drop",
                eos_penalty: float = 1.0) -> tuple[int, int] | None:
    """(best, worst) indices of one group of K scored responses, or None when it teaches nothing: fewer than
    two candidates left, or best and worst tied. Ties among the best (or the worst) go to the first."""
    if eos not in EOS_RULES:
        raise ValueError(f"eos must be one of {', '.join(EOS_RULES)}, not {eos!r}")
    if eos == "drop":
        candidates = [(s, i) for i, (s, done) in enumerate(zip(scores, finished)) if done]
    else:
        candidates = [(s - (0.0 if done else eos_penalty), i) for i, (s, done) in enumerate(zip(scores, finished))]
    if len(candidates) < 2:
        return None
    best = max(candidates, key=lambda c: (c[0], -c[1]))
    worst = min(candidates, key=lambda c: (c[0], c[1]))
    return None if best[0] == worst[0] else (best[1], worst[1])


def takes_online(seed: int, index: Any, step: int, mix: float) -> bool:
    """Mixed-DPO's Bernoulli(``mix``) for one example at one step, from (seed, example, step) alone."""
    if mix >= 1:
        return True
    if mix <= 0:
        return False
    key = zlib.crc32(json.dumps(index, default=str).encode())
    return bool(np.random.default_rng([seed, key, step, 0x6D6978]).random() < mix)


RANK_STRIDE = 0x9E3779B1  # 2³² / golden ratio: its multiples by 1 … 1023 lie ≥ 2²⁰ apart from 0 modulo 2³²


def sampling_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of one step's sampling generator on one rank: rank 0 keeps the one-process stream
    (``seed · 1_000_003 + step``); rank r is offset by r · `RANK_STRIDE`. Torch's CPU generator reads only the
    low 32 bits of a seed, so the offset lives there: with up to 1024 ranks no two (step, rank) of a run share a
    stream within 2²⁰ steps."""
    return seed * 1_000_003 + step + rank * RANK_STRIDE


class OnlineSampler(PairSource):
    """What the online sources share: K samples per prompt from the current policy (one group generation,
    media and prompt once), scored by a judge. ``judge``: a `zoo.align.judges.Judge` (built by Hydra);
    ``source`` / ``split``: the rows whose fields the judge reads (the image's objects), by example."""

    online = True
    name = "online"

    def __init__(self, judge, source: str, split: str = "pairs", k: int = 8, temperature: float = 1.0,
                 max_new_tokens: int = 48, eos_penalty: float = 1.0, seed: int = 0, layout: str = "shared_prefix",
                 record: str | None = None):
        super().__init__(layout)
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ValueError(f"{self.name}: k (responses per prompt) must be an integer >= 2, not {k!r}")
        if not callable(judge):
            raise ValueError(f"{self.name}: judge must be a judge (zoo.align.judges), not {judge!r}")
        self.judge, self.source, self.split, self.k = judge, source, split, k
        self.temperature, self.max_new_tokens, self.eos_penalty = temperature, max_new_tokens, eos_penalty
        self.seed, self.record = seed, record
        self.judge_metrics: dict[str, float] = {}
        self.references: dict[Any, dict] = {}

    def load_references(self) -> dict[Any, dict]:
        """The rows the judge checks against, by example index (as the data module names them); read on the
        first step, once the data module has made its data (a synthetic world is generated then)."""
        if not self.references:
            from zoo.data.formats import read_rows

            rows = read_rows(self.source, self.split)
            self.references = {row.get("example_index", f"{self.split}[{i}]"): row for i, row in enumerate(rows)}
        return self.references

    def collate(self, groups, pad_token_id: int) -> ExampleBatch:
        return ExampleBatch(list(groups))  # padded in __call__, once the online responses exist

    def sample(self, policy: Policy, groups: Sequence[EncodedGroup], step: int):
        """``(generation, scores)``: K responses to each group's prompt (prompt-major rows) and their scores."""
        references = self.load_references()
        missing = [g.index for g in groups if g.index not in references]
        if missing:
            raise ValueError(f"{self.name}: no reference row for examples {missing[:3]} in {self.source} "
                             f"({self.split}): source and split must be the training data's")
        tok = policy.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(policy.parameters()).device
        prompts = to_device(pad_batch([g.prompt for g in groups], pad, "left"), device)
        generator = torch.Generator().manual_seed(sampling_seed(self.seed, step, process_rank()))
        with eval_mode(policy), torch.no_grad(), gathered_for_generation(policy):
            gen = policy.generate_group(prompts, self.k, max_new_tokens=self.max_new_tokens, do_sample=True,
                                        temperature=self.temperature, generator=generator)
        scores = self.judge(gen.texts, [references[g.index] for g in groups for _ in range(self.k)])
        self.judge_metrics = dict(getattr(self.judge, "metrics", None) or {})  # e.g. the prompted judge's ties
        return gen, scores

    @staticmethod
    def response_ids(gen, row: int, eos: int) -> torch.Tensor:
        """Row ``row``'s response as the training sees it: EOS appended when the length limit cut it off."""
        return torch.tensor(gen.token_ids[row] if gen.finished[row] else gen.token_ids[row] + [eos], dtype=torch.long)

    def write_record(self, step: int, examples: list, scores: Sequence[float], pairs: list | None) -> None:
        """Append this step's line to ``record/rank{R}.jsonl``: the rank, the examples sampled for, each one's K
        scores and (online DPO) its (best, worst) pair (null: a tie, the dataset's pair trained)."""
        rank = process_rank()
        folder = Path(self.record)
        folder.mkdir(parents=True, exist_ok=True)
        line = {"step": step, "rank": rank, "seed": sampling_seed(self.seed, step, rank), "examples": examples,
                "scores": [[float(x) for x in scores[n * self.k:(n + 1) * self.k]] for n in range(len(examples))]}
        if pairs is not None:
            line["pairs"] = [list(p) if p is not None else None for p in pairs]
        with open(folder / f"rank{rank}.jsonl", "a") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def _check_batch(self, batch) -> None:
        if not isinstance(batch, ExampleBatch):
            raise TypeError(f"{self.name} needs the encoded groups (its own collate), not a padded batch")


@PAIR_SOURCES.register("online_dpo")
class OnlineDPOPairs(OnlineSampler):
    """Online DPO / Mixed-DPO (module docstring)."""

    name = "online DPO"

    def __init__(self, judge, source: str, split: str = "pairs", k: int = 8, mix: float = 1.0,
                 temperature: float = 1.0, max_new_tokens: int = 48, eos: str = "drop", eos_penalty: float = 1.0,
                 seed: int = 0, layout: str = "shared_prefix", record: str | None = None):
        if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0 <= mix <= 1:
            raise ValueError(f"online DPO: mix (the share of online pairs) must be in [0, 1], not {mix!r}")
        if eos not in EOS_RULES:
            raise ValueError(f"online DPO: eos must be one of {', '.join(EOS_RULES)}, not {eos!r}")
        super().__init__(judge, source, split, k, temperature, max_new_tokens, eos_penalty, seed, layout, record)
        self.mix, self.eos = float(mix), eos

    def __call__(self, policy: Policy, batch: ExampleBatch, step: int = 0) -> GroupBatch:
        self._check_batch(batch)
        tok, groups = policy.tokenizer, list(batch.groups)
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        device = next(policy.parameters()).device
        online = [i for i, g in enumerate(groups) if takes_online(self.seed, g.index, step, self.mix)]
        ties = no_eos = 0
        best_scores, worst_scores = [], []
        if online:
            gen, scores = self.sample(policy, [groups[i] for i in online], step)
            no_eos = sum(not done for done in gen.finished)
            pairs: list[tuple[int, int] | None] = []
            for n, i in enumerate(online):
                rows = range(n * self.k, (n + 1) * self.k)
                picked = select_pair([scores[r] for r in rows], [gen.finished[r] for r in rows], self.eos,
                                     self.eos_penalty)
                pairs.append(picked)
                if picked is None:
                    ties += 1
                    continue
                best, worst = (rows[p] for p in picked)
                best_scores.append(scores[best])
                worst_scores.append(scores[worst])
                groups[i] = groups[i].with_responses([self.response_ids(gen, r, eos) for r in (best, worst)])
            if self.record:
                self.write_record(step, [groups[i].index for i in online], scores, pairs)
        n = len(groups)
        self.metrics = {"online/share": (len(online) - ties) / n, "online/ties": ties / max(1, len(online)),
                        "online/no_eos": no_eos / max(1, len(online) * self.k)}
        self.metrics.update(self.judge_metrics if online else {})
        if best_scores:
            self.metrics.update({"online/score_best": sum(best_scores) / len(best_scores),
                                 "online/score_worst": sum(worst_scores) / len(worst_scores)})
        return pad_groups(groups, pad, self.layout, pairs=((0, 1, 1.0),)).to(device)


@PAIR_SOURCES.register("online_group")
class OnlineGroups(OnlineSampler):
    """The on-policy group of GRPO / RLOO (module docstring): all K responses, the judge's scores as rewards."""

    name = "online groups"

    def __init__(self, judge, source: str, split: str = "pairs", k: int = 8, temperature: float = 1.0,
                 max_new_tokens: int = 48, eos_penalty: float = 1.0, drop_uniform: bool = False,
                 iterations: int = 1, seed: int = 0, layout: str = "shared_prefix", record: str | None = None):
        super().__init__(judge, source, split, k, temperature, max_new_tokens, eos_penalty, seed, layout, record)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"online groups: iterations (updates per sample) must be an integer >= 1, not {iterations!r}")
        self.drop_uniform, self.iterations = bool(drop_uniform), iterations
        self._kept: tuple[int, GroupBatch] | None = None  # (step sampled, batch) while it is reused

    def __call__(self, policy: Policy, batch: ExampleBatch, step: int = 0) -> GroupBatch:
        self._check_batch(batch)
        if self.iterations > 1 and self._kept is not None and step - self._kept[0] < self.iterations:
            # μ updates per sample (GRPO's μ): this step's loader batch is not used
            self.metrics = {**self.metrics, "online/reused": 1.0}
            return self._kept[1]
        tok, groups = policy.tokenizer, list(batch.groups)
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        device = next(policy.parameters()).device
        gen, scores = self.sample(policy, groups, step)
        rewards = [s - (0.0 if done else self.eos_penalty) for s, done in zip(scores, gen.finished)]
        if self.record:
            self.write_record(step, [g.index for g in groups], rewards, None)
        written, flat = [], []
        for n, g in enumerate(groups):
            rows = range(n * self.k, (n + 1) * self.k)
            group_rewards = [rewards[r] for r in rows]
            written.append(g.with_responses([self.response_ids(gen, r, eos) for r in rows], group_rewards))
            flat.append(max(group_rewards) == min(group_rewards))
        uniform = sum(flat)
        kept = [g for g, f in zip(written, flat) if not (self.drop_uniform and f)]
        kept = kept or written  # every group uniform: keep them all (their loss is the KL term alone), not none
        out = pad_groups(kept, pad, self.layout, pairs=()).to(device)
        self.metrics = {"online/uniform": uniform / len(groups), "online/kept": len(kept) / len(groups),
                        "online/no_eos": sum(not d for d in gen.finished) / len(gen.finished),
                        "online/score": sum(scores) / len(scores), "online/reused": 0.0, **self.judge_metrics}
        if self.iterations > 1:
            with eval_mode(policy), torch.no_grad():
                out.behaviour = stack_tokens([s.token_logps for s in policy.group_logps(out)])
            self._kept = (step, out)
        return out
