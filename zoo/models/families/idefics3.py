"""Idefics3: each image is split into a grid of crops plus a global view; the processor writes a row/column
tag before each crop's tokens, and the connector pixel-shuffles 16 patches into 4 tokens."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import IMAGE_SIZE, text_config, vision_config


def tiny(texts):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    from zoo.models.tokenizer import train_tokenizer

    tags = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    extra = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>", *tags)
    tok = train_tokenizer(texts, placeholders={"image": "<image>"}, extra_special_tokens=extra)
    vision = vision_config(image_size=IMAGE_SIZE, patch_size=8)
    text = dict(model_type="llama", **text_config(tok))
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))  # fmt: skip
    # Crops of IMAGE_SIZE pixels; an image's longest side is first resized to at most twice that.
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 2 * IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}
    )
    processor = Idefics3Processor(image_processor, tok, image_seq_len=4, chat_template=tok.chat_template)
    return Idefics3ForConditionalGeneration(config), processor


register_family(FamilySpec(
    name="idefics3", model_types=("idefics3",), tiny=tiny, media_modules=("vision_model", "connector"),
))  # fmt: skip
