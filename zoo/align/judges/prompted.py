"""The prompted pairwise judge: a VLM asked which of two responses is better, in both orders.

`PromptedJudge` loads any zoo model folder or HF VLM (`zoo.models.load_policy`; lazily, in eval mode, no
gradients) and asks it, through its chat template, the question of `zoo.data.judging` — by default "Which
description matches the image better? A: … B: … Answer with A or B." after the row's image(s) — and reads
the log-probabilities of the two letters as the next token after the assistant turn starts (no sampling): the
first token of ``"A"`` and of ``"B"`` as the tokenizer writes them alone, i.e. the token an SFT row with
completion ``A`` trains (the ``pairwise_judge`` data format writes those rows from the same template).

Both orders are asked, (a, b) and (b, a); a pair is decided only when both orders prefer the same response,
otherwise it is a tie (position bias — a model that always answers A — decides nothing). `compare` gives +1
(a better), 0 (tie) or −1 (b better); `compare_many` the same for a batch of pairs.

As a pointwise judge (``judge(texts, references) -> list[float]``, what online DPO and the group sources
call): consecutive rows with the same reference are one group (online DPO's K responses to a prompt) and each
response scores its wins minus its losses over every other response of its group (round robin, both orders
per pair; identical texts tie without asking) — so online DPO's best-vs-worst and its tie fallback apply
unchanged. ``metrics`` holds the last call's counts (``judge/pairs``, ``judge/decided``, ``judge/ties``,
``judge/tie_rate``, ``judge/identical``); ``totals`` the counts since the judge was built.

Forward passes are batched (``batch_size`` questions each, both orders of every pair of every group of the
call): each question is one prompt and the two letters are its two one-token continuations of a shared-prefix
group batch (`Policy.group_logps`: the prompt runs once, both letters read from its KV cache). A question's
media are its own (the responses sit inside the prompt, after the image, so no prefix beyond the image is
shared, and the Policy API has no generic way to reuse one image's encoding across rows of different
prompts); the processor's output is shared in memory across the questions of a row (`ExampleEncoder`).

Use it in online DPO (``source``: the dataset folder relative media paths start from; the references are the
data rows, as online DPO passes them)::

    zoo train recipe=online_dpo model=pretrained model.path=/work/exp/base/model \\
        module.pairs.judge._target_=zoo.align.judges.prompted.PromptedJudge \\
        '~module.pairs.judge.world' '~module.pairs.judge.omission_weight' \\
        +module.pairs.judge.path=/work/exp/judge-s0/model +module.pairs.judge.source='${data.path}'

or ``pairs=online_dpo_prompted module.pairs.judge.path=…`` (recipes/pairs/online_dpo_prompted.yaml). Train a
judge for the shapes world with SFT on the ``pairwise_judge`` format, and measure its held-out agreement with
``python -m zoo.align.judges JUDGE_MODEL DATA`` (`zoo/align/judges/__main__.py`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from zoo.align.judges import JUDGES, Judge
from zoo.data.judging import (
    DEFAULT_JUDGE_QUESTION,
    JUDGE_LETTERS,
    check_question,
    judge_row,
)


def decide(margin_ab: float, margin_ba: float) -> int:
    """+1 (a better), −1 (b better) or 0 (tie) from the two orders' margins log p(A) − log p(B): asked with a
    first, a positive margin prefers a; asked with b first, a negative margin does. Decided only when both agree."""
    first = (margin_ab > 0) - (margin_ab < 0)
    second = (margin_ba < 0) - (margin_ba > 0)
    return first if first == second else 0


def round_robin(texts: Sequence[str], outcome: Mapping[tuple[str, str], int]) -> list[float]:
    """Each response's wins minus losses against every other response of its group; ``outcome[(x, y)]`` is
    `compare`'s answer for x against y (texts equal but for outer spaces tie)."""
    scores = []
    for i, x in enumerate(texts):
        total = 0
        for j, y in enumerate(texts):
            if i != j and x.strip() != y.strip():
                total += outcome[(x, y)] if (x, y) in outcome else -outcome[(y, x)]
        scores.append(float(total))
    return scores


