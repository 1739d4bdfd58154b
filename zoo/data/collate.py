"""Turn schema rows into model batches, for any backbone's processor.

`ExampleEncoder` encodes one row (chat template → processor with its media → response tokens
appended) and raises `DataError` naming the example and the field on bad input. `pad_batch`
stacks encoded examples into a batch.

Processor outputs are sorted by shape: a tensor with one value per prompt token (``token_type_ids``,
``mm_token_type_ids`` …) is a *token* input — extended over the response and padded with 0; every
other tensor (``pixel_values``, ``image_grid_thw`` …) is a *media* input — concatenated over the
batch. Nothing the processor returns is dropped, so side inputs always reach the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modalities import MediaError
from modalities.image import MAX_IMAGE_PIXELS
from modalities.record import all_modalities
from zoo.data.batches import (
    CHOSEN_REJECTED,
    IGNORE_INDEX,
    ConcatGroups,
    Encoded,
    EncodedGroup,
    PrefixGroups,
    Responses,
)
from zoo.data.schema import MEDIA_COLUMNS, DataError, media_items, response_text, validate_row

# Processor outputs that always describe media, never prompt tokens (pixels, grids, sizes, audio features).
MEDIA_INPUT_PREFIXES = tuple(dict.fromkeys(p for m in all_modalities() for p in m.input_prefixes))


def media_token_ids(processor) -> set[int]:
    """Token ids that stand for media in expanded sequences (composed or HF processor)."""
    for attr in ("media_token_ids", "image_token_ids"):  # ours; Gemma3-style processors list theirs
        ids = [i for i in getattr(processor, attr, None) or () if i is not None]
        if ids:
            return {int(i) for i in ids}
    found = set()
    tokenizer = getattr(processor, "tokenizer", None)  # Janus keeps its image token on the tokenizer only
    for owner in (processor, tokenizer):
        for m in all_modalities():
            value = getattr(owner, m.token_id_attr, None)
            if isinstance(value, int):
                found.add(value)
    return found


def processor_modalities(processor) -> set[str]:
    """The media kinds a processor reads: ours lists them; an HF processor has a sub-processor per kind."""
    if isinstance(getattr(processor, "media", None), dict):  # the composed model's processor
        return set(processor.media)
    return {m.name for m in all_modalities() if getattr(processor, m.hf_subprocessor, None) is not None}


class ExampleEncoder:
    """Encodes rows for one processor.

    ``response_field`` selects the response (``completion`` for SFT, ``chosen``/``rejected`` for
    pairs); None encodes the prompt alone, ready for generation.
    """

    def __init__(self, processor, max_length: int | None = None, media_root: str | Path | None = None,
                 video_frames: int = 8, max_image_pixels: int | None = MAX_IMAGE_PIXELS):
        self.processor = processor
        self.max_image_pixels = max_image_pixels
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.media_root = media_root
        self.video_frames = video_frames
        # Whisper-style feature extractors name the rate their audio encoder was trained at.
        self.sampling_rate = getattr(getattr(processor, "feature_extractor", None), "sampling_rate", 16000)
        self.modalities = processor_modalities(processor)
        self.media_ids = media_token_ids(processor)
        self._media_id_tensor = torch.tensor(sorted(self.media_ids), dtype=torch.long)
        # Rows that name the same media files (a caption and questions about one image) share one
        # processed tensor in memory instead of a copy each.
        self._shared_media: dict[tuple, dict[str, torch.Tensor]] = {}

    @property
    def settings(self) -> dict:
        """The encoder's own choices that shape model inputs (part of a cached reference's key)."""
        return {"max_length": self.max_length, "video_frames": self.video_frames, "sampling_rate": self.sampling_rate}

    def load_media(self, row: dict, index: Any) -> dict[str, list]:
        """The row's media, read and decoded, as the processor's keyword arguments (only kinds present)."""
        # what loaders may take by name (a record's load_options)
        settings = {"sampling_rate": self.sampling_rate, "num_frames": self.video_frames,
                    "max_pixels": self.max_image_pixels}
        media = {}
        for m in all_modalities():
            options = {name: settings[name] for name in m.load_options}
            loaded = []
            for i, item in enumerate(media_items(row, m.name)):
                try:
                    loaded.append(m.load(item, self.media_root, **options))
                except MediaError as e:
                    raise DataError(index, f"{m.column}[{i}]", str(e)) from None
            if loaded:
                media[m.processor_kwarg] = loaded
        return media

    def encode_prompt(self, row: dict, index: Any) -> tuple[torch.Tensor, dict, dict]:
        for kind, column in MEDIA_COLUMNS.items():  # processors drop unknown media without a word
            if media_items(row, kind) and kind not in self.modalities:
                takes = ", ".join(sorted(self.modalities)) or "text only"
                raise DataError(index, column, f"this model's processor takes no {kind} (it takes: {takes})")
        text = self.processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        media_kwargs = self.load_media(row, index)
        try:
            out = self.processor(text=[text], return_tensors="pt", add_special_tokens=False, **media_kwargs)
        except (ValueError, RuntimeError) as e:  # e.g. the processor finds a placeholder/feature mismatch
            raise DataError(index, "prompt", f"the processor rejected the example: {e}") from None
        input_ids = out["input_ids"][0]
        token, media = {}, {}
        for key, value in out.items():
            if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
                continue
            # A per-token input has the prompt's shape; a media input may have it too by chance (an
            # audio's feature mask over as many frames as the prompt has tokens), so names decide first.
            if not key.startswith(MEDIA_INPUT_PREFIXES) and value.ndim == 2 and value.shape == out["input_ids"].shape:
                token[key] = value[0]
            else:
                media[key] = value
        return input_ids, token, media

    def encode(self, row: dict, index: Any, response_field: str | None = "completion") -> Encoded:
        validate_row(row, index, (response_field,) if response_field else ())
        prompt = self._prompt(row, index)
        if response_field is None:
            return prompt
        return prompt.extend(self._response(row[response_field], index, response_field, prompt.prompt_length))

    def encode_group(self, row: dict, index: Any) -> EncodedGroup:
        """A preference row — ``chosen``/``rejected``, or ranked ``responses`` + ``scores`` — as one prompt
        (and its media) encoded once and the token ids of each response. Ranked responses are sorted by
        score, best first (ties keep their order), so slot 0 is always the preferred one."""
        if "responses" not in row:
            validate_row(row, index, ("chosen", "rejected"))
            prompt = self._prompt(row, index)
            chosen, rejected = (self._response(row[f], index, f, prompt.prompt_length) for f in ("chosen", "rejected"))
            return EncodedGroup(index, prompt, [chosen, rejected])
        validate_row(row, index, ())
        responses, scores = row["responses"], row.get("scores")
        if not isinstance(responses, list) or len(responses) < 2:
            raise DataError(index, "responses", "expected a list of at least 2 responses")
        if not isinstance(scores, list) or len(scores) != len(responses):
            got = f"{len(scores)} scores" if isinstance(scores, list) else "no list of scores"
            raise DataError(index, "scores", f"expected one score per response ({len(responses)}), got {got}")
        for i, score in enumerate(scores):
            if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
                raise DataError(index, f"scores[{i}]", f"expected a number, got {score!r}")
        if len(set(scores)) == 1:
            raise DataError(index, "scores", "all responses have the same score: the row carries no preference")
        prompt = self._prompt(row, index)
        order = sorted(range(len(responses)), key=lambda i: -scores[i])  # stable: ties keep their order
        ids = [self._response(responses[i], index, f"responses[{i}]", prompt.prompt_length) for i in order]
        return EncodedGroup(index, prompt, ids, [float(scores[i]) for i in order])

    def _prompt(self, row: dict, index: Any) -> Encoded:
        prompt_ids, token, media = self.encode_prompt(row, index)
        items = tuple((kind, item) for kind in MEDIA_COLUMNS for item in media_items(row, kind))
        if items and all(isinstance(i, str) for _, i in items):
            media = self._shared_media.setdefault(items, media)
        n_prompt = len(prompt_ids)
        if self.max_length is not None and n_prompt >= self.max_length:
            cut = prompt_ids[self.max_length :]
            n_media = int(torch.isin(cut, self._media_id_tensor).sum()) if len(self.media_ids) else 0
            what = f"would cut {n_media} media tokens" if n_media else "would leave no room for the response"
            raise DataError(
                index, "prompt", f"the prompt is {n_prompt} tokens but max_length is {self.max_length}: truncation {what}"
            )
        return Encoded(index, prompt_ids, torch.full((n_prompt,), IGNORE_INDEX), token, media, n_prompt)

    def _response(self, response, index: Any, field: str, n_prompt: int) -> torch.Tensor:
        """The response's token ids + EOS, truncated so prompt + response fit ``max_length``."""
        text = response_text(response, index, field)
        if not text.strip():
            raise DataError(index, field, "empty response")
        ids = torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id])
        return ids if self.max_length is None else ids[: self.max_length - n_prompt]


