"""The reward model: any zoo backbone (composed or HF-native, media in) with a scalar Bradley–Terry head.

`RewardModel` = a `Policy` + ``nn.Linear(hidden, 1)`` reading the backbone's last hidden state (what its LM
head reads: after the final norm) at the last token of prompt + response — the response's EOS, since encoded
responses end with it. The hidden state is taken from the input of the backbone's output embeddings
(``get_output_embeddings()``) by a forward pre-hook, so every backbone that has an LM head works unchanged.

Scoring K responses of one prompt runs like `Policy.group_logps`: on a `PrefixGroups` batch the prompt's media
are encoded once and the prompt runs once with a KV cache, then the K responses continue from it in one
``[K*B, R]`` forward; on a `ConcatGroups` batch the K full sequences run separately (the naive computation).
Both give the same rewards (`tests/models/test_reward.py`, every backbone stand-in).

A reward-model folder is the backbone's `save_pretrained` folder (loadable as a policy too) plus
``reward_head.safetensors`` (the head) and ``reward.json`` (the marker: format, hidden size, what the head
reads). `load_reward_model(path)` reads it; `zoo.load` returns a model with ``score(...)`` for such a folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.data.batches import ConcatGroups, EncodedGroup, GroupBatch, PrefixGroups
from zoo.models.policy import Media, Policy

REWARD_CONFIG = "reward.json"
REWARD_HEAD = "reward_head.safetensors"
FORMAT = "zoo-reward-model"


def is_reward_folder(path: str | Path) -> bool:
    """True when ``path`` is a reward-model folder (it holds the ``reward.json`` marker)."""
    return (Path(path) / REWARD_CONFIG).is_file()


def hidden_size(policy: Policy) -> int:
    """The width of the hidden state the backbone's LM head reads."""
    head = policy.model.get_output_embeddings()
    if head is None or not hasattr(head, "in_features"):
        raise ValueError(f"{type(policy.model).__name__} has no linear output embeddings: a reward head needs "
                         "the last hidden state its LM head reads")
    return int(head.in_features)


