"""`load`: a name, a hub repo or a folder → a `ZooModel` ready to generate (a reward-model folder: a
`RewardZooModel`, ready to score).

Resolution order: a local model folder → the local hub (`zoo.hub.LocalHub`, checksums verified) →
the HF Hub (``snapshot_download``, which honours ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN``).
A zoo name (`zoo.entries`, old names included) resolves to its entry's repo. Loading never trains: an
embedded entry that is in no hub yet is built with ``zoo build NAME`` (`zoo.build`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.hub import HubError, LocalHub


@dataclass(repr=False)
class ZooModel:
    """A loaded model: its `Policy`, processor, card and results, and a small chat interface. Its repr is a
    short summary; the module tree is ``model.policy``'s."""

    policy: Any
    source: str  # "folder", "local-hub" or "hf-hub"
    path: Path
    name: str
    revision: str | None = None

    @property
    def processor(self):
        return self.policy.processor

    @property
    def card(self) -> str | None:
        card = self.path / "README.md"
        return card.read_text() if card.is_file() else None

    @property
    def results(self) -> dict | None:
        results = self.path / "results.json"
        return json.loads(results.read_text()) if results.is_file() else None

    def __repr__(self) -> str:
        from zoo.cards import describe_backbone, format_count
        from zoo.hub import model_modalities

        config = self.policy.model.config.to_dict()
        where = {"folder": f"the folder {self.path}", "local-hub": "the local hub", "hf-hub": "the HF Hub"}
        source = where.get(self.source, self.source)
        if self.revision:
            source += f", revision {self.revision[:12]}"
        params = list(self.policy.parameters())
        first = params[0] if params else None
        dtype = str(first.dtype).removeprefix("torch.") if first is not None else "?"
        modalities = ", ".join([*(model_modalities(config) or ()), "text"])
        return "\n".join([
            f"ZooModel {self.name!r} from {source}",
            f"  backbone    {describe_backbone(config).replace('`', '')}",
            (f"  inputs      {modalities} · {format_count(sum(p.numel() for p in params))} parameters"
             f" · {dtype} on {first.device if first is not None else '?'}"),
            "  (modules: .policy; card and scores: .card, .results)",
        ])

    def chat(self, messages: list[dict], max_new_tokens: int = 64, **kwargs) -> str:
        """Reply to a conversation (TRL's format): its ``{"type": "image"|"audio"|"video"}`` parts take the
        items of the keyword named by the modality's column — ``images=``, ``audios=``, ``videos=`` — in order
        (paths, bytes, PIL images, arrays — see `modalities`); other keywords go to `Policy.generate`."""
        from modalities.record import all_modalities
        from zoo.data.collate import ExampleEncoder, pad_batch
        from zoo.models.policy import to_device

        row = {"prompt": messages, **{m.column: _items(kwargs.pop(m.column, None)) for m in all_modalities()}}
        encoded = ExampleEncoder(self.processor).encode(row, "chat", None)
        tok = self.policy.tokenizer
        batch = pad_batch([encoded], tok.pad_token_id, padding_side="left")
        batch = to_device(batch, next(self.policy.parameters()).device)
        return self.policy.generate(batch, max_new_tokens=max_new_tokens, **kwargs).texts[0]

    def generate(self, text: str, max_new_tokens: int = 64, **kwargs) -> str:
        """One user turn: media (one item or a list per kind: ``images=``, ``audios=``, ``videos=``) come
        before the text, images first; other keywords go to `Policy.generate`."""
        from modalities.record import all_modalities

        media = [(m, _items(kwargs.pop(m.column, None))) for m in all_modalities()]  # in the records' order
        content = [{"type": m.name} for m, items in media for _ in items] + [{"type": "text", "text": text}]
        return self.chat([{"role": "user", "content": content}], max_new_tokens,
                         **{m.column: items for m, items in media}, **kwargs)


