"""LLaVA-NeXT (1.6): anyres. Each image becomes a base view plus the tiles of the grid that best fits its
aspect ratio, so images of different shapes have different patch and token counts."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import IMAGE_SIZE, clip_vision, text_config


def tiny(texts):
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    from zoo.models.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, placeholders={"image": "<image>"})
    grids = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]
    config = LlavaNextConfig(
        vision_config=clip_vision(), text_config=dict(model_type="llama", **text_config(tok)),
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


# image_newline: the learned parameter written after each row of tiles
register_family(FamilySpec(
    name="llava_next", model_types=("llava_next",), tiny=tiny,
    media_modules=("vision_tower", "multi_modal_projector", "image_newline"),
))  # fmt: skip
