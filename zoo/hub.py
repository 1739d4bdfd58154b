"""The local hub: pushed model folders as immutable, checksummed revisions under ``ZOO_HOME``.

Layout (one repo)::

    $ZOO_HOME/hub/<kind>s/<org>/<name>/
        revisions/<rev>/            the files of one push (never modified again)
        revisions/<rev>/.zoo-manifest.json   {"files": {path: sha256}, "created", "message", "parent"}
        refs/main                   the revision ``main`` points at (one line)
        .lock                       the repo's push lock (``filelock``)
        .staging/                   pushes in progress (same filesystem as ``revisions/``)

``rev`` is the first 12 hex digits of the sha256 of the manifest's ``files`` (`content_id`), so
identical content gets the same revision. `resolve` checks the manifest against the revision id and
every file against the manifest, and refuses a revision whose manifest or files were changed.

A push holds the repo's lock from start to end: it reclaims staging left by killed pushes, copies the
folder into ``.staging/``, writes the manifest (``parent`` = ``main`` read under the lock, so history
is linear), renames the folder into ``revisions/`` and only then moves ``refs/main``
(write-then-``os.replace``). A push killed at any point leaves ``main`` and every listed revision
intact; one killed after its rename leaves a complete revision that ``main`` does not point at (a
push of the same content moves ``main`` to it). Identical content is not stored twice: the push
returns the existing revision and says so (`Pushed.created`). Files and folders get the modes the
umask gives, whatever the source's modes, so a shared ``ZOO_HOME`` is readable by the group.

`push_run` lays a training run out as a hub repo (`stage_run`: model files, ``recipe.yaml``,
``results.json``, ``.eval_results/``, the model card) directly in the hub's staging; `push_run_to_hf`
sends the same layout to the HF Hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = ".zoo-manifest.json"
STAGING = ".staging"
LOCK = ".lock"
NAME_MAX = 96  # characters per part of a repo id, as on the HF Hub (and far below a file name's 255 bytes)
FAULT_ENV = "ZOO_HUB_FAULT"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubError(Exception):
    """A repo or revision that is not there."""


class IntegrityError(HubError):
    """A revision whose manifest or files do not match what its id and manifest record."""


class HubBusy(HubError):
    """Another push to the repo held its lock for longer than we were willing to wait."""


class RepoIdError(HubError, ValueError):
    """A repo id that is not 'org/name' or is too long."""


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


def content_id(files: dict[str, str]) -> str:
    """The revision id of a manifest's ``files`` ({path: sha256}): what `LocalHub.resolve` checks."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]


def folder_id(folder: str | Path) -> str:
    """The revision id ``folder`` would get if it were pushed as it is (`content_id` of its files)."""
    folder = Path(folder)
    return content_id({p.relative_to(folder).as_posix(): sha256_file(p) for p in _files(folder)})


def _fault(point: str) -> None:
    """Fault-test hook: ``ZOO_HUB_FAULT=<point>`` SIGKILLs this process at that point of a push, and
    ``<point>:pause`` stops it there (announced on stderr) until someone kills it. Points: ``locked``,
    ``copying`` (after the first file), ``manifest`` (before the rename), ``renamed`` (before main moves)."""
    name, _, action = os.environ.get(FAULT_ENV, "").partition(":")
    if name != point:
        return
    if action == "pause":
        print(f"zoo hub: paused at {point}", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)
    os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_files(src: Path, stage: Path) -> None:
    for n, path in enumerate(_files(src)):
        dst = stage / path.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)  # content only: the mode comes from the umask, not the source
        if n == 0:
            _fault("copying")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Revision:
    repo_id: str
    revision: str
    path: Path
    manifest: dict


