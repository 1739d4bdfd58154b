"""The Policy: what every backbone offers the training and sampling code, composed or HF-native.

A `Backbone` adapter says how one family of models embeds media and computes positions; the
`Policy` builds everything else on it once: response log-probs, batched KV-cache generation and
the `media_keep` mask. So DPO, BDHS, online sampling and evaluation never special-case a backbone.

Batches are dicts produced by `zoo.data.collate`: ``input_ids``/``attention_mask`` ``[B, T]``,
``labels`` (``-100`` outside the response), the media tensors the backbone's processor made
(``pixel_values``, ``image_grid_thw``, ``token_type_ids`` …) and ``example_index``.

``media_keep`` is a boolean ``[B, T]`` mask over the batch's positions: False hides that media
token from attention in every layer (for every later query, at every decoding step). It must be
True at every non-media position. Positions are computed before masking, so masking never changes
the sequence length nor the position of any token.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.data.batches import IGNORE_INDEX, Batch, ConcatGroups, GroupBatch, PrefixGroups

Media = dict[str, Any]


@dataclass
class SequenceLogps:
    """Log-probs of the response tokens of each row."""

    logps: torch.Tensor  # [B] sum over response tokens
    token_logps: torch.Tensor  # [B, T-1] log p(token t+1 | ≤ t), 0 outside the response
    mask: torch.Tensor  # [B, T-1] bool, True on response tokens
    lengths: torch.Tensor  # [B] number of response tokens

    @property
    def mean_logps(self) -> torch.Tensor:
        return self.logps / self.lengths.clamp(min=1)


@dataclass
class Generation:
    token_ids: list[list[int]]  # new tokens of each row, stop token included when one was produced
    texts: list[str]  # decoded, special tokens removed
    finished: list[bool]  # True when the row stopped on a stop token (not on max_new_tokens)


class Backbone(ABC):
    """Adapter for one family of models. Subclasses hold ``model`` and ``processor``."""

    model: nn.Module
    processor: Any

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    @abstractmethod
    def media_token_mask(self, batch: Batch) -> torch.Tensor:
        """``[B, T]`` bool: True where the sequence holds a media token."""

    @property
    @abstractmethod
    def media_token_ids(self) -> list[int]:
        """Ids of the media placeholder tokens (input-side only: never generated)."""

    @abstractmethod
    def encode_media(self, batch: Batch) -> Media:
        """Encode every media item of the batch once; the result is passed back to `forward`."""

    @abstractmethod
    def position_ids(self, batch: Batch) -> torch.Tensor:
        """Position ids of the batch's tokens from the padding mask alone (never from media_keep)."""

    @abstractmethod
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        media: Media | None = None,
        batch: Batch | None = None,
        cache: Any = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ):
        """Run the model; returns an output with ``logits`` and ``cache``.

        ``batch`` carries side inputs at the prefill step (it is None on decoding steps);
        ``attention_mask`` already has media_keep folded in and covers cache + new tokens;
        ``logits_to_keep`` > 0 computes the logits of the last that many positions only.
        """

    def save_pretrained(self, path, state_dict: dict | None = None) -> None:
        """Write a loadable model folder: weights, config, processor and tokenizer files.

        A model with LoRA adapters is written merged (each update folded into its base weight: a plain folder
        that `zoo.load` and ``from_pretrained`` read as it is), with the adapter alone in ``adapter/`` (PEFT's
        format, for ``PeftModel.from_pretrained`` on the base language model). ``state_dict``: the model's whole
        weights, given when the model's own are sharded (``strategy=fsdp``).
        """
        import sys

        lora = "peft" in sys.modules and _has_lora(self.model)  # no peft imported: no adapters to look for
        if lora and state_dict is not None:
            raise NotImplementedError(
                "writing a LoRA model trained with sharded parameters (strategy=fsdp) is not supported yet: the "
                "run's checkpoints hold the whole weights, write the model folder with `zoo export RUN_DIR`")
        if state_dict is not None:
            self.model.save_pretrained(path, state_dict=state_dict)
        elif lora:
            from zoo.models.adapters import find_peft_model, merged_state_dict

            self.model.save_pretrained(path, state_dict=merged_state_dict(self.model))
            find_peft_model(self.model).save_pretrained(Path(path) / "adapter")
        else:
            self.model.save_pretrained(path)
        self.processor.save_pretrained(path)

    # whether `select_media` can pick encoded media by example (then media shared by several rows are encoded once)
    can_select_media: bool = False

    def select_media(self, media: Media, sources: Sequence[dict[str, torch.Tensor]], rows: Sequence[int]) -> Media:
        """The encoded media of a batch whose row r holds the media of example ``rows[r]``, from ``media``, the
        encoding of the examples whose media inputs are ``sources`` (in that order). Backbones whose encoded media
        are plain per-item tensors implement it (``can_select_media``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot select encoded media by example")

    def next_position_ids(self, position_ids: torch.Tensor, n: int = 1) -> torch.Tensor:
        """Positions of the next ``n`` text tokens after the last one (works for [B,T] and [R,B,T] ids)."""
        return position_ids[..., -1:] + torch.arange(1, n + 1, device=position_ids.device)


def _has_lora(model: nn.Module) -> bool:
    from zoo.models.adapters import peft_prefix

    return peft_prefix(model) is not None


@contextmanager
def eval_mode(module: nn.Module):
    """Evaluate ``module`` (dropout off) inside the block, then restore its train/eval mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def to_device(batch: Any, device) -> Any:
    """Tensors of a (nested) batch moved to ``device``; everything else as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def padding_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """1-D positions counting only real tokens (left or right padding alike)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def fold_media_keep(attention_mask: torch.Tensor, media_keep: torch.Tensor | None) -> torch.Tensor:
    """Hide masked media positions by zeroing them in the key-padding mask.

    ``media_keep`` may be shorter than ``attention_mask`` (during decoding the mask grows): the
    positions past its end are new tokens and stay visible.
    """
    if media_keep is None:
        return attention_mask
    keep = media_keep.to(device=attention_mask.device, dtype=torch.bool)
    extra = attention_mask.shape[1] - keep.shape[1]
    if extra < 0:
        raise ValueError(f"media_keep covers {keep.shape[1]} positions but the sequence has {attention_mask.shape[1]}")
    if extra:
        keep = torch.cat([keep, keep.new_ones(keep.shape[0], extra)], dim=1)
    return attention_mask * keep.to(attention_mask.dtype)


