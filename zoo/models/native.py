"""HF-native image-text-to-text models (LLaVA, Qwen2-VL, Gemma 3 …) as a `Backbone`.

`NativeBackbone` adapts any ``AutoModelForImageTextToText`` model and its ``AutoProcessor`` to the
`Policy` interface: media are encoded once with the model's own ``get_image_features`` and handed
back as ``mm_encoder_outputs``; positions come from the padding mask alone (the model's own 3-D
M-RoPE index for the Qwen2-VL family); every side input the processor made (``image_grid_thw``,
``token_type_ids`` …) reaches the model's forward at the prefill step.

`build_tiny_native` builds tiny random models with processors assembled from local pieces, so the
adapter can be tested offline in seconds.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedTokenizerFast,
)

from zoo.models.policy import Backbone, Batch, Media, Policy, padding_position_ids
from zoo.models.tokenizer import chat_template, train_tokenizer

# Raw media, by kind: (the batch key of its pixels, the model method that encodes them).
MEDIA_ENCODERS = {
    "image": ("pixel_values", "get_image_features"),
    "video": ("pixel_values_videos", "get_video_features"),
    "audio": ("input_features", "get_audio_features"),
}
# Kinds a model's forward takes no pre-encoded features of (Qwen2.5-Omni re-encodes audio from its raw
# features): the adapter writes their features into the input embeddings at the kind's placeholder
# tokens itself, and leaves these raw inputs out, so the tower still runs once per batch and a frozen
# or LoRA-disabled reference reuses the policy's features.
SCATTERED_MEDIA = {"audio": ("input_features", "feature_attention_mask", "audio_feature_lengths")}

# Forward arguments that are never side inputs: set explicitly, training-only, or raw media
# (media reach the model pre-encoded; passing pixels too makes HF models raise).
NOT_SIDE_INPUTS = {
    "input_ids", "attention_mask", "position_ids", "cache", "past_key_values", "inputs_embeds", "use_cache",
    "labels", "logits_to_keep", "mm_encoder_outputs", "example_index", "return_dict", "kwargs",
}  # fmt: skip


# Rope-index arguments that a model names differently from its processor's outputs (Qwen2.5-Omni).
# Audio runs are counted in feature frames; the index turns them into token counts itself.
ROPE_INDEX_INPUTS = {
    "audio_seqlens": lambda b: None if b.get("feature_attention_mask") is None else b["feature_attention_mask"].sum(-1),
    "second_per_grids": lambda b: b.get("video_second_per_grid"),
}


def _param_names(fn) -> set[str]:
    """Named parameters of a (possibly decorated: `inspect` follows ``__wrapped__``) callable."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


class NativeBackbone(Backbone):
    """Adapter over an HF ``AutoModelForImageTextToText`` model (see module docstring)."""

    # Per-token inputs a model needs on every decoding step (fed as zeros: a new token is text).
    # None of the supported models needs one: Gemma 3 reads ``token_type_ids`` at prefill only
    # (its bidirectional image blocks), Qwen2-VL reads ``mm_token_type_ids`` only to build positions.
    decode_token_inputs: tuple[str, ...] = ()

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        config = model.config
        names = ("image_token_id", "video_token_id", "audio_token_id")
        self.media_ids = [i for i in (getattr(config, n, None) for n in names) if isinstance(i, int)]
        # Gemma 3 and Janus also have begin/end-of-image tokens that only the processor writes
        tok = getattr(processor, "tokenizer", processor)
        extra = (getattr(config, "boi_token_index", None), getattr(config, "eoi_token_index", None),
                 getattr(tok, "boi_token_id", None), getattr(tok, "eoi_token_id", None))
        self.placeholder_ids = sorted(set(self.media_ids) | {i for i in extra if isinstance(i, int)})
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
        for kind, (key, method) in MEDIA_ENCODERS.items():
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
        for name in names & ROPE_INDEX_INPUTS.keys() - kwargs.keys():
            value = ROPE_INDEX_INPUTS[name](batch)
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
            side = {k: input_ids.new_zeros(input_ids.shape) for k in self.decode_token_inputs}
        media, inputs_embeds = dict(media or {}), None
        scattered = {kind: media.pop(kind) for kind in SCATTERED_MEDIA if kind in media}
        if scattered:
            raw = {name for kind in scattered for name in SCATTERED_MEDIA[kind]}
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
            mask = input_ids == getattr(self.model.config, f"{kind}_token_id")
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
    if hasattr(config, "thinker_config"):
        # Qwen2.5-Omni: text comes from the thinker; the talker and its vocoder (speech out) are not
        # loaded. transformers maps the checkpoint's ``thinker.*`` weights and skips the others.
        kwargs["config"] = config.thinker_config
    model = AutoModelForImageTextToText.from_pretrained(name_or_path, **kwargs)
    if device is not None:
        model = model.to(device)
    processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return Policy(NativeBackbone(model.eval(), processor))


