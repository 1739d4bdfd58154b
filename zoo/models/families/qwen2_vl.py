"""Qwen2-VL: a ViT with 2x2 patch merging (``visual``, its merger included) over images and videos, and a
decoder with 3-D M-RoPE positions (the model's own ``get_rope_index``)."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import MROPE, qwen_processor, qwen_tokenizer, text_config


def tiny(texts):
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
    )

    tok, special = qwen_tokenizer(texts)
    text = text_config(tok, model_type="qwen2_vl_text", rope_parameters=MROPE)
    vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=8, spatial_merge_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **special)
    return Qwen2VLForConditionalGeneration(config), qwen_processor(Qwen2VLProcessor, tok)


# mm_token_type_ids is read only to build positions: no decode_token_inputs.
register_family(FamilySpec(
    name="qwen2_vl", model_types=("qwen2_vl",), tiny=tiny, media_modules=("visual",), media=("image", "video"),
))  # fmt: skip
