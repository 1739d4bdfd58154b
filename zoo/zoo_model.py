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

from zoo.hub import HubError, LocalHub

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

    def chat(self, messages: list[dict], images=None, max_new_tokens: int = 64, **gen) -> str:
        """Reply to a conversation (TRL's format; ``{"type": "image"}`` parts take ``images`` in order)."""
        from zoo.data.collate import ExampleEncoder, pad_batch

        row = {"prompt": messages, "images": list(images or [])}
        encoded = ExampleEncoder(self.processor).encode(row, "chat", None)
        tok = self.policy.tokenizer
        batch = pad_batch([encoded], tok.pad_token_id, padding_side="left")
        device = next(self.policy.parameters()).device
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
        return self.policy.generate(batch, max_new_tokens=max_new_tokens, **gen).texts[0]

    def generate(self, text: str, images=None, max_new_tokens: int = 64, **gen) -> str:
        """One user turn: ``images`` (paths or PIL images) come before the text."""
        images = [images] if images is not None and not isinstance(images, (list, tuple)) else list(images or [])
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
        return self.chat([{"role": "user", "content": content}], images, max_new_tokens, **gen)


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


def stage_run(run_dir: str | Path, repo_id: str, dest: str | Path, card: bool = True, **card_kwargs) -> Path:
    """Lay a training run out as a hub repo in ``dest``: its ``model/`` files plus ``recipe.yaml``,
    ``results.json`` and ``.eval_results/`` when present, and a model card (``README.md``, rendered from
    ``model_cards/`` unless the run has its own)."""
    import shutil

    run_dir, stage = Path(run_dir), Path(dest)
    model = run_dir / "model"
    if not (model / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} holds no model/ folder to push")
    shutil.copytree(model, stage)
    for extra in ("recipe.yaml", "results.json", "README.md"):
        if (run_dir / extra).is_file():
            shutil.copy2(run_dir / extra, stage / extra)
    if (run_dir / ".eval_results").is_dir():
        shutil.copytree(run_dir / ".eval_results", stage / ".eval_results")
    elif (run_dir / "results.json").is_file():
        from benchmarks.cards import write_eval_results

        write_eval_results(json.loads((run_dir / "results.json").read_text()), stage)
    if card and not (stage / "README.md").exists():
        from zoo.model_card import render_card

        (stage / "README.md").write_text(render_card(run_dir, repo_id, **card_kwargs))
    return stage


def push_run(run_dir: str | Path, repo_id: str, hub: LocalHub | None = None, message: str = "",
             card: bool = True, **card_kwargs) -> str:
    """Push a training run (laid out by `stage_run`) to the local hub; returns the new revision."""
    import tempfile

    hub = hub or LocalHub()
    with tempfile.TemporaryDirectory() as tmp:
        stage = stage_run(run_dir, repo_id, Path(tmp) / "repo", card, **card_kwargs)
        return hub.push(stage, repo_id, message=message or f"push {run_dir}")


def push_run_to_hf(run_dir: str | Path, repo_id: str, message: str = "", private: bool = False,
                   repo_type: str = "model", card: bool = True, **card_kwargs) -> str:
    """Push a training run to the HF Hub (``create_repo`` + ``upload_folder`` of huggingface_hub's client).

    The token comes from the environment (``HF_TOKEN``) or ``hf auth login`` only — never from an
    argument, so it never lands in a command line, a file or a log. Returns the commit id.
    """
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        stage = stage_run(run_dir, repo_id, Path(tmp) / "repo", card, **card_kwargs)
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(stage), repo_id=repo_id, repo_type=repo_type,
                                 commit_message=message or f"zoo push {Path(run_dir).name}")
    return info.oid


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
