"""The prompted critic: a VLM asked for a critique with the question of `zoo.data.critique`.

`PromptedCritic` loads any zoo model folder or HF VLM (`zoo.models.load_policy`; lazily, in eval mode, no
gradients), shows it the data row's media and ``##Prompt: … ##Response: … Your critique and refinement:``
(`zoo.data.critique.critic_row`) and writes the critique greedily, ``batch_size`` questions per generation.
Registered twice: ``prompted`` (any model, e.g. the SFT base asked as it is) and ``trained`` (a critic trained
with ``recipe=critic_sft`` on the ``critique`` format: the same question, so it is asked what it learned).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from zoo.align.critics import CRITICS, Critic
from zoo.data.critique import critic_row


@CRITICS.register("prompted", aliases=("trained",))
class PromptedCritic(Critic):
    """A VLM that writes critiques (module docstring).

    ``path``: a zoo model folder or HF VLM, loaded on first use; ``source``: where relative media paths of the
    rows start (None: as they are); ``max_new_tokens``: the critique's limit; ``batch_size``: questions per
    generation; ``device`` (default: CUDA when there is one) and ``dtype`` for loading; ``policy``: an already
    loaded `Policy` instead of ``path``.
    """

    def __init__(self, path: str | None = None, source: str | None = None, max_new_tokens: int = 96,
                 batch_size: int = 16, device: str | None = None, dtype: str | None = None, policy=None):
        if path is None and policy is None:
            raise ValueError("prompted critic: give the critic model's path (a zoo model folder or an HF VLM)")
        for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"prompted critic: {name} must be an integer >= 1, not {value!r}")
        self.path, self.source, self.max_new_tokens, self.batch_size = path, source, max_new_tokens, batch_size
        self.device, self.dtype = device, dtype
        self._policy, self._encoder = policy, None

    @property
    def policy(self):
        """The critic model, loaded on first use, in eval mode, without gradients."""
        if self._policy is None:
            from zoo.models import load_frozen_policy

            self._policy = load_frozen_policy(self.path, dtype=self.dtype, device=self.device)
        return self._policy

    def __call__(self, references: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> list[str]:
        from zoo.data.collate import ExampleEncoder, pad_batch
        from zoo.models.policy import eval_mode, to_device

        if len(references) != len(responses):
            raise ValueError(f"prompted critic: {len(responses)} responses but {len(references)} references")
        policy = self.policy
        if self._encoder is None:
            self._encoder = ExampleEncoder(policy.processor, media_root=self.source)
        tok = policy.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(policy.parameters()).device
        out: list[str] = []
        for start in range(0, len(responses), self.batch_size):
            rows = [critic_row(r, text, r.get("example_index", r.get("id", start + n)))
                    for n, (r, text) in enumerate(zip(references[start:start + self.batch_size],
                                                      responses[start:start + self.batch_size]))]
            batch = pad_batch([self._encoder.encode(row, start + n, None) for n, row in enumerate(rows)], pad, "left")
            with eval_mode(policy), torch.no_grad():
                out += [t.strip() for t in policy.generate(to_device(batch, device),
                                                           max_new_tokens=self.max_new_tokens).texts]
        self._encoder._shared_media.clear()  # this call's images, not every image the critic ever saw
        return out
