"""Janus(-Pro): a SigLIP-style understanding tower + aligner MLP, a Llama decoder, and a VQ-VAE with its own
head for image generation (built, but only understanding is aligned: text answers)."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import IMAGE_SIZE, named_tokens, text_config, vision_config


def tiny(texts):
    from transformers import (
        JanusConfig,
        JanusForConditionalGeneration,
        JanusImageProcessor,
        JanusProcessor,
    )

    from zoo.models.tokenizer import train_tokenizer

    image, boi, eoi = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
    tok = train_tokenizer(texts, placeholders={"image": image}, extra_special_tokens=(boi, eoi))
    tok = named_tokens(tok, image_token=image, boi_token=boi, eoi_token=eoi)
    text = text_config(tok)
    n_tokens = (IMAGE_SIZE // 8) ** 2
    vision = vision_config(image_size=IMAGE_SIZE, patch_size=8, projection_dim=text["hidden_size"], depth=1,
                           num_image_tokens=n_tokens)  # fmt: skip
    vq = dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32, channel_multiplier=[1, 1],
              num_res_blocks=1, projection_dim=text["hidden_size"], image_token_embed_dim=text["hidden_size"])
    config = JanusConfig(text_config=dict(model_type="llama", **text), vision_config=vision, vq_config=vq,
                         image_token_id=tok.convert_tokens_to_ids(image))  # fmt: skip
    image_processor = JanusImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, min_size=8)
    processor = JanusProcessor(image_processor, tok, chat_template=tok.chat_template, num_image_tokens=n_tokens)
    return JanusForConditionalGeneration(config), processor


# The image-generation half (VQ-VAE, its embeddings, aligner and head) stays frozen by default.
# get_image_features lives on the inner model only; the adapter looks there too.
register_family(FamilySpec(
    name="janus", model_types=("janus",), tiny=tiny, media_modules=("vision_model", "aligner"),
    also_freeze=("vqmodel", "generation_embeddings", "generation_aligner", "generation_head"),
    media_boundary_tokens=("boi_token_id", "eoi_token_id"),  # on the tokenizer only
))  # fmt: skip