class Pushed(str):
    """The revision a push left ``main`` of ``repo_id`` at (a plain ``str`` id), and what the push did:
    ``created`` is False when identical content was already stored (nothing new written); ``previous``
    is the revision ``main`` pointed at before (None for a new repo)."""

    repo_id: str
    created: bool
    previous: str | None

    def __new__(cls, rev: str, repo_id: str, created: bool, previous: str | None):
        self = super().__new__(cls, rev)
        self.repo_id, self.created, self.previous = repo_id, created, previous
        return self

    def __getnewargs__(self):  # copy and pickle rebuild it through __new__
        return str(self), self.repo_id, self.created, self.previous

    def describe(self) -> str:
        if self.created:
            return f"{self.repo_id} is now at the new revision {self}"
        if self.previous == self:
            return f"nothing new: {self.repo_id} is already at revision {self} (identical content)"
        return (f"nothing new stored: identical content is revision {self} of {self.repo_id}; "
                f"main points at it again (was {self.previous})")


class LocalHub:
    """Model and dataset repos on the local disk (see module docstring). ``lock_timeout``: how long a
    push waits for another push to the same repo before giving up (seconds)."""

    def __init__(self, root: str | Path | None = None, lock_timeout: float = 3600.0):
        self.root = Path(root) if root is not None else zoo_home() / "hub"
        self.lock_timeout = lock_timeout

    def repo_dir(self, repo_id: str, kind: str = "model") -> Path:
        if not _REPO_ID.match(repo_id) or ".." in repo_id:
            raise RepoIdError(f"repo id must look like 'org/name', got {repo_id!r}")
        longest = max(repo_id.split("/"), key=len)
        if len(longest) > NAME_MAX:
            raise RepoIdError(f"repo id {repo_id[:40]}… has a part of {len(longest)} characters; "
                              f"org and name may have at most {NAME_MAX} each")
        return self.root / f"{kind}s" / repo_id

    def exists(self, repo_id: str, kind: str = "model") -> bool:
        return (self.repo_dir(repo_id, kind) / "refs" / "main").is_file()

    def revisions(self, repo_id: str, kind: str = "model") -> list[str]:
        """Revisions oldest first (by push time); staging of pushes in progress or killed never shows."""
        base = self.repo_dir(repo_id, kind) / "revisions"
        found = []
        for d in base.iterdir() if base.is_dir() else ():
            if d.name.startswith(".") or not (d / MANIFEST).is_file():
                continue
            try:
                created = float(json.loads((d / MANIFEST).read_text())["created"])
            except (ValueError, KeyError, TypeError):  # a damaged manifest: listed last, `resolve` refuses it
                created = float("inf")
            found.append((created, d.name))
        return [name for _, name in sorted(found)]

    def repos(self, kind: str = "model") -> list[str]:
        """The ids of every repo of ``kind`` that has a ``main``, in name order."""
        base = self.root / f"{kind}s"
        return sorted(f"{d.parent.name}/{d.name}" for d in base.glob("*/*") if (d / "refs" / "main").is_file())

    def main(self, repo_id: str, kind: str = "model") -> str:
        ref = self.repo_dir(repo_id, kind) / "refs" / "main"
        if not ref.is_file():
            raise HubError(f"no repo {repo_id!r} in the local hub {self.root}")
        return ref.read_text().strip()

    def push(self, folder: str | Path, repo_id: str, message: str = "", kind: str = "model") -> Pushed:
        """Store ``folder`` as a revision of ``repo_id`` and point ``main`` at it (see module docstring)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"nothing to push: {folder} is not a folder")
        return self.push_with(partial(_copy_files, folder), repo_id, message, kind)

    def push_with(self, fill: Callable[[Path], object], repo_id: str, message: str = "",
                  kind: str = "model") -> Pushed:
        """Push what ``fill(stage)`` writes into ``stage``, an empty folder in the repo's staging."""
        repo = self.repo_dir(repo_id, kind)
        with self._locked(repo_id, repo):
            _fault("locked")
            self._reclaim(repo)
            stage = repo / STAGING / uuid.uuid4().hex
            stage.mkdir(parents=True)
            try:
                fill(stage)
                return self._commit(repo_id, kind, stage, message)
            finally:  # a failed push cleans up here; a killed one is reclaimed by the next push or `gc`
                shutil.rmtree(stage, ignore_errors=True)

    def _commit(self, repo_id: str, kind: str, stage: Path, message: str) -> Pushed:
        repo, mask = self.repo_dir(repo_id, kind), _umask()
        files = {}
        for path in sorted(stage.rglob("*")):
            if path.is_symlink():  # a revision holds its own bytes: a link could change under it
                raise HubError(f"{repo_id}: cannot push the symlink {path.relative_to(stage)}; copy its target in")
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)  # as if created here, whatever the source's mode
            if path.is_file() and path.name != MANIFEST:
                files[path.relative_to(stage).as_posix()] = sha256_file(path)
        rev = content_id(files)
        parent = (repo / "refs" / "main").read_text().strip() if (repo / "refs" / "main").is_file() else None
        final = repo / "revisions" / rev
        created = not final.is_dir()
        if created:
            manifest = {"files": files, "created": time.time(), "message": message, "parent": parent}
            (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            _fault("manifest")
            final.parent.mkdir(exist_ok=True)
            stage.rename(final)
            _fault("renamed")
        else:  # identical content is stored already: reuse it, if it is still intact
            try:
                self.resolve(repo_id, rev, kind)
            except IntegrityError as e:
                raise IntegrityError(f"{e}; this push has the same content: remove {final} and push again") from None
        if parent != rev:
            (repo / "refs").mkdir(exist_ok=True)
            tmp = repo / STAGING / "main.tmp"
            tmp.write_text(rev + "\n")
            os.replace(tmp, repo / "refs" / "main")
        return Pushed(rev, repo_id, created, parent)

    @contextmanager
    def _locked(self, repo_id: str, repo: Path, timeout: float | None = None) -> Iterator[None]:
        from filelock import FileLock, Timeout

        repo.mkdir(parents=True, exist_ok=True)
        lock = FileLock(repo / LOCK)
        timeout = self.lock_timeout if timeout is None else timeout
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if timeout <= 0:
                    raise
                log.info("waiting for another push to %s to finish (lock %s)", repo_id, repo / LOCK)
                lock.acquire(timeout=timeout)
        except Timeout:
            raise HubBusy(f"{repo_id}: another push has held {repo / LOCK} for over {timeout:.0f} s; try again "
                           "when it has finished (the lock of a killed push is released at once)") from None
        try:
            yield
        finally:
            lock.release()

    def _reclaim(self, repo: Path) -> tuple[int, int]:
        """Remove what killed pushes left (call under the lock): staging folders, and the ``.push-*``
        folders and ``refs/.main.*.tmp`` files of pushes before staging existed. Returns (items, bytes)."""
        debris = [*(repo / STAGING).glob("*"), *(repo / "revisions").glob(".push-*"), *(repo / "refs").glob(".main.*.tmp")]
        size = sum(_size(p) for p in debris)
        for path in debris:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if debris:
            log.info("%s: reclaimed %d item(s), %d bytes, left by killed pushes", repo, len(debris), size)
        return len(debris), size

    def gc(self, repo_id: str | None = None, kind: str | None = None) -> dict[str, tuple[int, int] | None]:
        """Reclaim what killed pushes left in ``repo_id`` (default: every repo): {repo: (items, bytes)},
        None for a repo skipped because a push to it is in progress."""
        kinds = [kind] if kind else ["model", "dataset"]
        repos = []
        for k in kinds:
            if repo_id is not None:
                repos.append((f"{k}s/{repo_id}", repo_id, self.repo_dir(repo_id, k)))
            else:
                repos += [(f"{k}s/{d.parent.name}/{d.name}", f"{d.parent.name}/{d.name}", d)
                          for d in sorted((self.root / f"{k}s").glob("*/*")) if d.is_dir()]
        done = {}
        for label, rid, repo in repos:
            if not repo.is_dir():
                continue
            try:
                with self._locked(rid, repo, timeout=0):
                    done[label] = self._reclaim(repo)
            except HubBusy:
                done[label] = None
        return done

    def resolve(self, repo_id: str, revision: str | None = None, kind: str = "model", verify: bool = True) -> Revision:
        """The folder of ``revision`` (default ``main``; a revision id or an unambiguous prefix of one).

        The manifest must hash to the revision id (always), and with ``verify`` every file must match
        the manifest's sha256, with no file missing or added; otherwise `IntegrityError`."""
        rev = self.main(repo_id, kind) if revision in (None, "main") else revision
        base = self.repo_dir(repo_id, kind) / "revisions"
        matches = [d for d in base.iterdir() if d.name.startswith(rev) and not d.name.startswith(".")] \
            if base.is_dir() and rev else []
        if len(matches) != 1:
            known = ", ".join(self.revisions(repo_id, kind)) or "none"
            raise HubError(f"{repo_id}: no single revision matches {rev!r} (revisions: {known})")
        path = matches[0]
        what = f"{repo_id}@{path.name}"
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            files = manifest["files"]
            recorded = content_id(files)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what}: unreadable manifest ({type(e).__name__}: {e}); refusing to load it") from None
        if recorded != path.name:
            raise IntegrityError(f"{what}: its manifest hashes to {recorded}, not to the revision id (the manifest "
                                 "was rewritten: tampered or corrupted); refusing to load it")
        if verify:
            verify_folder(path, files, what)
        return Revision(repo_id, path.name, path, manifest)


