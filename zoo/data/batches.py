"""The typed batches that flow from data to objective.

Encoded examples (one row each, unpadded, made once before training by `zoo.data.collate`):

* `Encoded` — a prompt (media included) and optionally a response: SFT and generation.
* `EncodedGroup` — one prompt and K responses to it: a preference pair is K = 2 (chosen first), a
  ranked row is K responses sorted by ``scores``, best first.

Padded batches (what a pair source hands the preference module):

* `PrefixGroups` — every prompt once (left-padded, media once per prompt) and its K responses
  right-padded after it: the model runs the prompt once and continues the K responses from its KV
  cache (prefix sharing).
* `ConcatGroups` — K ordinary right-padded prompt + response batches, one per response slot: the
  naive layout peers use, kept to prove prefix sharing equal to it.
* `ExampleBatch` — the encoded groups themselves, unpadded: online pair sources write responses
  before padding.

A model-input batch (`Batch`) stays a plain dict — ``input_ids``/``attention_mask``/``labels`` and
whatever media tensors the processor made — because that is what every HF model takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

Batch = dict[str, Any]
IGNORE_INDEX = -100

# One pair inside a group: (chosen slot, rejected slot, weight). Pairs of a group batch apply to all rows.
PairSpec = tuple[int, int, float]
CHOSEN_REJECTED: tuple[PairSpec, ...] = ((0, 1, 1.0),)


@dataclass
class Encoded:
    """One encoded example: 1-D token tensors plus media tensors."""

    index: Any
    input_ids: torch.Tensor  # [T]
    labels: torch.Tensor  # [T], IGNORE_INDEX outside the response
    token_inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # [T] each
    media_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    prompt_length: int = 0

    def extend(self, response_ids: torch.Tensor) -> Encoded:
        """This prompt followed by ``response_ids`` (labelled); token inputs are 0 over the response."""
        n = len(response_ids)
        token = {k: torch.cat([v, v.new_zeros(n)]) for k, v in self.token_inputs.items()}
        return Encoded(self.index, torch.cat([self.input_ids, response_ids]), torch.cat([self.labels, response_ids]),
                       token, self.media_inputs, self.prompt_length)


@dataclass
class EncodedGroup:
    """One prompt (`Encoded`, no response; media once) and the token ids of its K responses.

    Pairs: ``responses == [chosen, rejected]``. Ranked rows: responses sorted by ``scores``, best first.
    """

    index: Any
    prompt: Encoded
    responses: list[torch.Tensor]  # K × [R_k] response ids, EOS included
    scores: list[float] | None = None

    @property
    def k(self) -> int:
        return len(self.responses)

    @property
    def chosen(self) -> torch.Tensor:
        return self.responses[0]

    @property
    def rejected(self) -> torch.Tensor:
        return self.responses[-1]

    def side(self, k: int) -> Encoded:
        """Prompt + response ``k`` as one example (the naive layout)."""
        return self.prompt.extend(self.responses[k])

    def with_responses(self, responses: list[torch.Tensor], scores: list[float] | None = None) -> EncodedGroup:
        return replace(self, responses=list(responses), scores=scores)


@dataclass
class Responses:
    """K·B right-padded responses, slot-major: row ``k * B + b`` is response k of prompt b."""

    input_ids: torch.Tensor  # [K*B, R]
    attention_mask: torch.Tensor  # [K*B, R]
    labels: torch.Tensor  # [K*B, R], IGNORE_INDEX on padding

    def to(self, device) -> Responses:
        return Responses(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels)))


@dataclass
class GroupBatch:
    """What every layout shares: which examples, K, the pairs to compare, and scores of ranked data."""

    example_index: list
    k: int
    pairs: tuple[PairSpec, ...] = CHOSEN_REJECTED  # pairwise objectives compare these slots
    scores: torch.Tensor | None = None  # [B, K], higher is better (ranked data)
    pair_names: tuple[str, ...] = ()  # metric prefixes of pairs after the first (e.g. "external")
    # [B, K, T] per-token log-probs of the responses under the policy that sampled them (online sources
    # reusing a sample for several updates); None: the current policy's
    behaviour: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def media_batch(self) -> Batch:
        """The model-input batch that holds the media (encoded once for all K responses)."""
        raise NotImplementedError


@dataclass
class PrefixGroups(GroupBatch):
    prompt: Batch = field(default_factory=dict)  # [B, P] left-padded: every prompt ends at the last column
    responses: Responses | None = None

    @property
    def media_batch(self) -> Batch:
        return self.prompt

    def to(self, device) -> PrefixGroups:
        return replace(self, prompt=_to(self.prompt, device), responses=self.responses.to(device),
                       scores=None if self.scores is None else self.scores.to(device),
                       behaviour=None if self.behaviour is None else self.behaviour.to(device))


@dataclass
class ConcatGroups(GroupBatch):
    sides: list[Batch] = field(default_factory=list)  # K right-padded prompt + response batches, same media

    @property
    def media_batch(self) -> Batch:
        return self.sides[0]

    def to(self, device) -> ConcatGroups:
        return replace(self, sides=[_to(s, device) for s in self.sides],
                       scores=None if self.scores is None else self.scores.to(device),
                       behaviour=None if self.behaviour is None else self.behaviour.to(device))


@dataclass
class ExampleBatch:
    """Encoded groups, unpadded (they stay on the CPU: an online source pads them once it has written)."""

    groups: list[EncodedGroup]

    @property
    def example_index(self) -> list:
        return [g.index for g in self.groups]

    def __len__(self) -> int:
        return len(self.groups)

    def to(self, device) -> ExampleBatch:
        return self


def _to(batch: Batch, device) -> Batch:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
