"""The composed backbone: any HF causal LM + per-modality encoders and projectors, LLaVA-style.

Visual Instruction Tuning (Liu et al., 2023, arXiv:2304.08485) and Improved Baselines with Visual
Instruction Tuning (arXiv:2310.03744): an encoder's spatial tokens, projected by a small MLP,
replace placeholder tokens in the LM's input sequence. Here the glue is generic: one placeholder
token per modality, encoders built by registry name (`modalities`), the LM from any config.

`ComposedConfig` / `ComposedForConditionalGeneration` are registered with the Auto classes, so
after ``import zoo`` a saved model round-trips through ``AutoModelForImageTextToText`` (and
``AutoModel``). `ComposedProcessor` expands each placeholder into the media's tokens and travels
with the model (tokenizer files + ``processor_config.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithPast

from modalities.record import Modality, all_modalities, get_modality
from zoo.models.policy import Backbone, Batch, Media, Policy, fold_media_keep, padding_position_ids

PROCESSOR_CONFIG = "processor_config.json"


def composed_modality(name: str) -> Modality:
    """The record of a modality the composed model can take (one with an encoder, processor, placeholder)."""
    modality = get_modality(name)
    if modality.encoder is None:
        takes = ", ".join(m.name for m in all_modalities() if m.encoder is not None)
        raise ValueError(f"the composed model has no {name} encoder yet (modalities/{name}.py registers none); "
                         f"it takes: {takes}")
    return modality


class ComposedConfig(PreTrainedConfig):
    r"""Composite config: the LM's config plus one entry per input modality.

    ``modalities`` maps a modality name (``"image"``) to ``{"encoder": {…the modality's encoder config
    fields…}, "projector": "mlp2x_gelu" | "linear", "token_id": placeholder token id}``.
    """

    model_type = "zoo_composed"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    text_config: dict | PreTrainedConfig | None = None
    modalities: dict | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.modalities = dict(self.modalities or {})

    @property
    def image_token_id(self) -> int | None:
        return (self.modalities.get("image") or {}).get("token_id")


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """``linear`` or LLaVA-1.5's ``mlp2x_gelu``."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"unknown projector '{kind}' (linear, mlp2x_gelu)")


class ComposedForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config: ComposedConfig
    config_class = ComposedConfig
    base_model_prefix = "composed"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: ComposedConfig):
        super().__init__(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        hidden = config.text_config.hidden_size
        self.encoders = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        self.num_media_tokens: dict[str, int] = {}
        for name, spec in config.modalities.items():
            modality = composed_modality(name)
            encoder = modality.encoder(modality.encoder_config(**spec["encoder"]))
            self.encoders[name] = encoder
            self.projectors[name] = build_projector(spec.get("projector", "mlp2x_gelu"), encoder.out_dim, hidden)
            self.num_media_tokens[name] = encoder.num_tokens
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def _init_weights(self, module):
        # The encoders keep their own (timm) initialisation; only HF-side modules are initialised here.
        if any(module is m or any(module is s for s in m.modules()) for m in self.encoders.values()):
            return
        super()._init_weights(module)

    def encode_media(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Projected media embeddings ``{modality: [N, tokens, hidden]}`` for the inputs present."""
        out = {}
        for name, encoder in self.encoders.items():
            x = inputs.get(composed_modality(name).input_key)
            if x is not None and len(x):
                feats = encoder(x.to(self.device, dtype=next(encoder.parameters()).dtype))
                out[name] = self.projectors[name](feats)
        return out

    def embed(self, input_ids: torch.Tensor, media_embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token embeddings with each modality's placeholder positions replaced by its media tokens."""
        embeds = self.get_input_embeddings()(input_ids)
        for name, spec in self.config.modalities.items():
            positions = input_ids == spec["token_id"]
            n_positions = int(positions.sum())
            if n_positions == 0:
                continue  # a decoding step, or a text-only row
            feats = media_embeds.get(name)
            n_feats = 0 if feats is None else feats.shape[0] * feats.shape[1]
            if n_positions != n_feats:
                per = self.num_media_tokens[name]
                raise ValueError(
                    f"{name} tokens and {name} features disagree: the sequence holds {n_positions} {name} tokens "
                    f"({n_positions / per:g} {name}s of {per} tokens) but {n_feats // per} {name}(s) were encoded"
                )
            embeds = embeds.masked_scatter(positions.unsqueeze(-1), feats.to(embeds.dtype))
        return embeds

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        media_embeds: dict[str, torch.Tensor] | None = None,
        media_keep: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        pixel_values: images for the ``image`` placeholders, in order (ignored when ``media_embeds`` is given).
        media_embeds: pre-encoded media from `encode_media`, so shared media are encoded once.
        media_keep: ``[B, T_prompt]`` bool; False hides that media token from attention in every layer.
        """
        if inputs_embeds is None:
            if media_embeds is None:
                has_media = any((input_ids == s["token_id"]).any() for s in self.config.modalities.values())
                media_embeds = self.encode_media({"pixel_values": pixel_values}) if has_media else {}
            inputs_embeds = self.embed(input_ids, media_embeds)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        if position_ids is None:  # from padding only, before media_keep is folded in
            position_ids = padding_position_ids(attention_mask)[:, -inputs_embeds.shape[1] :]
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=fold_media_keep(attention_mask, media_keep),
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )


AutoConfig.register(ComposedConfig.model_type, ComposedConfig, exist_ok=True)
AutoModel.register(ComposedConfig, ComposedForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(ComposedConfig, ComposedForConditionalGeneration, exist_ok=True)


class ComposedProcessor:
    """Chat template, placeholder expansion and media preprocessing for a composed model."""

    def __init__(self, tokenizer, media: dict[str, dict]):
        """``media``: modality -> ``{"num_tokens": k, "processor": {…processor config…}}``."""
        self.tokenizer = tokenizer
        self.media = json.loads(json.dumps(media))  # plain JSON types, as saved
        self.media_processors = {
            name: composed_modality(name).processor.from_dict(spec["processor"]) for name, spec in self.media.items()
        }
        self.placeholders = {name: composed_modality(name).placeholder for name in self.media}
        self.placeholder_ids = {n: tokenizer.convert_tokens_to_ids(p) for n, p in self.placeholders.items()}

    @property
    def image_token_id(self) -> int | None:
        return self.placeholder_ids.get("image")

    @property
    def media_token_ids(self) -> set[int]:
        return set(self.placeholder_ids.values())

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = False, **kw):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=tokenize, **kw
        )

    def __call__(self, text, return_tensors="pt", add_special_tokens: bool = False, padding=False, **kw):
        """Expand placeholders and process media, given as HF processors take them (``images=[…]``: each
        modality record's ``processor_kwarg``); other keywords are ignored."""
        texts = [text] if isinstance(text, str) else list(text)
        out: dict[str, Any] = {}
        for modality in all_modalities():
            items = list(kw.get(modality.processor_kwarg) or [])
            if modality.name not in self.media:
                if items:
                    raise ValueError(f"this model takes no {modality.column}")
                continue
            placeholder, k = self.placeholders[modality.name], self.media[modality.name]["num_tokens"]
            n_placeholders = sum(t.count(placeholder) for t in texts)
            if n_placeholders != len(items):
                raise ValueError(f"the text holds {n_placeholders} {placeholder} placeholder(s) but {len(items)} "
                                 f"{modality.name}(s) were given")
            texts = [t.replace(placeholder, placeholder * k) for t in texts]
            if items:
                out[modality.input_key] = self.media_processors[modality.name](items)
        enc = self.tokenizer(texts, add_special_tokens=add_special_tokens, padding=padding, return_tensors=return_tensors)
        out.update(enc)
        return out

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(path)
        config = {"processor_class": type(self).__name__, "media": self.media}
        (path / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ComposedProcessor":
        path = Path(path)
        config = json.loads((path / PROCESSOR_CONFIG).read_text())
        return cls(AutoTokenizer.from_pretrained(path), config["media"])


class ComposedBackbone(Backbone):
    """`Backbone` adapter for `ComposedForConditionalGeneration`."""

    def __init__(self, model: ComposedForConditionalGeneration, processor: ComposedProcessor):
        self.model, self.processor = model, processor

    @property
    def media_token_ids(self) -> list[int]:
        return sorted(self.processor.media_token_ids)

    def media_token_mask(self, batch: Batch) -> torch.Tensor:
        ids = batch["input_ids"]
        return torch.isin(ids, torch.tensor(self.media_token_ids, device=ids.device))

    def encode_media(self, batch: Batch) -> Media:
        return self.model.encode_media(batch)

    can_select_media = True

    def select_media(self, media: Media, sources, rows) -> Media:
        """``{modality: [items, tokens, hidden]}`` rows picked item by item: example e's items are those after the
        items of the examples before it (the order `encode_media` keeps)."""
        out = {}
        for name, encoded in media.items():
            key = composed_modality(name).input_key
            counts = [len(source[key]) if key in source else 0 for source in sources]
            starts = [sum(counts[:e]) for e in range(len(counts))]
            index = [i for e in rows for i in range(starts[e], starts[e] + counts[e])]
            out[name] = encoded.index_select(0, torch.tensor(index, dtype=torch.long, device=encoded.device))
        return out

    def position_ids(self, batch: Batch) -> torch.Tensor:
        return padding_position_ids(batch["attention_mask"])

    def forward(self, input_ids, attention_mask, position_ids, media=None, batch=None, cache=None, use_cache=False,
                logits_to_keep=0):
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            media_embeds=media if media is not None else {},
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype=None, device=None) -> "ComposedBackbone":
        model = ComposedForConditionalGeneration.from_pretrained(path, dtype=dtype)
        if device is not None:
            model = model.to(device)
        return cls(model, ComposedProcessor.from_pretrained(path))


def build_composed_policy(
    text_config: dict,
    modalities: dict[str, dict],
    tokenizer: dict,
    pretrained_encoders: bool = False,
    seed: int = 0,
) -> Policy:
    """Build a fresh composed policy from plain dicts (what a Hydra ``model/*.yaml`` holds).

    text_config: any causal-LM config, e.g. ``{"model_type": "llama", "hidden_size": 128, …}``;
        ``vocab_size`` and the special token ids come from the tokenizer.
    modalities: modality -> ``{"encoder": {…encoder config…}, "projector": "mlp2x_gelu"}``.
    tokenizer: ``{"world": "shapes", "vocab_size": 512}`` trains a BPE on that synthetic world's
        text, or ``{"path": DIR}`` loads an existing tokenizer.
    pretrained_encoders: load the timm encoders' pretrained weights (needs network or a timm cache).
    """
    from zoo.models.tokenizer import train_tokenizer

    torch.manual_seed(seed)
    placeholders = {name: composed_modality(name).placeholder for name in modalities}
    if "path" in tokenizer:
        tok = AutoTokenizer.from_pretrained(tokenizer["path"])
    else:
        import importlib

        world = importlib.import_module(f"modalities.synthetic.{tokenizer['world']}")
        tok = train_tokenizer(world.corpus(), tokenizer.get("vocab_size", 512), placeholders)
    text_config = dict(text_config)
    model_type = text_config.pop("model_type", "llama")
    text_cfg = AutoConfig.for_model(
        model_type,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **text_config,
    )
    specs = {}
    for name, spec in modalities.items():
        specs[name] = {
            "encoder": dict(spec["encoder"]),
            "projector": spec.get("projector", "mlp2x_gelu"),
            "token_id": tok.convert_tokens_to_ids(placeholders[name]),
        }
    config = ComposedConfig(text_config=text_cfg, modalities=specs)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    model = ComposedForConditionalGeneration(config)
    media = {}
    for name, encoder in model.encoders.items():
        if pretrained_encoders:
            fresh = type(encoder)(encoder.config, pretrained=True)
            encoder.load_state_dict(fresh.state_dict())
        media[name] = {"num_tokens": encoder.num_tokens, "processor": vars(encoder.processor_config())}
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return Policy(ComposedBackbone(model, ComposedProcessor(tok, media)))