@dataclass
class RepoSummary:
    """A model repo of the local hub as `zoo list` shows it: its ``main``, when that was pushed, how many
    revisions it has, and the recipe and base its ``recipe.yaml`` / card name (None when they do not)."""

    repo_id: str
    revision: str
    created: float | None
    revisions: int
    recipe: str | None
    base: str | None


def repo_summary(hub: LocalHub, repo_id: str) -> RepoSummary:
    """`RepoSummary` of ``repo_id`` read from its ``main`` (files are not re-hashed: `resolve` does that
    when the model is loaded)."""
    import yaml

    rev = hub.resolve(repo_id, verify=False)
    created = rev.manifest.get("created")
    recipe_file, card = rev.path / "recipe.yaml", rev.path / "README.md"
    recipe = (yaml.safe_load(recipe_file.read_text()) or {}) if recipe_file.is_file() else {}
    base = None
    if card.is_file():
        from huggingface_hub import metadata_load

        base = (metadata_load(card) or {}).get("base_model")
    if recipe:
        from zoo.cards import recipe_lineage

        lineage = recipe_lineage(recipe, partial(locate_model, hub=hub, by_content=False))
        if lineage.kind != "unrecorded" and not (lineage.kind == "folder" and base):
            base = lineage.short()  # with its revision; a folder only when the card names no hub base
    if isinstance(base, list):
        base = ", ".join(map(str, base))
    return RepoSummary(repo_id, rev.revision, float(created) if isinstance(created, (int, float)) else None,
                       len(hub.revisions(repo_id)), recipe.get("recipe_name"), base)


