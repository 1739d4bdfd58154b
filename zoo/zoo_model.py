"""`load`: a name, a hub repo or a folder → a `ZooModel` ready to generate.

Resolution order: a local model folder → the local hub (`zoo.hub.LocalHub`, checksums verified) →
the HF Hub (``snapshot_download``, which honours ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN``).
A zoo name (`zoo.registry`) resolves to its entry's repo. With ``build=True`` an embedded entry found
nowhere is built by its recipe and pushed to the local hub first.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.hub import HubError, LocalHub, push_run

log = logging.getLogger(__name__)


@dataclass
class ZooModel:
    """A loaded model: its `Policy`, processor, card and results, and a small chat interface."""

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


def _items(media) -> list:
    """One media item (a path, bytes, a PIL image, an array, a dict) or a list/tuple of them, as a list."""
    return [] if media is None else list(media) if isinstance(media, (list, tuple)) else [media]


def load(name_or_path: str | Path, revision: str | None = None, device=None, dtype=None, build: bool = False,
         hub: LocalHub | None = None) -> ZooModel:
    """Load a zoo model by zoo name, hub repo id or local folder (see module docstring)."""
    from zoo.models import load_policy
    from zoo.registry import ENTRIES

    hub = hub or LocalHub()
    target = str(name_or_path)
    folder = Path(target).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        return ZooModel(load_policy(folder, dtype=dtype, device=device).eval(), "folder", folder, target)
    if target.startswith(("/", ".", "~")) or target.count("/") > 1:  # a path, not a zoo name or 'org/name'
        raise HubError(f"model folder {target!r} does not exist or holds no config.json; pass a local model "
                       "folder, a zoo name (zoo list) or a hub repo 'org/name'")
    entry = ENTRIES.get(target)
    repo = entry.repo if entry else target
    if hub.exists(repo):
        rev = hub.resolve(repo, revision)  # verifies every file's sha256
        return ZooModel(load_policy(rev.path, dtype=dtype, device=device).eval(), "local-hub", rev.path, target,
                        rev.revision)
    tried = [f"no local folder {target!r}", f"not in the local hub {hub.root}"]
    if "/" in repo:
        path = _from_hf_hub(repo, revision, tried)
        if path is not None:
            return ZooModel(load_policy(path, dtype=dtype, device=device).eval(), "hf-hub", path, target, revision)
    if entry is not None and entry.embedded and build:
        build_entry(entry.name, hub=hub)
        return load(target, revision=None, device=device, dtype=dtype, hub=hub)
    if entry is not None and entry.embedded:
        hint = f"build it with `zoo build {entry.name}` or load({entry.name!r}, build=True)"
    elif entry is not None:
        hint = f"train it on a GPU: zoo train {' '.join(entry.recipe)} output_dir=runs/{entry.name}, then zoo push"
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


def build_entry(name: str, hub: LocalHub | None = None, runs_root: str | Path = "runs", extra: tuple[str, ...] = ()) -> str:
    """Train an embedded entry (its base first when missing) and push it to the local hub."""
    from zoo.registry import get_entry
    from zoo.train.run import compose_config, train

    entry, hub = get_entry(name), hub or LocalHub()
    overrides = list(entry.recipe)
    if entry.base is not None:
        base = get_entry(entry.base)
        if not hub.exists(base.repo):
            build_entry(base.name, hub, runs_root, extra)
        base_path = hub.resolve(base.repo).path
        overrides = [o.replace("{base}", str(base_path)) for o in overrides]
    out = Path(runs_root) / entry.name
    cfg = compose_config([*overrides, f"output_dir={out}", "overwrite=true", *extra])
    log.info("building %s: zoo train %s", entry.name, " ".join(overrides))
    train(cfg)
    return push_run(out, entry.repo, hub, message=f"build {entry.name}")