@JUDGES.register("prompted")
class PromptedJudge(Judge):
    """A VLM asked which response is better, both orders, ties when they disagree (module docstring).

    ``path``: a zoo model folder or HF VLM (hub id or folder), loaded on first use; ``source``: where relative
    media paths of the rows start (the dataset folder; None: as they are); ``question``: the template
    (`zoo.data.judging`, ``{a}``, ``{b}``, optional ``{prompt}``) — keep the one the judge was trained with;
    ``batch_size``: questions per forward pass; ``device`` (default: CUDA when there is one) and ``dtype`` for
    loading; ``max_length``: refuse longer questions (None: no limit); ``policy``: an already loaded `Policy`
    instead of ``path``.
    """

    def __init__(self, path: str | None = None, source: str | None = None, question: str = DEFAULT_JUDGE_QUESTION,
                 batch_size: int = 32, device: str | None = None, dtype: str | None = None,
                 max_length: int | None = None, policy=None):
        if path is None and policy is None:
            raise ValueError("prompted judge: give the judge model's path (a zoo model folder or an HF VLM)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"prompted judge: batch_size must be an integer >= 1, not {batch_size!r}")
        self.path, self.source, self.question = path, source, check_question(question)
        self.batch_size, self.device, self.dtype, self.max_length = batch_size, device, dtype, max_length
        self._policy, self._encoder, self._letters = policy, None, None
        self.metrics: dict[str, float] = {}
        self.totals: Counter = Counter()

    # -- the model -------------------------------------------------------------------------------------
    @property
    def policy(self):
        """The judge model, loaded on first use, in eval mode, without gradients."""
        if self._policy is None:
            from zoo.models import load_frozen_policy

            self._policy = load_frozen_policy(self.path, dtype=self.dtype, device=self.device)
        return self._policy

    @property
    def letter_ids(self) -> tuple[int, int]:
        """The token ids of the letters A and B: the first token of each as the tokenizer writes it alone."""
        if self._letters is None:
            tok = self.policy.tokenizer
            ids = [tok(letter, add_special_tokens=False)["input_ids"] for letter in JUDGE_LETTERS]
            if not all(ids) or ids[0][0] == ids[1][0]:
                raise ValueError(f"prompted judge: the tokenizer does not tell the letters {JUDGE_LETTERS} apart "
                                 f"by their first token ({ids})")
            self._letters = (ids[0][0], ids[1][0])
        return self._letters

    def encoder(self):
        if self._encoder is None:
            from zoo.data.collate import ExampleEncoder

            self._encoder = ExampleEncoder(self.policy.processor, self.max_length, media_root=self.source)
        return self._encoder

    def margins(self, questions: Sequence[dict]) -> list[float]:
        """log p(A) − log p(B) of the next token after each judge row's prompt, in batches of ``batch_size``."""
        from zoo.data.batches import EncodedGroup
        from zoo.data.collate import pad_groups
        from zoo.models.policy import eval_mode

        policy, encoder = self.policy, self.encoder()
        a_id, b_id = self.letter_ids
        letters = [torch.tensor([a_id]), torch.tensor([b_id])]
        tok = policy.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(policy.parameters()).device
        out: list[float] = []
        for start in range(0, len(questions), self.batch_size):
            chunk = questions[start:start + self.batch_size]
            groups = [EncodedGroup(q.get("example_index", start + n), encoder.encode(q, q.get("example_index",
                                   start + n), None), letters) for n, q in enumerate(chunk)]
            batch = pad_groups(groups, pad, "shared_prefix", pairs=()).to(device)
            with eval_mode(policy), torch.no_grad():
                a, b = policy.group_logps(batch)
            out += (a.logps - b.logps).float().tolist()
        encoder._shared_media.clear()  # one call's images, not every image the judge ever saw
        return out

    # -- pairs -----------------------------------------------------------------------------------------
    def compare_many(self, items: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[int]:
        """`compare` for many ``(text_a, text_b, reference)``: both orders of every pair in shared batches."""
        questions, asked = [], []
        for n, (a, b, reference) in enumerate(items):
            if a.strip() == b.strip():
                continue
            index = reference.get("example_index", reference.get("id", n)) if isinstance(reference, Mapping) else n
            for first, second in ((a, b), (b, a)):
                questions.append({**judge_row(reference, first, second, self.question, index), "example_index": index})
            asked.append(n)
        margins = self.margins(questions)
        results = [0] * len(items)
        for q, n in enumerate(asked):
            results[n] = decide(margins[2 * q], margins[2 * q + 1])
        decided = sum(results[n] != 0 for n in asked)
        counts = Counter(pairs=len(asked), decided=decided, ties=len(asked) - decided,
                         identical=len(items) - len(asked))
        self.totals.update(counts)
        self.metrics = {f"judge/{k}": float(counts[k]) for k in ("pairs", "decided", "ties", "identical")}
        self.metrics["judge/tie_rate"] = counts["ties"] / max(1, len(asked))
        return results

    def compare(self, text_a: str, text_b: str, reference: Mapping[str, Any]) -> int:
        """+1 when ``text_a`` is the better response to the row ``reference``, −1 when ``text_b`` is, 0 (a tie)
        unless both orders agree."""
        return self.compare_many([(text_a, text_b, reference)])[0]

    # -- the pointwise interface -----------------------------------------------------------------------
    @staticmethod
    def groups(references: Sequence[Mapping[str, Any]]) -> list[range]:
        """Runs of consecutive rows with the same reference (online DPO's K responses to one prompt)."""
        runs: list[range] = []
        start = 0
        for i in range(1, len(references) + 1):
            if i == len(references) or not (references[i] is references[start] or references[i] == references[start]):
                runs.append(range(start, i))
                start = i
        return runs

    def __call__(self, texts: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[float]:
        if len(texts) != len(references):
            raise ValueError(f"prompted judge: {len(texts)} texts but {len(references)} references")
        items, keys = [], []
        groups = self.groups(references)
        for g, rows in enumerate(groups):
            distinct = list(dict.fromkeys(texts[r] for r in rows))
            for x, y in itertools.combinations(distinct, 2):
                if x.strip() != y.strip():
                    items.append((x, y, references[rows[0]]))
                    keys.append((g, x, y))
        results = self.compare_many(items) if items else []
        if not items:
            self.metrics = {"judge/pairs": 0.0, "judge/decided": 0.0, "judge/ties": 0.0, "judge/identical": 0.0,
                            "judge/tie_rate": 0.0}
        outcome: list[dict[tuple[str, str], int]] = [{} for _ in groups]
        for (g, x, y), result in zip(keys, results):
            outcome[g][(x, y)] = result
        scores = [0.0] * len(texts)
        for g, rows in enumerate(groups):
            for r, score in zip(rows, round_robin([texts[r] for r in rows], outcome[g])):
                scores[r] = score
        return scores


def agreement(judge: PromptedJudge, rows: Sequence[Mapping[str, Any]]) -> Counter:
    """How the judge's verdicts on preference rows (``chosen`` vs ``rejected``) meet the rows' own labels:
    ``correct`` (both orders prefer chosen), ``tie`` (the orders disagree, or no preference), ``wrong``."""
    from zoo.data.schema import response_text

    items = [(response_text(r["chosen"], i, "chosen"), response_text(r["rejected"], i, "rejected"), r)
             for i, r in enumerate(rows)]
    verdicts = judge.compare_many(items)
    return Counter({"correct": verdicts.count(1), "tie": verdicts.count(0), "wrong": verdicts.count(-1)})