# ---------------------------------------------------------------- pushing runs


def stage_run(run_dir: str | Path, repo_id: str, dest: str | Path, card: bool = True, hub: LocalHub | None = None,
              **card_kwargs) -> Path:
    """Lay a training run out as a hub repo in ``dest``: its ``model/`` files plus ``recipe.yaml``,
    ``results.json``, ``controls/*.json`` (results of its control rows) and ``.eval_results/`` when present, and a model card (``README.md``, rendered from
    ``model_cards/`` unless the run has its own). ``dest`` may exist already (empty).

    ``card_kwargs`` go to `zoo.cards.render_card` (``base_model``, ``license``, ``datasets`` …); a zoo
    entry's base (`zoo.entries.card_defaults`) is used only when neither they nor the recipe name one, and
    the base ``model.path`` of the recipe is looked up in ``hub`` (default: the user's local hub)."""
    run_dir, stage = Path(run_dir), Path(dest)
    model = run_dir / "model"
    if not (model / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} holds no model/ folder to push")
    readme = None
    if card and not (run_dir / "README.md").is_file():  # render first: a bad card option fails before any copy
        from zoo.cards import render_card
        from zoo.entries import card_defaults

        defaults = card_defaults(repo_id)
        defaults["fallback_base_model"] = defaults.pop("base_model", None)
        if "modalities" not in defaults:
            defaults["modalities"] = model_modalities(json.loads((model / "config.json").read_text()))
        hub = hub or LocalHub()
        readme = render_card(run_dir, repo_id, locate=partial(locate_model, hub=hub), **{**defaults, **card_kwargs})
    shutil.copytree(model, stage, dirs_exist_ok=True)
    for extra in ("recipe.yaml", "results.json", "README.md"):
        if (run_dir / extra).is_file():
            shutil.copy2(run_dir / extra, stage / extra)
    if (run_dir / "controls").is_dir():  # the control rows' results, shown beside the run's in its card
        (stage / "controls").mkdir(exist_ok=True)
        for control in sorted((run_dir / "controls").glob("*.json")):
            shutil.copy2(control, stage / "controls" / control.name)
    if (run_dir / ".eval_results").is_dir():
        shutil.copytree(run_dir / ".eval_results", stage / ".eval_results")
    elif (run_dir / "results.json").is_file():
        from zoo.cards import write_eval_results

        write_eval_results(json.loads((run_dir / "results.json").read_text()), stage)
    if readme is not None:
        (stage / "README.md").write_text(readme)
    return stage


