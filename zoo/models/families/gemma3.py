"""Gemma 3: a SigLIP tower whose tokens are pooled to a fixed count per image, bidirectional attention
within each image's block (``token_type_ids``), sliding-window and global decoder layers."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import IMAGE_SIZE, named_tokens, text_config, vision_config


def tiny(texts):
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    from zoo.models.tokenizer import train_tokenizer

    # The prompt holds <start_of_image>; the processor expands it into boi + soft tokens + eoi.
    boi, soft, eoi = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
    tok = train_tokenizer(texts, placeholders={"image": boi}, extra_special_tokens=(soft, eoi))
    tok = named_tokens(tok, boi_token=boi, image_token=soft, eoi_token=eoi)
    ids = tok.convert_tokens_to_ids
    # Layer 0 slides over 8 tokens, layer 1 is global: both mask paths are exercised.
    layers = ["sliding_attention", "full_attention"]
    text = text_config(tok, head_dim=32, query_pre_attn_scalar=32, sliding_window=8, layer_types=layers)
    vision = vision_config(model_type="siglip_vision_model", image_size=IMAGE_SIZE, patch_size=8)
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


# Gemma 3 reads token_type_ids at prefill only (its bidirectional image blocks): no decode_token_inputs.
register_family(FamilySpec(
    name="gemma3", model_types=("gemma3",), tiny=tiny, media_modules=("vision_tower", "multi_modal_projector"),
    media_boundary_tokens=("boi_token_index", "eoi_token_index"),
))  # fmt: skip
