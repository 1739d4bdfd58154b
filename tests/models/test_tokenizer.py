"""The BPE tokenizer trained on a world's text, and its chat template."""

from __future__ import annotations

from transformers import AutoTokenizer

from modalities.synthetic.shapes import corpus
from zoo.models.tokenizer import train_tokenizer


def test_tokenizer_round_trips_world_text_and_renders_media(tmp_path):
    tok = train_tokenizer(corpus(), vocab_size=300)
    text = "The circle is red and at the top left. The square is blue and at the bottom right."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 2  # BPE merged the world's words
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == "<s><|user|><image>Describe the image.</s><|assistant|>"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.convert_tokens_to_ids("<image>") == tok.convert_tokens_to_ids("<image>")


def test_tokenizer_is_deterministic():
    a = train_tokenizer(corpus(), vocab_size=300)
    b = train_tokenizer(corpus(), vocab_size=300)
    assert a.get_vocab() == b.get_vocab()