def pad_batch(examples: list[Encoded], pad_token_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Pad encoded examples into a batch dict (see `zoo.models.policy` for the keys)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    length = max(len(e.input_ids) for e in examples)

    def pad(t: torch.Tensor, value) -> torch.Tensor:
        fill = t.new_full((length - len(t),), value)
        return torch.cat([t, fill] if padding_side == "right" else [fill, t])

    batch: dict[str, Any] = {
        "input_ids": torch.stack([pad(e.input_ids, pad_token_id) for e in examples]),
        "attention_mask": torch.stack([pad(torch.ones_like(e.input_ids), 0) for e in examples]),
        "labels": torch.stack([pad(e.labels, IGNORE_INDEX) for e in examples]),
        "example_index": [e.index for e in examples],
    }
    for key in sorted({k for e in examples for k in e.token_inputs}):
        batch[key] = torch.stack(
            [pad(e.token_inputs.get(key, torch.zeros_like(e.input_ids)), 0) for e in examples]
        )
    for key in sorted({k for e in examples for k in e.media_inputs}):
        batch[key] = cat_media([e.media_inputs[key] for e in examples if key in e.media_inputs])
    return batch


def cat_media(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate per-example media tensors over dim 0, zero-padding every later dim to the largest.

    Processors that stack a variable number of items per image pad them with zeros themselves, and
    their models drop the padding again: LLaVA-NeXT's anyres patches ``[images, patches, C, H, W]``
    (cut back by ``image_sizes``), Idefics3's crops ``[1, images, C, H, W]`` (all-zero images are
    skipped, ``pixel_attention_mask`` pads with False), Whisper features ``[audios, mels, frames]``
    (``feature_attention_mask``). Examples are encoded one at a time, so the batch pads the same way.
    """
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].ndim)]
    if any(t.ndim != len(shape) for t in tensors):
        raise ValueError(f"media tensors of different ranks cannot be batched: {[tuple(t.shape) for t in tensors]}")
    padded = []
    for t in tensors:
        if list(t.shape[1:]) != shape[1:]:
            full = t.new_zeros((t.shape[0], *shape[1:]))  # zeros / False, whatever the dtype
            full[tuple(slice(0, n) for n in t.shape)] = t
            t = full
        padded.append(t)
    return torch.cat(padded)


@dataclass
class SkipReport:
    """What `encode_rows` skipped, by reason, when the user asked to skip bad input."""

    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        if not self.total:
            return "no example skipped"
        reasons = "; ".join(f"{n}× {r}" for r, n in self.skipped.most_common())
        return f"skipped {self.total} example(s): {reasons}"  # the reasons say why: bad input, or held out by a format


def encode_rows(
    rows, encode: Callable[[dict, Any], Any], skip_bad: bool = False, progress=None, source: Any = None
) -> tuple[list, SkipReport]:
    """Encode every row once with ``encode(row, index)`` (e.g. ``encoder.encode`` for SFT examples,
    ``encoder.encode_group`` for preference rows). Bad rows raise DataError (naming ``source``, the file
    the rows came from), or are skipped and counted with ``skip_bad``."""
    encoded, report = [], SkipReport()
    for i, row in enumerate(rows):
        index = row.get("example_index", i) if isinstance(row, dict) else i
        try:
            encoded.append(encode(row, index))
        except DataError as e:
            e.source = e.source or source
            if not skip_bad:
                raise
            report.skipped[f"{e.field.split('[')[0] or 'row'}: {e.kind or _reason_kind(e.reason)}"] += 1
            if len(report.examples) < 10:
                report.examples.append(str(e))
        if progress is not None:
            progress()
    return encoded, report


def _reason_kind(reason: str) -> str:
    for kind in ("not found", "unreadable", "too large", "placeholder", "truncation", "empty", "identical", "missing"):
        if kind in reason:
            return kind
    return reason[:60]


LAYOUTS = ("shared_prefix", "concat")


def pad_groups(groups: Sequence[EncodedGroup], pad_token_id: int, layout: str = "shared_prefix",
               pairs=CHOSEN_REJECTED, pair_names: tuple[str, ...] = ()):
    """Pad encoded groups (all with the same K) into a `PrefixGroups` or `ConcatGroups` batch.

    ``shared_prefix``: the prompts left-padded once with their media, so every prompt ends at the last
    column and the K responses continue from its KV cache; responses right-padded, slot-major.
    ``concat``: K full prompt + response batches, right-padded (the naive computation).
    """
    if not groups:
        raise ValueError("cannot collate an empty batch")
    k = groups[0].k
    for g in groups:
        if g.k != k:
            raise DataError(g.index, "responses", f"has {g.k} responses but the batch has {k}: "
                                                  "every row of a batch needs the same number")
    ranked = [g.scores is not None for g in groups]
    scores = torch.tensor([g.scores for g in groups], dtype=torch.float32) if all(ranked) else None
    common = dict(example_index=[g.index for g in groups], k=k, pairs=tuple(pairs), scores=scores,
                  pair_names=tuple(pair_names))
    if layout == "concat":
        return ConcatGroups(**common, sides=[pad_batch([g.side(s) for g in groups], pad_token_id) for s in range(k)])
    if layout != "shared_prefix":
        raise ValueError(f"unknown layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    prompt = pad_batch([g.prompt for g in groups], pad_token_id, padding_side="left")
    responses = [g.responses[s] for s in range(k) for g in groups]  # slot-major
    length = max(len(r) for r in responses)
    ids = torch.full((len(responses), length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(responses), length), dtype=torch.long)
    for row, r in enumerate(responses):
        ids[row, : len(r)], mask[row, : len(r)] = r, 1
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    return PrefixGroups(**common, prompt=prompt, responses=Responses(ids, mask, labels))


class Collator:
    """DataLoader ``collate_fn`` over already-encoded examples."""

    def __init__(self, pad_token_id: int, padding_side: str = "right"):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side

    def __call__(self, examples: list[Encoded]) -> dict[str, Any]:
        return pad_batch(examples, self.pad_token_id, self.padding_side)
