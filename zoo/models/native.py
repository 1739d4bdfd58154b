"""HF-native image-text-to-text models (LLaVA, Qwen2-VL, Gemma 3 …) as a `Backbone`.

`NativeBackbone` adapts any ``AutoModelForImageTextToText`` model and its ``AutoProcessor`` to the
`Policy` interface: media are encoded once with the model's own ``get_image_features`` and handed
back as ``mm_encoder_outputs``; positions come from the padding mask alone (the model's own 3-D
M-RoPE index for the Qwen2-VL family); every side input the processor made (``image_grid_thw``,
``token_type_ids`` …) reaches the model's forward at the prefill step.

What differs between families (which media a model encodes, its media modules, extra tokens, rope
inputs) is in its spec, `zoo.models.families`. `build_tiny_native` builds a family's tiny random model
with a processor assembled from local pieces, so the adapter can be tested offline in seconds.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from modalities.record import all_modalities, get_modality
from zoo.models.families import FAMILIES, FamilySpec, family_for, family_of
from zoo.models.policy import Backbone, Batch, Media, Policy, padding_position_ids

# Forward arguments that are never side inputs: set explicitly, training-only, or raw media
# (media reach the model pre-encoded; passing pixels too makes HF models raise).
NOT_SIDE_INPUTS = {
    "input_ids", "attention_mask", "position_ids", "cache", "past_key_values", "inputs_embeds", "use_cache",
    "labels", "logits_to_keep", "mm_encoder_outputs", "example_index", "return_dict", "kwargs",
}  # fmt: skip


def _param_names(fn) -> set[str]:
    """Named parameters of a (possibly decorated: `inspect` follows ``__wrapped__``) callable."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