class Policy(nn.Module):
    """One interface over every backbone (see module docstring)."""

    # > 0: response log-probs from the final hidden states, this many tokens at a time, never the [B, T, V] logits
    # (`chunked_response_logps`; set by the training module's ``logps_chunk``); 0: the full logits (`response_logps`)
    logps_chunk: int = 0

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model  # registered as a submodule: Lightning sees its parameters

    @property
    def processor(self):
        return self.backbone.processor

    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    def encode_media(self, batch: Batch) -> Media:
        return self.backbone.encode_media(batch)

    def check_media_keep(self, batch: Batch, media_keep: torch.Tensor | None) -> None:
        if media_keep is None:
            return
        if media_keep.shape != batch["input_ids"].shape:
            raise ValueError(f"media_keep has shape {tuple(media_keep.shape)}; expected {tuple(batch['input_ids'].shape)}")
        is_media = self.backbone.media_token_mask(batch).to(media_keep.device)
        if (~media_keep.bool() & ~is_media).any():
            raise ValueError("media_keep hides non-media positions: it may only be False on media tokens")

    def logits(self, batch: Batch, media: Media | None = None, media_keep: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, V]`` next-token logits of the full sequences."""
        self.check_media_keep(batch, media_keep)
        if media is None:
            media = self.encode_media(batch)
        attention_mask = fold_media_keep(batch["attention_mask"], media_keep)
        out = self.backbone.forward(
            batch["input_ids"], attention_mask, self.backbone.position_ids(batch), media=media, batch=batch
        )
        return out.logits

    def sequence_logps(
        self, batch: Batch, media: Media | None = None, media_keep: torch.Tensor | None = None
    ) -> SequenceLogps:
        """Log-probs of the response tokens only (``labels != -100``)."""
        with self._head_outputs() as head:
            states = self.logits(batch, media, media_keep)[:, :-1]
        return self._response_logps(states, batch["labels"][:, 1:], head)

    @contextmanager
    def _head_outputs(self) -> Iterator[nn.Module | None]:
        """With ``logps_chunk`` > 0: the LM head passes its input through inside the block, so the backbone's
        "logits" are the final hidden states (the head is yielded, for `chunked_response_logps`); else nothing
        changes and None is yielded."""
        if not self.logps_chunk:
            yield None
            return
        head = self.model.get_output_embeddings()
        config = getattr(self.model.config, "get_text_config", lambda: self.model.config)()
        for name in ("final_logit_softcapping", "logit_scale"):  # logits post-processed after the head
            if getattr(config, name, None) not in (None, 1.0):
                raise ValueError(f"logps_chunk needs the logits to be the LM head's output, but this model applies "
                                 f"{name}={getattr(config, name)}: set logps_chunk=0")
        head.forward = _identity  # an instance attribute: nn.Module.__call__ finds it before the class's forward
        try:
            yield head
        finally:
            del head.forward

    def _response_logps(self, states: torch.Tensor, labels: torch.Tensor, head: nn.Module | None) -> SequenceLogps:
        if head is None:
            return response_logps(states, labels)
        return chunked_response_logps(states, head.weight, head.bias, labels, self.logps_chunk)

    def _prefill(self, batch: Batch, media: Media | None, media_keep: torch.Tensor | None, unpadded: str,
                 logits_to_keep: int = 0):
        """Run left-padded prompts once with a KV cache: ``(output, position_ids, attention_mask)``, the
        mask with ``media_keep`` folded in. ``unpadded`` is the error for prompts that are not left-padded."""
        ids, am = batch["input_ids"], batch["attention_mask"]
        if not bool(am[:, -1].all()):
            raise ValueError(unpadded)
        self.check_media_keep(batch, media_keep)
        if media is None:
            media = self.encode_media(batch)
        position_ids = self.backbone.position_ids(batch)
        am = fold_media_keep(am, media_keep)
        out = self.backbone.forward(ids, am, position_ids, media=media, batch=batch, use_cache=True,
                                    logits_to_keep=logits_to_keep)
        return out, position_ids, am

    def group_logps(self, batch: GroupBatch, media: Media | None = None,
                    media_keep: torch.Tensor | None = None) -> list[SequenceLogps]:
        """Response log-probs of each of the K response slots of a group batch (`zoo.data.collate.pad_groups`).

        Media are encoded once per prompt in both layouts. `PrefixGroups` runs each prompt (media tokens
        included) once, keeps its KV cache, and continues all K responses from it in one ``[K*B, R]``
        forward; gradients reach the prefix through the cache, so it is also back-propagated once.
        `ConcatGroups` runs the K full sequences (the naive computation). ``media_keep`` covers the prompt
        (``[B, P]``, prefix layout) or the first side (concat).
        """
        if media is None:
            media = self.encode_media(batch.media_batch)
        if isinstance(batch, ConcatGroups):
            keeps = [media_keep if media_keep is None or s == 0 else _match_keep(media_keep, side["input_ids"].shape[1])
                     for s, side in enumerate(batch.sides)]
            return [self.sequence_logps(side, media, keep) for side, keep in zip(batch.sides, keeps)]
        if not isinstance(batch, PrefixGroups):
            raise TypeError(f"group_logps takes PrefixGroups or ConcatGroups, not {type(batch).__name__}")
        prompt, responses, K = batch.prompt, batch.responses, batch.k
        with self._head_outputs() as head:
            seq = self._prefix_group_logps(prompt, responses, K, media, media_keep, head)
        B = prompt["input_ids"].shape[0]
        return [SequenceLogps(*(t[s * B:(s + 1) * B] for t in (seq.logps, seq.token_logps, seq.mask, seq.lengths)))
                for s in range(K)]

    def _prefix_group_logps(self, prompt: Batch, responses, K: int, media: Media, media_keep: torch.Tensor | None,
                            head: nn.Module | None) -> SequenceLogps:
        """The K·B response rows (slot-major) of a `PrefixGroups` batch: the prompts once, then the responses
        from their KV cache."""
        out, position_ids, am = self._prefill(prompt, media, media_keep, logits_to_keep=1,
                                              unpadded="shared-prefix groups need left-padded prompts (pad_groups)")
        ids = prompt["input_ids"]
        B = ids.shape[0]
        rows = torch.arange(B, device=ids.device).repeat(K)  # slot-major: the prompt of every response row
        cache = out.cache
        cache.reorder_cache(rows)  # differentiable index_select: the prefix graph is shared by all K
        r_ids = responses.input_ids.to(ids.device)
        R = r_ids.shape[1]
        r_pos = self.backbone.next_position_ids(position_ids, R).index_select(-2, rows)
        full_am = torch.cat([am.index_select(0, rows), responses.attention_mask.to(am.device)], dim=1)
        cont = self.backbone.forward(r_ids, full_am, r_pos, cache=cache, use_cache=True)
        # logits predicting response token j: the prompt's last position for j = 0, else response token j-1
        logits = torch.cat([out.logits[:, -1:].index_select(0, rows), cont.logits[:, :-1]], dim=1)
        return self._response_logps(logits, responses.labels.to(r_ids.device), head)

    def pair_logps(self, batch: GroupBatch, media: Media | None = None,
                   media_keep: torch.Tensor | None = None) -> tuple[SequenceLogps, SequenceLogps]:
        """`group_logps` of a pair batch (K = 2): ``(chosen, rejected)``."""
        if batch.k != 2:
            raise ValueError(f"pair_logps needs K = 2 responses per prompt, the batch has {batch.k}")
        chosen, rejected = self.group_logps(batch, media, media_keep)
        return chosen, rejected

    @torch.no_grad()
    def generate(
        self,
        batch: Batch,
        media: Media | None = None,
        media_keep: torch.Tensor | None = None,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop_token_ids: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """Continue every (left-padded) prompt of the batch with a KV cache, all rows at once."""
        out, position_ids, attention_mask = self._prefill(  # only the last position's logits are needed
            batch, media, media_keep, logits_to_keep=1,
            unpadded="generate needs left-padded prompts (collate with padding_side='left')",
        )
        return self._decode(out, position_ids, attention_mask, max_new_tokens, do_sample, temperature, top_p,
                            stop_token_ids, generator)

    def generate_group(
        self,
        batch: Batch,
        k: int,
        media: Media | None = None,
        media_keep: torch.Tensor | None = None,
        max_new_tokens: int = 64,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop_token_ids: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """K responses to every (left-padded) prompt: media encoded and the prompt prefilled once, then its KV
        cache copied K ways and all B·K rows decoded together. Rows are prompt-major (response j of prompt i is
        row i·K + j): the same rows, logits and — with the same ``generator`` — samples as `generate` on the
        batch with each prompt repeated K times, which prefills every copy (`tests/models/test_group_generate.py`).
        """
        if k < 1:
            raise ValueError(f"generate_group needs k >= 1, not {k}")
        out, position_ids, attention_mask = self._prefill(
            batch, media, media_keep, logits_to_keep=1,
            unpadded="generate_group needs left-padded prompts (collate with padding_side='left')",
        )
        rows = torch.arange(batch["input_ids"].shape[0], device=attention_mask.device).repeat_interleave(k)
        out.cache.reorder_cache(rows)  # each prompt's cache, K times
        shared = _Step(out.logits.index_select(0, rows), out.cache)
        return self._decode(shared, position_ids.index_select(-2, rows), attention_mask.index_select(0, rows),
                            max_new_tokens, do_sample, temperature, top_p, stop_token_ids, generator)

    def _decode(self, out, position_ids, attention_mask, max_new_tokens, do_sample, temperature, top_p,
                stop_token_ids, generator) -> Generation:
        """The decoding loop after a prefill: ``out`` holds the last position's logits and the KV cache."""
        tok, device = self.tokenizer, attention_mask.device
        stops = set(stop_token_ids) if stop_token_ids is not None else {tok.eos_token_id}
        stop_t = torch.tensor(sorted(stops), device=device)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        banned = torch.tensor(self.backbone.media_token_ids, dtype=torch.long, device=device)
        B = attention_mask.shape[0]
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        new_tokens = []
        for step in range(max_new_tokens):
            logits = out.logits[:, -1].float()
            logits[:, banned] = float("-inf")  # a media placeholder without media would be garbage
            next_tok = _pick(logits, do_sample, temperature, top_p, generator)
            next_tok = torch.where(finished, torch.full_like(next_tok, pad_id), next_tok)
            new_tokens.append(next_tok)
            finished |= torch.isin(next_tok, stop_t)
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(B, 1)], dim=1)
            position_ids = self.backbone.next_position_ids(position_ids)
            out = self.backbone.forward(
                next_tok[:, None], attention_mask, position_ids, cache=out.cache, use_cache=True
            )
        gen = torch.stack(new_tokens, 1).tolist() if new_tokens else [[] for _ in range(B)]
        token_ids, done = [], []
        for row in gen:
            cut = next((i for i, t in enumerate(row) if t in stops), None)
            token_ids.append(row if cut is None else row[: cut + 1])
            done.append(cut is not None)
        texts = tok.batch_decode(token_ids, skip_special_tokens=True)
        return Generation(token_ids, [t.strip() for t in texts], done)