# ---------------------------------------------------------------------------------------------
# Tiny random models, built offline (tests, smoke runs).

IMAGE_SIZE = 32  # pixels; every tiny vision tower uses 8-pixel patches

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


def _named_tokens(tok: PreTrainedTokenizerFast, **named: str) -> PreTrainedTokenizerFast:
    """Re-wrap a tokenizer so model-specific tokens are attributes (``tok.boi_token``/``_id``) that
    survive save/load; `train_tokenizer` only registers them as extra special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer,
        bos_token=tok.bos_token,
        eos_token=tok.eos_token,
        pad_token=tok.pad_token,
        unk_token=tok.unk_token,
        extra_special_tokens=tok.extra_special_tokens,
        chat_template=tok.chat_template,
        **named,
    )


def _text_config(tok, **extra) -> dict:
    return dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra,
    )  # fmt: skip


def _vision(**extra) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, **extra)


def _tiny_llava(texts):
    from transformers import (
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessor,
        LlavaProcessor,
    )

    tok = train_tokenizer(texts, placeholders={"image": "<image>"})
    vision = _vision(model_type="clip_vision_model", image_size=IMAGE_SIZE, patch_size=8, projection_dim=32)
    config = LlavaConfig(
        vision_config=vision, text_config=dict(model_type="llama", **_text_config(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), image_seq_length=(IMAGE_SIZE // 8) ** 2,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    image_processor = LlavaImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    # CLIP adds a CLS token (num_additional_image_tokens=1) that the "default" strategy drops again.
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=tok.chat_template,
    )  # fmt: skip
    return LlavaForConditionalGeneration(config), processor


def _tiny_llava_next(texts):
    """LLaVA-NeXT (1.6): anyres. Each image becomes a base view plus the tiles of the grid that best
    fits its aspect ratio, so images of different shapes have different patch and token counts."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tok = train_tokenizer(texts, placeholders={"image": "<image>"})
    grids = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]
    vision = _vision(model_type="clip_vision_model", image_size=IMAGE_SIZE, patch_size=8, projection_dim=32)
    config = LlavaNextConfig(
        vision_config=vision, text_config=dict(model_type="llama", **_text_config(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=grids,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=grids,
    )  # fmt: skip
    processor = LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=tok.chat_template,
    )  # fmt: skip
    return LlavaNextForConditionalGeneration(config), processor


def _tiny_idefics3(texts):
    """Idefics3: each image is split into a grid of crops plus a global view; the processor writes a
    row/column tag before each crop's tokens, and the connector pixel-shuffles 16 patches into 4 tokens."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tags = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    extra = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>", *tags)
    tok = train_tokenizer(texts, placeholders={"image": "<image>"}, extra_special_tokens=extra)
    vision = _vision(image_size=IMAGE_SIZE, patch_size=8)
    text = dict(model_type="llama", **_text_config(tok))
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))  # fmt: skip
    # Crops of IMAGE_SIZE pixels; an image's longest side is first resized to at most twice that.
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 2 * IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}
    )
    processor = Idefics3Processor(image_processor, tok, image_seq_len=4, chat_template=tok.chat_template)
    return Idefics3ForConditionalGeneration(config), processor


def _tiny_janus(texts):
    """Janus(-Pro): a SigLIP-style understanding tower + aligner MLP, a Llama decoder, and a VQ-VAE with
    its own head for image generation (the generation half is built, but only understanding is aligned)."""
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusImageProcessor,
        JanusProcessor,
    )

    image, boi, eoi = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
    tok = train_tokenizer(texts, placeholders={"image": image}, extra_special_tokens=(boi, eoi))
    tok = _named_tokens(tok, image_token=image, boi_token=boi, eoi_token=eoi)
    text = _text_config(tok)
    n_tokens = (IMAGE_SIZE // 8) ** 2
    vision = _vision(image_size=IMAGE_SIZE, patch_size=8, projection_dim=text["hidden_size"], depth=1,
                     num_image_tokens=n_tokens)  # fmt: skip
    vq = dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32, channel_multiplier=[1, 1],
              num_res_blocks=1, projection_dim=text["hidden_size"], image_token_embed_dim=text["hidden_size"])
    config = JanusConfig(text_config=dict(model_type="llama", **text), vision_config=vision, vq_config=vq,
                         image_token_id=tok.convert_tokens_to_ids(image))  # fmt: skip
    image_processor = JanusImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, min_size=8)
    processor = JanusProcessor(image_processor, tok, chat_template=tok.chat_template, num_image_tokens=n_tokens)
    return JanusForConditionalGeneration(config), processor


def _qwen_tokenizer(texts):
    """Qwen's tokens: the image renders as the start/pad/end triple; the processor expands the pad token."""
    tok = train_tokenizer(
        texts, placeholders={"image": "<|image_pad|>"},
        extra_special_tokens=("<|vision_start|>", "<|vision_end|>", "<|video_pad|>"),
    )  # fmt: skip
    tok.chat_template = chat_template({"image": "<|vision_start|><|image_pad|><|vision_end|>",
                                       "video": "<|vision_start|><|video_pad|><|vision_end|>"})
    ids = tok.convert_tokens_to_ids
    special = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                   vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    return tok, special


def _qwen_processor(processor_cls, tok):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # min = max pixels: every image is resized to about 32*32 pixels (aspect kept, sides multiples of
    # 16) -> a grid of at most 4x4 patches -> at most 4 tokens after the 2x2 merge.
    pixels = {"shortest_edge": IMAGE_SIZE * IMAGE_SIZE, "longest_edge": IMAGE_SIZE * IMAGE_SIZE}
    image_processor = Qwen2VLImageProcessor(size=pixels, patch_size=8, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=pixels, patch_size=8, merge_size=2)
    return processor_cls(image_processor, tok, video_processor, chat_template=tok.chat_template)


# head_dim 32: the M-RoPE sections (temporal, height, width) split its 16 frequencies.
_MROPE = {"rope_type": "default", "mrope_section": [4, 6, 6]}


def _tiny_qwen2_vl(texts):
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
    )

    tok, special = _qwen_tokenizer(texts)
    text = _text_config(tok, model_type="qwen2_vl_text", rope_parameters=_MROPE)
    vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=8, spatial_merge_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **special)
    return Qwen2VLForConditionalGeneration(config), _qwen_processor(Qwen2VLProcessor, tok)


