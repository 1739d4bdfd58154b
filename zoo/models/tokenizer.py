"""A byte-level BPE tokenizer trained on a world's text, wrapped as a `PreTrainedTokenizerFast`.

Byte-level, so any text is encodable (no unknown tokens) and decoding restores spaces exactly.
The chat template renders TRL-style conversational messages whose content parts may be media
placeholders; the processor later expands each placeholder into the media's tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")


def chat_template(placeholders: dict[str, str]) -> str:
    """A Jinja chat template: ``<s><|user|>…</s>\\n<|assistant|>…</s>`` with media placeholders."""
    media = "".join(
        f"{{% elif part['type'] == '{kind}' %}}{{{{ '{ph}' }}}}" for kind, ph in sorted(placeholders.items())
    )
    return (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>' }}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        "{% if part['type'] == 'text' %}{{ part['text'] }}" + media + "{% endif %}"
        "{% endfor %}{% endif %}"
        "{{ eos_token }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 512,
    placeholders: dict[str, str] | None = None,
    extra_special_tokens: Iterable[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts``; ``placeholders`` maps modality -> placeholder token."""
    placeholders = placeholders if placeholders is not None else {"image": "<image>"}
    specials = [PAD, BOS, EOS, UNK, *ROLE_TOKENS, *placeholders.values(), *extra_special_tokens]
    specials = list(dict.fromkeys(specials))
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[t for t in specials if t not in (PAD, BOS, EOS, UNK)],
    )
    fast.chat_template = chat_template(placeholders)
    return fast