@dataclass
class _Step:
    """What a decoding step reads of a forward's output: the logits and the KV cache."""
    logits: torch.Tensor
    cache: Any


def response_logps(logits: torch.Tensor, labels: torch.Tensor) -> SequenceLogps:
    """The one log-prob computation: ``logits[:, t]`` predicts ``labels[:, t]``; positions labelled -100
    are not response tokens and count 0. Half-precision logits are upcast to float32 first."""
    logits = _upcast(logits)
    mask = labels != IGNORE_INDEX
    targets = labels.masked_fill(~mask, 0)
    token_logps = (logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)) * mask
    return SequenceLogps(token_logps.sum(-1), token_logps, mask, mask.sum(-1))


def chunked_response_logps(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           labels: torch.Tensor, chunk: int) -> SequenceLogps:
    """`response_logps` of ``logits = states @ weight.T + bias`` without the ``[B, T, V]`` logits.

    Only the response positions (``labels != -100``) are scored, ``chunk`` of them at a time: each chunk's logits
    are made, reduced to the target's log-prob, and dropped; the backward pass makes them again
    (`_LinearLogSoftmax`). Peak memory is ``chunk × V`` floats instead of ``B × T × V`` (at 576 image tokens and a
    32 k vocabulary, the prompt's logits alone are gigabytes). Equal to the full computation: log-probs and the
    gradients of ``states``, ``weight`` and ``bias`` (``tests/models/test_chunked_logps.py``).
    """
    mask = labels != IGNORE_INDEX
    picked = _LinearLogSoftmax.apply(states[mask], weight, bias, labels[mask], chunk)
    token_logps = torch.zeros(labels.shape, dtype=picked.dtype, device=picked.device).masked_scatter(mask, picked)
    return SequenceLogps(token_logps.sum(-1), token_logps, mask, mask.sum(-1))