def _tiny_qwen2_5_vl(texts):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )

    tok, special = _qwen_tokenizer(texts)
    text = _text_config(tok, model_type="qwen2_5_vl_text", rope_parameters=_MROPE)
    # Two vision blocks: block 0 attends within 16-pixel windows, block 1 over the whole image.
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64, num_heads=2, patch_size=8,
                  spatial_merge_size=2, window_size=16, fullatt_block_indexes=[1])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
    return Qwen2_5_VLForConditionalGeneration(config), _qwen_processor(Qwen2_5_VLProcessor, tok)


# The real Qwen2.5-Omni tokenizer's names for its media tokens (attributes the processor reads).
_OMNI_TOKENS = dict(
    image_token="<|IMAGE|>", audio_token="<|AUDIO|>", video_token="<|VIDEO|>",
    vision_bos_token="<|vision_bos|>", vision_eos_token="<|vision_eos|>",
    audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>",
)  # fmt: skip
OMNI_MELS, OMNI_AUDIO_SECONDS = 16, 2  # tiny Whisper features; the processor pads audio to this length


def _tiny_qwen2_5_omni(texts):
    """Qwen2.5-Omni's thinker (image, audio, video in; text out): Qwen2.5-VL's vision tower, a Whisper-style
    audio tower and an M-RoPE decoder whose index interleaves audio and video in time."""
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    t = _OMNI_TOKENS
    tok = train_tokenizer(texts, placeholders={"image": t["image_token"]}, extra_special_tokens=tuple(t.values()))
    tok.chat_template = chat_template({
        "image": t["vision_bos_token"] + t["image_token"] + t["vision_eos_token"],
        "audio": t["audio_bos_token"] + t["audio_token"] + t["audio_eos_token"],
        "video": t["vision_bos_token"] + t["video_token"] + t["vision_eos_token"],
    })  # fmt: skip
    tok = _named_tokens(tok, **t)
    ids = tok.convert_tokens_to_ids
    special = dict(
        image_token_index=ids(t["image_token"]), video_token_index=ids(t["video_token"]),
        audio_token_index=ids(t["audio_token"]), vision_start_token_id=ids(t["vision_bos_token"]),
        vision_end_token_id=ids(t["vision_eos_token"]), audio_start_token_id=ids(t["audio_bos_token"]),
        audio_end_token_id=ids(t["audio_eos_token"]), user_token_id=ids("<|user|>"),
    )  # fmt: skip
    text = _text_config(tok, model_type="qwen2_5_omni_text", rope_parameters=_MROPE)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64, num_heads=2, patch_size=8,
                  spatial_merge_size=2, window_size=16, fullatt_block_indexes=[1])
    # n_window 25: the audio tower attends within 0.5 s chunks, so 1 s of audio spans two
    audio = dict(num_mel_bins=OMNI_MELS, d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                 n_window=25, max_source_positions=OMNI_AUDIO_SECONDS * 50, output_dim=64)
    config = Qwen2_5OmniThinkerConfig(text_config=text, vision_config=vision, audio_config=audio, **special)
    pixels = {"shortest_edge": IMAGE_SIZE * IMAGE_SIZE, "longest_edge": IMAGE_SIZE * IMAGE_SIZE}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, patch_size=8, merge_size=2),
        video_processor=Qwen2VLVideoProcessor(size=pixels, patch_size=8, merge_size=2),
        feature_extractor=WhisperFeatureExtractor(feature_size=OMNI_MELS, chunk_length=OMNI_AUDIO_SECONDS),
        tokenizer=tok, chat_template=tok.chat_template,
    )  # fmt: skip
    # The processor class pins video frames to at least 128*28*28 pixels whatever its video processor
    # says; tiny frames in memory. (Not saved: a reloaded tiny processor makes ~1,600-token videos.)
    processor.videos_kwargs = {"size": dict(pixels)}
    return Qwen2_5OmniThinkerForConditionalGeneration(config), processor