@dataclass(repr=False)
class RewardZooModel(ZooModel):
    """A loaded reward model (a folder with ``reward.json``, `zoo.models.reward`): ``policy`` is its backbone,
    ``reward`` the `RewardModel`; ``score`` rates responses instead of writing one."""

    reward: Any = None

    def __repr__(self) -> str:
        return super().__repr__().replace("ZooModel", "ZooModel (reward model)", 1).replace(
            "(modules: .policy;", "(score responses: .score; modules: .reward, .policy;")

    def score(self, text: str | list[dict], responses: list[str], **media) -> list[float]:
        """Rewards of ``responses`` to one prompt: a user turn's ``text`` (media before it, as in `generate`:
        ``images=``, ``audios=``, ``videos=``) or a conversation (a list of messages, as in `chat`)."""
        from modalities.record import all_modalities

        items = [(m, _items(media.pop(m.column, None))) for m in all_modalities()]
        if media:
            raise TypeError(f"score() got unexpected keyword(s) {', '.join(sorted(media))}")
        if isinstance(text, str):
            content = [{"type": m.name} for m, its in items for _ in its] + [{"type": "text", "text": text}]
            text = [{"role": "user", "content": content}]
        row = {"prompt": text, **{m.column: its for m, its in items}}
        return self.score_rows([row], [list(responses)])[0]

    def score_rows(self, rows: list[dict], responses: list[list[str]], media_root: str | Path | None = None,
                   batch_size: int = 8) -> list[list[float]]:
        """Rewards of ``responses[i]`` to the prompt of data row ``i`` (the zoo's schema; relative media paths
        start at ``media_root``); each prompt and its media run once."""
        return self.reward.score(rows, responses, media_root=media_root, batch_size=batch_size)


def _loaded(path: Path, source: str, name: str, revision: str | None = None, device=None, dtype=None) -> ZooModel:
    """The model folder ``path`` as a `ZooModel`, or a `RewardZooModel` when it is a reward-model folder."""
    from zoo.models import load_policy
    from zoo.models.reward import is_reward_folder, load_reward_model

    if is_reward_folder(path):
        reward = load_reward_model(path, dtype=dtype, device=device)
        return RewardZooModel(reward.policy.eval(), source, path, name, revision, reward=reward)
    return ZooModel(load_policy(path, dtype=dtype, device=device).eval(), source, path, name, revision)


def _items(media) -> list:
    """One media item (a path, bytes, a PIL image, an array, a dict) or a list/tuple of them, as a list."""
    return [] if media is None else list(media) if isinstance(media, (list, tuple)) else [media]


def load(name_or_path: str | Path, revision: str | None = None, device=None, dtype=None,
         hub: LocalHub | None = None) -> ZooModel:
    """Load a zoo model by zoo name, hub repo id or local folder (see module docstring)."""
    from zoo.entries import ENTRIES

    hub = hub or LocalHub()
    target = str(name_or_path)
    folder = Path(target).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        if revision is not None:
            raise HubError(f"{target!r} is a local folder, which has no revisions: drop the revision, or load "
                           "a hub repo")
        return _loaded(folder, "folder", target, device=device, dtype=dtype)
    if target.startswith(("/", ".", "~")) or target.count("/") > 1:  # a path, not a zoo name or 'org/name'
        raise HubError(f"model folder {target!r} does not exist or holds no config.json; pass a local model "
                       "folder, a zoo name (zoo list) or a hub repo 'org/name'")
    entry = ENTRIES.get(target) if target in ENTRIES else None
    if entry is None and "/" not in target:
        raise HubError(f"unknown zoo name {target!r}; known names: {', '.join(ENTRIES.names())} (or pass a hub "
                       "repo 'org/name' or a local model folder)")
    repo = entry.repo if entry else target
    if hub.exists(repo):
        rev = hub.resolve(repo, revision)  # verifies every file's sha256
        return _loaded(rev.path, "local-hub", target, rev.revision, device=device, dtype=dtype)
    tried = [f"no local folder {target!r}", f"not in the local hub {hub.root}"]
    if "/" in repo:
        path = _from_hf_hub(repo, revision, tried)
        if path is not None:  # a snapshot folder is named by its full commit id: record that, not a branch name
            commit = path.name if path.parent.name == "snapshots" else revision
            return _loaded(path, "hf-hub", target, commit, device=device, dtype=dtype)
    if entry is not None:  # a zoo model not made yet: loading never trains, `zoo build` does
        hint = f"make it first: {entry.how_to_make()}"
    else:
        hint = "check the name, or push the model first"
    raise HubError(f"cannot load {target!r}: " + "; ".join(tried) + f". {hint}")


def _from_hf_hub(repo: str, revision: str | None, tried: list[str]) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        tried.append(f"not on the HF Hub ({'offline' if offline else type(e).__name__})")
        return None