class _LinearLogSoftmax(torch.autograd.Function):
    """``log_softmax(h @ W.T + b)[target]`` per row, chunk by chunk, the logits recomputed in backward.

    The logits are made in the states' dtype and upcast (as the LM head followed by `_upcast`); the gradient of
    the logits is ``g · (onehot(target) − softmax)``, cast back to that dtype before the two matmuls."""

    @staticmethod
    def forward(ctx, states, weight, bias, targets, chunk):
        out = torch.empty(states.shape[0], dtype=torch.promote_types(states.dtype, torch.float32),
                          device=states.device)
        lse = torch.empty_like(out)
        for start in range(0, states.shape[0], chunk):
            part = slice(start, start + chunk)
            logits = _upcast(torch.nn.functional.linear(states[part], weight, bias))
            lse[part] = logits.logsumexp(-1)
            out[part] = logits.gather(-1, targets[part, None]).squeeze(-1) - lse[part]
        ctx.chunk = chunk
        ctx.save_for_backward(states, weight, bias, targets, lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        states, weight, bias, targets, lse = ctx.saved_tensors
        need_states, need_weight, need_bias = ctx.needs_input_grad[:3]
        g_states = torch.zeros_like(states) if need_states else None
        g_weight = torch.zeros_like(weight, dtype=torch.promote_types(weight.dtype, torch.float32)) \
            if need_weight else None
        g_bias = torch.zeros_like(bias, dtype=g_weight.dtype if g_weight is not None else torch.float32) \
            if need_bias else None
        rows = torch.arange(states.shape[0], device=states.device)
        for start in range(0, states.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            logits = _upcast(torch.nn.functional.linear(states[part], weight, bias))
            d = logits.sub_(lse[part, None]).exp_().mul_(-grad[part, None])  # −g · softmax
            d[rows[part] - start, targets[part]] += grad[part]
            d = d.to(states.dtype)
            if need_states:
                g_states[part] = d @ weight
            if need_weight:
                g_weight += (d.t() @ states[part]).to(g_weight.dtype)
            if need_bias:
                g_bias += d.sum(0).to(g_bias.dtype)
        g_weight = g_weight.to(weight.dtype) if g_weight is not None else None
        g_bias = g_bias.to(bias.dtype) if g_bias is not None else None
        return g_states, g_weight, g_bias, None, None


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits to float32 for log-softmax; float32/float64 stay as they are."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _match_keep(media_keep: torch.Tensor, length: int) -> torch.Tensor:
    """A media_keep mask made for one side of a concat pair, cut or padded (True) to the other side's length."""
    if media_keep.shape[1] >= length:
        return media_keep[:, :length]
    return torch.cat([media_keep, media_keep.new_ones(media_keep.shape[0], length - media_keep.shape[1])], 1)


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float, generator) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(-1)
    logits = logits / max(temperature, 1e-6)
    probs = logits.softmax(-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