def _omni_checkpoint(thinker):
    """The full Qwen2.5-Omni layout around ``thinker`` (tiny talker + vocoder), as the real repos ship it."""
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    c = thinker.config
    tokens = {n: getattr(c, n) for n in ("image_token_index", "video_token_index", "audio_token_index",
                                          "vision_start_token_id", "vision_end_token_id", "audio_start_token_id",
                                          "audio_end_token_id")}  # fmt: skip
    talker = dict(vocab_size=64, embedding_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                  rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3]},
                  tts_codec_start_token_id=60, tts_codec_end_token_id=61, tts_codec_pad_token_id=62,
                  tts_codec_mask_token_id=63, tts_text_start_token_id=1, tts_text_end_token_id=2,
                  tts_text_pad_token_id=0, **tokens)  # fmt: skip
    token2wav = dict(
        dit_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, head_dim=16, emb_dim=16,
                        num_embeds=65, mel_dim=8, enc_emb_dim=8, enc_dim=8, enc_channels=[16, 16, 16, 16, 32],
                        enc_attention_channels=8, enc_se_channels=8, look_ahead_layers=[1], look_backward_layers=[0]),
        bigvgan_config=dict(mel_dim=8, upsample_initial_channel=16, upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4],
                            resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]]),
    )  # fmt: skip
    config = Qwen2_5OmniConfig(thinker_config=c.to_dict(), talker_config=talker, token2wav_config=token2wav,
                               enable_audio_output=True)  # fmt: skip
    full = Qwen2_5OmniForConditionalGeneration(config)
    full.thinker.load_state_dict(thinker.state_dict())
    return full