class NativeBackbone(Backbone):
    """Adapter over an HF ``AutoModelForImageTextToText`` model (see module docstring); what differs
    between families comes from the model's `FamilySpec`."""

    def __init__(self, model, processor, family: FamilySpec | None = None):
        self.model = model
        self.processor = processor
        self.family = family or family_of(model)
        config = model.config
        tok = getattr(processor, "tokenizer", processor)
        ids = (getattr(config, m.token_id_attr, None) for m in all_modalities())
        self.media_ids = [i for i in ids if isinstance(i, int)]
        boundary = (getattr(o, n, None) for n in self.family.media_boundary_tokens for o in (config, tok))
        self.placeholder_ids = sorted(set(self.media_ids) | {i for i in boundary if isinstance(i, int)})
        self.side_inputs = {
            n for n in _param_names(model.forward) if n not in NOT_SIDE_INPUTS and not n.startswith("pixel_")
        }
        # M-RoPE models (Qwen2-VL family) expose their 3-D position index on the inner model.
        self.rope_index = getattr(getattr(model, "model", None), "get_rope_index", None)

    @property
    def media_token_ids(self) -> list[int]:
        return self.placeholder_ids

    def media_token_mask(self, batch: Batch) -> torch.Tensor:
        ids = batch["input_ids"]
        return torch.isin(ids, torch.tensor(self.media_ids, dtype=ids.dtype, device=ids.device))

    def encode_media(self, batch: Batch) -> Media:
        media = {}
        inner = getattr(self.model, "model", None)
        for kind in self.family.media:
            modality = get_modality(kind)
            key, method = modality.input_key, modality.hf_encode_method
            # Most heads expose the encoder method; some (Janus) only on their inner model.
            encode = getattr(self.model, method, None) or getattr(inner, method, None)
            pixels = batch.get(key)
            if pixels is None or encode is None:
                continue
            # The outer method may forward what the inner one names (LLaVA's image_sizes) via **kwargs.
            names = _param_names(encode) | _param_names(getattr(inner, method, None))
            extras = {n: batch[n] for n in names - NOT_SIDE_INPUTS - {key} if n in batch}
            pixels = pixels.to(self.model.device, self.model.dtype if pixels.is_floating_point() else pixels.dtype)
            media[kind] = encode(pixels, **self._to_device(extras), return_dict=True)
        return media

    def position_ids(self, batch: Batch) -> torch.Tensor:
        attention_mask = batch["attention_mask"]
        if self.rope_index is None:
            return padding_position_ids(attention_mask)
        # The model's own 3-D index, from the padding mask. get_rope_index is pure; the model's
        # compute_3d_position_ids would read and write its stateful `rope_deltas` instead.
        names = _param_names(self.rope_index) - {"input_ids", "attention_mask"}
        kwargs = {n: batch[n] for n in names if batch.get(n) is not None}
        rope_inputs = self.family.rope_inputs
        for name in names & rope_inputs.keys() - kwargs.keys():
            value = rope_inputs[name](batch)
            if value is not None:
                kwargs[name] = value
        if "mm_token_type_ids" in names and "mm_token_type_ids" not in kwargs:
            kwargs["mm_token_type_ids"] = self._mm_token_types(batch["input_ids"])
        position_ids, _ = self.rope_index(batch["input_ids"], attention_mask=attention_mask, **kwargs)
        return position_ids

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
        if batch is not None:  # prefill: every side input the model's forward accepts
            side = {k: v for k, v in batch.items() if k in self.side_inputs and v is not None}
        else:  # decoding step: only what the model needs at every step
            side = {k: input_ids.new_zeros(input_ids.shape) for k in self.family.decode_token_inputs}
        media, inputs_embeds = dict(media or {}), None
        scattered = {kind: media.pop(kind) for kind in self.family.scattered if kind in media}
        if scattered:
            raw = {name for kind in scattered for name in self.family.scattered[kind]}
            side = {k: v for k, v in side.items() if k not in raw}
            inputs_embeds = self._embed_with(input_ids, scattered)
        return self.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,  # with input_ids: the model still finds its placeholders by id
            attention_mask=attention_mask,
            position_ids=position_ids,
            mm_encoder_outputs=media or None,
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **self._to_device(side),
        )

    def _embed_with(self, input_ids: torch.Tensor, features: dict) -> torch.Tensor:
        """Token embeddings with each kind's encoded features written at its placeholder tokens, in order."""
        embeds = self.model.get_input_embeddings()(input_ids)
        for kind, encoded in features.items():
            values = encoded.last_hidden_state  # what the model's own forward places (flat: [tokens, H])
            mask = input_ids == getattr(self.model.config, get_modality(kind).token_id_attr)
            if int(mask.sum()) != values.shape[0]:
                raise ValueError(f"{int(mask.sum())} {kind} tokens in the batch but {values.shape[0]} {kind} features")
            embeds = embeds.masked_scatter(mask[..., None].to(embeds.device), values.to(embeds.device, embeds.dtype))
        return embeds

    def _mm_token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Text 0, image 1, video 2: what processors return as ``mm_token_type_ids``."""
        config = self.model.config
        types = torch.zeros_like(input_ids, dtype=torch.int)
        for value, name in ((1, "image_token_id"), (2, "video_token_id")):
            if isinstance(getattr(config, name, None), int):
                types[input_ids == getattr(config, name)] = value
        return types

    def _to_device(self, inputs: dict) -> dict:
        device = self.model.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def load_native_policy(
    name_or_path: str | Path, dtype: torch.dtype | str | None = None, device=None, trust_remote_code: bool = False
) -> Policy:
    """Load an HF image-text-to-text checkpoint and its processor as a `Policy`."""
    kwargs = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = dtype
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    family = family_for(config.model_type)  # an unknown family fails here, before any weights are read
    part = getattr(config, family.loaded_config, None) if family.loaded_config else None
    if part is not None:  # a full checkpoint, not the part saved alone (a trained thinker)
        # Qwen2.5-Omni: text comes from the thinker; the talker and its vocoder (speech out) are not
        # loaded. transformers maps the checkpoint's ``thinker.*`` weights and skips the others.
        kwargs["config"] = part
    model = AutoModelForImageTextToText.from_pretrained(name_or_path, **kwargs)
    if device is not None:
        model = model.to(device)
    processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return Policy(NativeBackbone(model.eval(), processor, family))


# ---------------------------------------------------------------------------------------------
# Tiny random models, built offline (tests, smoke runs): one per family (zoo.models.families).

TINY_ARCHS = tuple(FAMILIES.names())

DEFAULT_TEXTS = (
    "A red square sits on a blue background.",
    "Describe the image in one short sentence.",
    "The picture shows a small green circle next to a yellow line.",
    "What colour is the shape in the middle?",
    "There are two dogs playing in the park on a sunny day.",
    "The answer is yes, the object is round and bright.",
    "No, the image is dark and nothing can be seen.",
    "Count the objects and tell me how many there are.",
)


def make_tiny_native(arch: str, texts=None, seed: int = 0):
    """A tiny random model of family ``arch`` (eval mode) and its processor, in memory; deterministic per ``seed``."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown tiny arch {arch!r}; choose from {TINY_ARCHS}")
    torch.manual_seed(seed)
    model, processor = FAMILIES.get(arch).tiny(list(texts) if texts is not None else list(DEFAULT_TEXTS))
    return model.eval(), processor


def build_tiny_native(arch: str, out_dir: str | Path, texts=None, seed: int = 0) -> Path:
    """Build a tiny random ``arch`` model + processor offline and ``save_pretrained`` both to ``out_dir``,
    in the layout the family's real checkpoints have (Qwen2.5-Omni: thinker + talker + vocoder)."""
    model, processor = make_tiny_native(arch, texts, seed)
    checkpoint = FAMILIES.get(arch).checkpoint
    if checkpoint is not None:
        model = checkpoint(model)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
