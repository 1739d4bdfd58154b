"""Qwen2.5-VL: Qwen2-VL with windowed attention in the vision tower and absolute time in video positions."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import MROPE, QWEN2_5_VISION, qwen_processor, qwen_tokenizer, text_config


def tiny(texts):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )

    tok, special = qwen_tokenizer(texts)
    text = text_config(tok, model_type="qwen2_5_vl_text", rope_parameters=MROPE)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(QWEN2_5_VISION), **special)
    return Qwen2_5_VLForConditionalGeneration(config), qwen_processor(Qwen2_5_VLProcessor, tok)


register_family(FamilySpec(
    name="qwen2_5_vl", model_types=("qwen2_5_vl",), tiny=tiny, media_modules=("visual",),
    media=("image", "video"),
))  # fmt: skip