def _tiny_gemma3(texts):
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    # The prompt holds <start_of_image>; the processor expands it into boi + soft tokens + eoi.
    boi, soft, eoi = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
    tok = train_tokenizer(texts, placeholders={"image": boi}, extra_special_tokens=(soft, eoi))
    tok = _named_tokens(tok, boi_token=boi, image_token=soft, eoi_token=eoi)
    ids = tok.convert_tokens_to_ids
    # Layer 0 slides over 8 tokens, layer 1 is global: both mask paths are exercised.
    layers = ["sliding_attention", "full_attention"]
    text = _text_config(tok, head_dim=32, query_pre_attn_scalar=32, sliding_window=8, layer_types=layers)
    vision = _vision(model_type="siglip_vision_model", image_size=IMAGE_SIZE, patch_size=8)
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4,
        boi_token_index=ids(boi), eoi_token_index=ids(eoi), image_token_index=ids(soft),
    )  # fmt: skip
    image_processor = Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = Gemma3Processor(image_processor, tok, chat_template=tok.chat_template, image_seq_length=4)
    model = Gemma3ForConditionalGeneration(config)
    # Gemma 3 initialises its image projection to zeros: a random model would ignore every image.
    torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.2)
    return model, processor


TINY_BUILDERS = {
    "llava": _tiny_llava, "llava_next": _tiny_llava_next, "qwen2_vl": _tiny_qwen2_vl, "qwen2_5_vl": _tiny_qwen2_5_vl,
    "gemma3": _tiny_gemma3, "idefics3": _tiny_idefics3, "janus": _tiny_janus, "qwen2_5_omni": _tiny_qwen2_5_omni,
}  # fmt: skip
TINY_ARCHS = tuple(TINY_BUILDERS)


def make_tiny_native(arch: str, texts=None, seed: int = 0):
    """A tiny random ``arch`` model (eval mode) and its processor, in memory; deterministic per ``seed``."""
    if arch not in TINY_BUILDERS:
        raise ValueError(f"unknown tiny arch {arch!r}; choose from {TINY_ARCHS}")
    torch.manual_seed(seed)
    model, processor = TINY_BUILDERS[arch](list(texts) if texts is not None else list(DEFAULT_TEXTS))
    return model.eval(), processor


def build_tiny_native(arch: str, out_dir: str | Path, texts=None, seed: int = 0) -> Path:
    """Build a tiny random ``arch`` model + processor offline and ``save_pretrained`` both to ``out_dir``."""
    model, processor = make_tiny_native(arch, texts, seed)
    if arch == "qwen2_5_omni":  # saved as the real repos are: thinker + talker + vocoder
        model = _omni_checkpoint(model)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
