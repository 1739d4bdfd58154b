"""LLaVA-1.5: a CLIP vision tower, an MLP projector and a Llama-style decoder."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import TINY, TinySizes, clip_vision, text_config


def tiny(texts, sizes: TinySizes = TINY):
    from transformers import (
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessor,
        LlavaProcessor,
    )

    from zoo.models.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, sizes.vocab, placeholders={"image": "<image>"})
    n_tokens = (sizes.image_size // sizes.patch_size) ** 2
    config = LlavaConfig(
        vision_config=clip_vision(sizes), text_config=dict(model_type="llama", **text_config(tok, sizes)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), image_seq_length=n_tokens,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    image_processor = LlavaImageProcessor(
        size={"shortest_edge": sizes.image_size}, crop_size={"height": sizes.image_size, "width": sizes.image_size}
    )
    # CLIP adds a CLS token (num_additional_image_tokens=1) that the "default" strategy drops again.
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=sizes.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=tok.chat_template,
    )  # fmt: skip
    return LlavaForConditionalGeneration(config), processor


register_family(FamilySpec(
    name="llava", model_types=("llava",), tiny=tiny, media_modules=("vision_tower", "multi_modal_projector"),
))  # fmt: skip
