"""Qwen2.5-Omni's thinker (image, audio, video in; text out): Qwen2.5-VL's vision tower, a Whisper-style audio
tower and an M-RoPE decoder whose index interleaves audio and video in time. The talker and its vocoder
(speech out) ship in the same checkpoints; only the thinker is loaded."""

from __future__ import annotations

from zoo.models.families import FamilySpec, register_family
from zoo.models.families._tiny import MROPE, QWEN2_5_VISION, QWEN_PIXELS, named_tokens, text_config

# The real Qwen2.5-Omni tokenizer's names for its media tokens (attributes the processor reads).
TOKENS = dict(
    image_token="<|IMAGE|>", audio_token="<|AUDIO|>", video_token="<|VIDEO|>",
    vision_bos_token="<|vision_bos|>", vision_eos_token="<|vision_eos|>",
    audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>",
)  # fmt: skip
MELS, AUDIO_SECONDS = 16, 2  # tiny Whisper features; the processor pads audio to this length


def tiny(texts):
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    from zoo.models.tokenizer import chat_template, train_tokenizer

    t = TOKENS
    tok = train_tokenizer(texts, placeholders={"image": t["image_token"]}, extra_special_tokens=tuple(t.values()))
    tok.chat_template = chat_template({
        "image": t["vision_bos_token"] + t["image_token"] + t["vision_eos_token"],
        "audio": t["audio_bos_token"] + t["audio_token"] + t["audio_eos_token"],
        "video": t["vision_bos_token"] + t["video_token"] + t["vision_eos_token"],
    })  # fmt: skip
    tok = named_tokens(tok, **t)
    ids = tok.convert_tokens_to_ids
    special = dict(
        image_token_index=ids(t["image_token"]), video_token_index=ids(t["video_token"]),
        audio_token_index=ids(t["audio_token"]), vision_start_token_id=ids(t["vision_bos_token"]),
        vision_end_token_id=ids(t["vision_eos_token"]), audio_start_token_id=ids(t["audio_bos_token"]),
        audio_end_token_id=ids(t["audio_eos_token"]), user_token_id=ids("<|user|>"),
    )  # fmt: skip
    text = text_config(tok, model_type="qwen2_5_omni_text", rope_parameters=MROPE)
    # n_window 25: the audio tower attends within 0.5 s chunks, so 1 s of audio spans two
    audio = dict(num_mel_bins=MELS, d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                 n_window=25, max_source_positions=AUDIO_SECONDS * 50, output_dim=64)
    config = Qwen2_5OmniThinkerConfig(text_config=text, vision_config=dict(QWEN2_5_VISION), audio_config=audio,
                                      **special)  # fmt: skip
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(QWEN_PIXELS), patch_size=8, merge_size=2),
        video_processor=Qwen2VLVideoProcessor(size=dict(QWEN_PIXELS), patch_size=8, merge_size=2),
        feature_extractor=WhisperFeatureExtractor(feature_size=MELS, chunk_length=AUDIO_SECONDS),
        tokenizer=tok, chat_template=tok.chat_template,
    )  # fmt: skip
    # The processor class pins video frames to at least 128*28*28 pixels whatever its video processor
    # says; tiny frames in memory. (Not saved: a reloaded tiny processor makes ~1,600-token videos.)
    processor.videos_kwargs = {"size": dict(QWEN_PIXELS)}
    return Qwen2_5OmniThinkerForConditionalGeneration(config), processor


def checkpoint(thinker):
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


# Rope-index arguments the thinker names differently from its processor's outputs. Audio runs are
# counted in feature frames; the index turns them into token counts itself.
ROPE_INPUTS = {
    "audio_seqlens": lambda b: None if b.get("feature_attention_mask") is None else b["feature_attention_mask"].sum(-1),
    "second_per_grids": lambda b: b.get("video_second_per_grid"),
}

# Its forward re-encodes audio from the raw features: the adapter writes the audio features into the
# input embeddings at the audio tokens itself and leaves these raw inputs out, so the tower still runs
# once per batch and a frozen or LoRA-disabled reference reuses the policy's features.
register_family(FamilySpec(
    name="qwen2_5_omni", model_types=("qwen2_5_omni", "qwen2_5_omni_thinker"), tiny=tiny,
    media_modules=("visual", "audio_tower"), media=("image", "video", "audio"),
    scattered={"audio": ("input_features", "feature_attention_mask", "audio_feature_lengths")},
    rope_inputs=ROPE_INPUTS, loaded_config="thinker_config", checkpoint=checkpoint,
))  # fmt: skip