def model_modalities(config: dict) -> tuple[str, ...] | None:
    """The input modalities of a saved model, from its ``config.json``: a composed model's ``modalities``,
    an HF-native model's family (`zoo.models.families`); None when the family is unknown."""
    if config.get("model_type") == "zoo_composed":
        return tuple(config.get("modalities") or ()) or None
    from zoo.models.families import family_for

    try:
        return family_for(str(config.get("model_type"))).media
    except ValueError:
        return None


def locate_model(path: str, hub: LocalHub, by_content: bool = True):
    """What the local hub knows of a recipe's ``model.path`` (a `zoo.cards.Lineage`), or None: a revision
    folder of ``hub`` is that repo at that revision; with ``by_content`` (hashing the folder's files: a
    push does, a listing does not), another model folder is the first repo (in name order; its earliest
    such revision) with a revision that holds every file of the folder with the same sha256 — a pushed run's
    revision adds its card, recipe and results to the model's files — else a folder in no hub, with the
    revision id its files would get."""
    from zoo.cards import Lineage

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        return None
    try:
        relative = folder.resolve().relative_to((hub.root / "models").resolve())
    except ValueError:
        relative = None
    if relative is not None and len(relative.parts) == 4 and relative.parts[2] == "revisions":
        return Lineage("hub", "/".join(relative.parts[:2]), relative.parts[3], "local hub", path)
    if not by_content:
        return None
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _files(folder)}
    holders = []  # (repo, pushed at, revision) of the revisions holding every file of the folder
    for manifest in (hub.root / "models").glob(f"*/*/revisions/*/{MANIFEST}"):
        try:
            recorded = json.loads(manifest.read_text())
            if files.items() <= recorded["files"].items():
                repo = manifest.parents[2].relative_to(hub.root / "models").as_posix()
                holders.append((repo, float(recorded["created"]), manifest.parent.name))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged manifest names nothing
    if holders:
        repo, _, rev = min(holders)
        return Lineage("hub", repo, rev, "local hub", path)
    rev = content_id(files)
    return Lineage("folder", revision=rev, path=path)


def push_run(run_dir: str | Path, repo_id: str, hub: LocalHub | None = None, message: str = "",
             card: bool = True, **card_kwargs) -> Pushed:
    """Push a training run (laid out by `stage_run` straight into the hub's staging) to the local hub;
    returns the revision (`Pushed`: new, or the stored one with identical content)."""
    hub = hub or LocalHub()
    return hub.push_with(lambda stage: stage_run(run_dir, repo_id, stage, card, hub, **card_kwargs), repo_id,
                         message=message or f"push {run_dir}")


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
