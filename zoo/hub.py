"""The local hub: pushed model folders as immutable, checksummed revisions under ``ZOO_HOME``.

Layout (one repo)::

    $ZOO_HOME/hub/<kind>s/<org>/<name>/
        revisions/<rev>/            the files of one push (never modified again)
        revisions/<rev>/.zoo-manifest.json   {"files": {path: sha256}, "created", "message", "parent"}
        refs/main                   the revision ``main`` points at (one line)

`push_run` lays a training run out as a hub repo (`stage_run`: model files, ``recipe.yaml``,
``results.json``, ``.eval_results/``, the model card) and pushes it here; `push_run_to_hf` sends the same
layout to the HF Hub. A push copies the folder into a temporary directory beside ``revisions/``, writes the manifest, renames
the directory into place and only then moves ``refs/main`` (write-then-``os.replace``): a push killed
at any point leaves ``main`` and every earlier revision untouched. ``rev`` is the first 12 hex digits
of the manifest's sha256, so identical content gets the same revision. `resolve` verifies the sha256
of every file against the manifest and refuses a revision whose files were changed, added or removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MANIFEST = ".zoo-manifest.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubError(Exception):
    """A repo or revision that is not there."""


class IntegrityError(HubError):
    """A revision whose files do not match their recorded sha256."""


def zoo_home() -> Path:
    """``$ZOO_HOME``, else ``$XDG_CACHE_HOME/zoo`` (``~/.cache/zoo``)."""
    if os.environ.get("ZOO_HOME"):
        return Path(os.environ["ZOO_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "zoo"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


@dataclass
class Revision:
    repo_id: str
    revision: str
    path: Path
    manifest: dict


class LocalHub:
    """Model and dataset repos on the local disk (see module docstring)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else zoo_home() / "hub"

    def repo_dir(self, repo_id: str, kind: str = "model") -> Path:
        if not _REPO_ID.match(repo_id) or ".." in repo_id:
            raise ValueError(f"repo id must look like 'org/name', got {repo_id!r}")
        return self.root / f"{kind}s" / repo_id

    def exists(self, repo_id: str, kind: str = "model") -> bool:
        return (self.repo_dir(repo_id, kind) / "refs" / "main").is_file()

    def revisions(self, repo_id: str, kind: str = "model") -> list[str]:
        """Revisions oldest first (by push time)."""
        base = self.repo_dir(repo_id, kind) / "revisions"
        found = []
        for d in base.iterdir() if base.is_dir() else ():
            if d.is_dir() and (d / MANIFEST).is_file():
                found.append((json.loads((d / MANIFEST).read_text())["created"], d.name))
        return [name for _, name in sorted(found)]

    def main(self, repo_id: str, kind: str = "model") -> str:
        ref = self.repo_dir(repo_id, kind) / "refs" / "main"
        if not ref.is_file():
            raise HubError(f"no repo {repo_id!r} in the local hub {self.root}")
        return ref.read_text().strip()

    def push(self, folder: str | Path, repo_id: str, message: str = "", kind: str = "model") -> str:
        """Store ``folder`` as a new immutable revision of ``repo_id`` and point ``main`` at it."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"nothing to push: {folder} is not a folder")
        repo = self.repo_dir(repo_id, kind)
        (repo / "revisions").mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        parent = self.main(repo_id, kind) if self.exists(repo_id, kind) else None
        tmp = Path(tempfile.mkdtemp(prefix=".push-", dir=repo / "revisions"))
        try:
            files = {}
            for src in _files(folder):
                rel = src.relative_to(folder).as_posix()
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                files[rel] = sha256_file(dst)
            content = json.dumps(files, sort_keys=True)
            manifest = {"files": files, "created": time.time(), "message": message, "parent": parent}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            rev = hashlib.sha256(content.encode()).hexdigest()[:12]
            final = repo / "revisions" / rev
            if final.exists():  # the same content was pushed before: reuse that revision
                shutil.rmtree(tmp)
            else:
                tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        ref_tmp = repo / "refs" / f".main.{os.getpid()}.tmp"
        ref_tmp.write_text(rev + "\n")
        os.replace(ref_tmp, repo / "refs" / "main")
        return rev

    def resolve(self, repo_id: str, revision: str | None = None, kind: str = "model", verify: bool = True) -> Revision:
        """The folder of ``revision`` (default ``main``; a revision id or an unambiguous prefix of one)."""
        rev = self.main(repo_id, kind) if revision in (None, "main") else revision
        base = self.repo_dir(repo_id, kind) / "revisions"
        matches = [d for d in base.iterdir() if d.name.startswith(rev) and not d.name.startswith(".")] \
            if base.is_dir() else []
        if len(matches) != 1:
            known = ", ".join(self.revisions(repo_id, kind)) or "none"
            raise HubError(f"{repo_id}: no single revision matches {rev!r} (revisions: {known})")
        path = matches[0]
        manifest = json.loads((path / MANIFEST).read_text())
        if verify:
            verify_folder(path, manifest["files"], f"{repo_id}@{path.name}")
        return Revision(repo_id, path.name, path, manifest)


# ---------------------------------------------------------------- pushing runs


def stage_run(run_dir: str | Path, repo_id: str, dest: str | Path, card: bool = True, **card_kwargs) -> Path:
    """Lay a training run out as a hub repo in ``dest``: its ``model/`` files plus ``recipe.yaml``,
    ``results.json`` and ``.eval_results/`` when present, and a model card (``README.md``, rendered from
    ``model_cards/`` unless the run has its own)."""
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
        from zoo.cards import write_eval_results

        write_eval_results(json.loads((run_dir / "results.json").read_text()), stage)
    if card and not (stage / "README.md").exists():
        from zoo.cards import render_card
        from zoo.entries import card_defaults

        (stage / "README.md").write_text(render_card(run_dir, repo_id, **{**card_defaults(repo_id), **card_kwargs}))
    return stage


def push_run(run_dir: str | Path, repo_id: str, hub: LocalHub | None = None, message: str = "",
             card: bool = True, **card_kwargs) -> str:
    """Push a training run (laid out by `stage_run`) to the local hub; returns the new revision."""
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
    with tempfile.TemporaryDirectory() as tmp:
        stage = stage_run(run_dir, repo_id, Path(tmp) / "repo", card, **card_kwargs)
        return upload_to_hf(stage, repo_id, message or f"zoo push {Path(run_dir).name}", repo_type, private)


def upload_to_hf(folder: str | Path, repo_id: str, message: str, repo_type: str = "model", private: bool = False) -> str:
    """``create_repo`` (if missing) + ``upload_folder`` with huggingface_hub's client; returns the commit id.
    The token comes from the environment or the login only."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=message).oid


def verify_folder(path: Path, files: dict[str, str], what: str) -> None:
    """Raise `IntegrityError` unless ``path`` holds exactly ``files`` with those sha256."""
    present = {p.relative_to(path).as_posix() for p in _files(path)}
    if present != set(files):
        extra, missing = sorted(present - set(files)), sorted(set(files) - present)
        raise IntegrityError(f"{what}: files differ from the manifest (extra {extra}, missing {missing})")
    for rel, digest in files.items():
        if sha256_file(path / rel) != digest:
            raise IntegrityError(f"{what}: {rel} does not match its recorded sha256 (tampered or corrupted); "
                                 "refusing to load it")
