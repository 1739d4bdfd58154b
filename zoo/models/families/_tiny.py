"""Pieces the tiny stand-ins of several families share (registers no family).

Light to import, like the family modules: transformers is imported when a stand-in is built.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE = 32  # pixels; every tiny vision tower uses 8-pixel patches


@dataclass(frozen=True)
class TinySizes:
    """Dimensions of a tiny stand-in's vision tower and decoder. Every stand-in uses the defaults; LLaVA's
    builder also takes other sizes (the speed benchmark's larger LLaVA)."""

    image_size: int = IMAGE_SIZE
    patch_size: int = 8
    vision_hidden: int = 32
    vision_intermediate: int = 64
    vision_layers: int = 1
    vision_heads: int = 2
    hidden: int = 64
    intermediate: int = 128
    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    vocab: int = 512  # BPE vocabulary size asked of the tokenizer trainer
    max_positions: int = 512


TINY = TinySizes()


def named_tokens(tok, **named: str):
    """Re-wrap a tokenizer so model-specific tokens are attributes (``tok.boi_token``/``_id``) that
    survive save/load; `train_tokenizer` only registers them as extra special tokens."""
    from transformers import PreTrainedTokenizerFast

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


def text_config(tok, sizes: TinySizes = TINY, **extra) -> dict:
    s = sizes
    return dict(
        vocab_size=len(tok), hidden_size=s.hidden, intermediate_size=s.intermediate, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, max_position_embeddings=s.max_positions,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra,
    )  # fmt: skip


def vision_config(sizes: TinySizes = TINY, **extra) -> dict:
    s = sizes
    return dict(hidden_size=s.vision_hidden, intermediate_size=s.vision_intermediate,
                num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads, **extra)  # fmt: skip


def clip_vision(sizes: TinySizes = TINY) -> dict:
    """A CLIP vision tower (LLaVA, LLaVA-NeXT)."""
    return vision_config(sizes, model_type="clip_vision_model", image_size=sizes.image_size,
                         patch_size=sizes.patch_size, projection_dim=sizes.vision_hidden)  # fmt: skip


# ---------------------------------------------------------------- the Qwen-VL families


def qwen_tokenizer(texts):
    """Qwen's tokens: the image renders as the start/pad/end triple; the processor expands the pad token."""
    from zoo.models.tokenizer import chat_template, train_tokenizer

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


# min = max pixels: every image is resized to about 32*32 pixels (aspect kept, sides multiples of
# 16) -> a grid of at most 4x4 patches -> at most 4 tokens after the 2x2 merge.
QWEN_PIXELS = {"shortest_edge": IMAGE_SIZE * IMAGE_SIZE, "longest_edge": IMAGE_SIZE * IMAGE_SIZE}


def qwen_processor(processor_cls, tok):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(size=dict(QWEN_PIXELS), patch_size=8, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=dict(QWEN_PIXELS), patch_size=8, merge_size=2)
    return processor_cls(image_processor, tok, video_processor, chat_template=tok.chat_template)


# head_dim 32: the M-RoPE sections (temporal, height, width) split its 16 frequencies.
MROPE = {"rope_type": "default", "mrope_section": [4, 6, 6]}

# Qwen2.5-VL's vision tower (Qwen2.5-Omni's too): block 0 attends within 16-pixel windows, block 1
# over the whole image.
QWEN2_5_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64, num_heads=2, patch_size=8,
                      spatial_merge_size=2, window_size=16, fullatt_block_indexes=[1])  # fmt: skip