@contextmanager
def _last_hidden(model: nn.Module):
    """Record the input of ``model``'s LM head (the final hidden states, as many positions as it computes)."""
    seen: list[torch.Tensor] = []
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real (mask 1) position of each row, left or right padding alike."""
    T = attention_mask.shape[1]
    return T - 1 - attention_mask.flip(1).to(torch.int64).argmax(1)


class RewardModel(nn.Module):
    """A `Policy` and a scalar head (see the module docstring). ``forward(batch)`` is `group_rewards`."""

    def __init__(self, policy: Policy, head: nn.Linear | None = None):
        super().__init__()
        self.policy = policy
        if head is None:
            head = nn.Linear(hidden_size(policy), 1)
            nn.init.normal_(head.weight, std=1.0 / (head.in_features ** 0.5))  # rewards of unit scale at start
            nn.init.zeros_(head.bias)
            param = next(policy.parameters(), None)
            if param is not None:
                head = head.to(param.device)
        self.head = head

    @property
    def processor(self):
        return self.policy.processor

    @property
    def tokenizer(self):
        return self.policy.tokenizer

    def forward(self, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        return self.group_rewards(batch, media)

    def _reward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()

    def group_rewards(self, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        """``[B, K]`` rewards of the K responses of each prompt of a group batch (`zoo.data.collate.pad_groups`),
        media encoded once per prompt in both layouts."""
        policy, model = self.policy, self.policy.model
        if media is None:
            media = policy.encode_media(batch.media_batch)
        if isinstance(batch, ConcatGroups):  # the naive computation: K full sequences
            rewards = []
            for side in batch.sides:
                with _last_hidden(model) as seen:
                    policy.backbone.forward(side["input_ids"], side["attention_mask"],
                                            policy.backbone.position_ids(side), media=media, batch=side)
                rows = torch.arange(side["input_ids"].shape[0], device=seen[-1].device)
                rewards.append(self._reward(seen[-1][rows, last_positions(side["attention_mask"]).to(rows.device)]))
            return torch.stack(rewards, 1)
        if not isinstance(batch, PrefixGroups):
            raise TypeError(f"group_rewards takes PrefixGroups or ConcatGroups, not {type(batch).__name__}")
        prompt, responses, K = batch.prompt, batch.responses, batch.k
        B = prompt["input_ids"].shape[0]
        with _last_hidden(model) as seen:
            out, position_ids, am = policy._prefill(
                prompt, media, None, logits_to_keep=1,
                unpadded="shared-prefix groups need left-padded prompts (pad_groups)")
            prompt_last = seen[-1][:, -1]  # [B, H]: a response of no tokens is read here
            rows = torch.arange(B, device=am.device).repeat(K)  # slot-major, as the responses are
            out.cache.reorder_cache(rows)
            r_ids, r_am = responses.input_ids.to(am.device), responses.attention_mask.to(am.device)
            r_pos = policy.backbone.next_position_ids(position_ids, r_ids.shape[1]).index_select(-2, rows)
            policy.backbone.forward(r_ids, torch.cat([am.index_select(0, rows), r_am], 1), r_pos, cache=out.cache,
                                    use_cache=True)
            hidden = seen[-1]  # [K*B, R, H]
        lengths = r_am.sum(1)
        index = torch.arange(K * B, device=hidden.device)
        last = hidden[index, (lengths - 1).clamp(min=0).to(hidden.device)]
        empty = (lengths == 0).to(hidden.device)[:, None]
        last = torch.where(empty, prompt_last.index_select(0, rows.to(hidden.device)), last)
        return self._reward(last).view(K, B).T

    # ---- scoring rows (inference) ---------------------------------------------------------------------

    @torch.no_grad()
    def score(self, rows: Sequence[dict], responses: Sequence[Sequence[str]], media_root: str | Path | None = None,
              batch_size: int = 8, max_length: int | None = None, encoder: Any = None) -> list[list[float]]:
        """Rewards of ``responses[i]`` (any number of texts) as answers to row ``i``'s prompt (the schema's
        ``prompt`` messages and media columns; media paths relative to ``media_root``). Each prompt and its
        media are encoded and run once; ``batch_size`` prompts go through the model together. Eval mode is
        the caller's (a loaded model is in eval mode)."""
        from zoo.data.collate import ExampleEncoder, pad_groups

        if len(rows) != len(responses):
            raise ValueError(f"score: {len(rows)} rows but {len(responses)} lists of responses")
        encoder = encoder or ExampleEncoder(self.processor, max_length, media_root=media_root)
        groups = []
        for i, (row, texts) in enumerate(zip(rows, responses)):
            index = row.get("example_index", i) if isinstance(row, dict) else i
            prompt = encoder.encode(row, index, None)
            groups.append(EncodedGroup(index, prompt, [self._response_ids(t, prompt.prompt_length, encoder.max_length)
                                                       for t in texts]))
        scores: list[list[float]] = [[] for _ in groups]
        by_k: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            if g.k:
                by_k.setdefault(g.k, []).append(i)
        device = next(self.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for members in by_k.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                batch = pad_groups([groups[i] for i in chunk], pad).to(device)
                for i, values in zip(chunk, self.group_rewards(batch).tolist()):
                    scores[i] = values
        return scores

    def _response_ids(self, text: str, n_prompt: int, max_length: int | None) -> torch.Tensor:
        """A response as training encodes it: its tokens + EOS (an empty text is the EOS alone), cut to fit."""
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"] if str(text).strip() else []
        ids = torch.tensor([*ids, tok.eos_token_id], dtype=torch.long)
        return ids if max_length is None else ids[: max(1, max_length - n_prompt)]

    # ---- the folder ----------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, model_state: dict | None = None, head_state: dict | None = None
                        ) -> Path:
        """The backbone's model folder + the head (``reward_head.safetensors``) + the marker (``reward.json``).
        ``model_state`` / ``head_state``: whole weights to write instead of the modules' own (sharded) ones."""
        from safetensors.torch import save_file

        path = Path(path)
        self.policy.backbone.save_pretrained(path, state_dict=model_state)
        head = head_state if head_state is not None else self.head.state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in head.items()}, path / REWARD_HEAD)
        config = {"format": FORMAT, "version": 1, "hidden_size": self.head.in_features, "head": REWARD_HEAD,
                  "reads": "the final hidden state (the LM head's input) at the last token of prompt + response",
                  "loss": "Bradley-Terry: -log sigmoid(r_chosen - r_rejected)"}
        (path / REWARD_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return path


def load_head(path: str | Path, hidden: int) -> nn.Linear:
    """The head saved in a reward-model folder, checked against the backbone's hidden size."""
    from safetensors.torch import load_file

    path = Path(path)
    config = json.loads((path / REWARD_CONFIG).read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path / REWARD_CONFIG}: not a zoo reward model (format {config.get('format')!r})")
    state = load_file(path / config.get("head", REWARD_HEAD))
    if tuple(state.get("weight", torch.empty(0)).shape) != (1, hidden) or config.get("hidden_size") != hidden:
        raise ValueError(f"{path}: the reward head reads {config.get('hidden_size')} features but the backbone's "
                         f"hidden size is {hidden}")
    head = nn.Linear(hidden, 1)
    head.load_state_dict(state)
    return head


def load_reward_model(path: str | Path, dtype=None, device=None, trust_remote_code: bool = False,
                      freeze: list[str] | tuple[str, ...] | str = ()) -> RewardModel:
    """Load a reward-model folder (``reward.json`` + head + the backbone's folder) in eval mode."""
    from zoo.models import load_policy

    path = Path(path)
    if not is_reward_folder(path):
        raise FileNotFoundError(f"{path} is not a reward model folder (no {REWARD_CONFIG}): train one with "
                                "zoo train recipe=reward model=pretrained model.path=<SFT model folder>")
    policy = load_policy(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code, freeze=freeze)
    head = load_head(path, hidden_size(policy))
    param = next(policy.parameters())
    return RewardModel(policy, head.to(param.device)).eval()

