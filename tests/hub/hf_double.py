"""An in-process HTTP test double of the Hugging Face Hub, for `huggingface_hub`'s real client (`HfApi`).

It speaks the subset of the Hub HTTP API that huggingface_hub 2.4 uses to create repos, upload folders and
download them back, over real HTTP on 127.0.0.1 (a server thread on a free port):

- ``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``GET /api/whoami-v2``, ``POST /api/validate-yaml``;
- ``GET /api/{models,datasets,spaces}/{repo}[/revision/{rev}]`` (repo info, ``?blobs=true`` adds sizes/LFS);
- ``GET .../tree/{rev}[/{path}]``, ``POST .../paths-info/{rev}``, ``GET .../refs``, ``GET .../commits/{rev}``;
- ``POST .../preupload/{rev}`` (regular vs LFS upload mode, remote oid of unchanged files);
- ``POST /[datasets/]{repo}.git/info/lfs/objects/batch`` and ``.../verify`` (git-lfs batch API, "basic" transfer);
  the upload ``href`` is a signed ``PUT {endpoint}/lfs-upload/{id}`` that, like S3, needs no Authorization;
- ``POST .../commit/{rev}`` (NDJSON: ``header`` / ``file`` / ``lfsFile`` / ``deletedFile`` / ``deletedFolder``;
  ``?create_pr=1`` opens ``refs/pr/N``), each commit gets a fresh 40-hex sha and moves the branch;
- ``GET|HEAD /[datasets/]{repo}/resolve/{rev}/{path}``: regular files are served directly (``ETag`` = git blob
  sha1, ``X-Repo-Commit``, ``Content-Length``); LFS files answer ``302`` to a second "CDN" server on another port
  with ``X-Linked-Etag`` (sha256), ``X-Linked-Size`` and ``X-Repo-Commit``, so the client drops the token for the
  blob download exactly as it does against huggingface.co. Byte ranges are honoured on both.

Writes need ``Authorization: Bearer <token>``: no header -> 401 (with ``X-Error-Code: RepoNotFound`` on repo
endpoints, which the client turns into `RepositoryNotFoundError`, as it does for the real Hub), a wrong token ->
401 "Invalid credentials in Authorization header" on any endpoint. Reads may be anonymous (not on private repos).
Xet is not implemented: ``xet-*-token`` routes answer 501 and the LFS batch always picks the "basic" transfer;
run the client with ``HF_HUB_DISABLE_XET=1`` (the `hf_hub_double` fixture does).

Use the `hf_hub_double` fixture (or `HubDouble` + `use_hub_double`) so that a bare `HfApi()`, `snapshot_download`,
`hf_hub_download`… talk to the double: huggingface_hub reads its endpoint, offline flag, cache paths and Xet switch
into module constants at import time, so setting environment variables alone is not enough.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Patterns of the Hub's default `.gitattributes` (files that always go through LFS, whatever their size).
DEFAULT_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
    " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors *.tar *.tflite *.tgz *.wasm *.xz"
    " *.zip *.zst *tfevents*"
).split()
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular (non-LFS) files above 10 MB


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob (what the Hub calls a regular file's `oid` and serves as its ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
        f"size {len(content)}\n"
    ).encode()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Headers(dict):
    """Request headers as recorded: a dict whose lookups ignore case (`h["Authorization"]` finds `authorization`)."""

    def __init__(self, items: Any = ()):
        super().__init__()
        for name, value in dict(items).items():
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


@dataclass
class RepoState:
    """One repo of the double: its commits (oldest first, each a full snapshot) and refs.

    `commits[i]` is a dict ``{"sha", "message", "description", "parent", "date", "files": {path: bytes},
    "lfs": set of paths stored through LFS}``. `commits[0]` is the empty initial commit `create_repo` makes
    (the real Hub's also adds a `.gitattributes`; the double does not, so a repo holds exactly what was pushed).
    """

    repo_id: str
    repo_type: str = "model"
    private: bool = False
    created_at: str = field(default_factory=_now_iso)
    commits: list[dict[str, Any]] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # "main" -> sha, "refs/pr/1" -> sha
    tags: dict[str, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 hex -> content, uploaded to this repo

    @property
    def head(self) -> dict[str, Any]:
        return self.commit(self.branches["main"])

    def commit(self, sha: str) -> dict[str, Any]:
        return next(c for c in self.commits if c["sha"] == sha)

    def resolve(self, revision: str) -> dict[str, Any] | None:
        """A branch, tag, `refs/heads/<branch>`, full sha or unique sha prefix (>= 7) -> commit, else None."""
        revision = revision.removeprefix("refs/heads/")
        if revision in self.branches:
            return self.commit(self.branches[revision])
        if revision.removeprefix("refs/tags/") in self.tags:
            return self.commit(self.tags[revision.removeprefix("refs/tags/")])
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [c for c in self.commits if c["sha"].startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None


class _HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.extra = extra or {}  # more fields of the JSON error body


class HubDouble:
    """In-process fake of the Hugging Face Hub HTTP API (see the module docstring). A context manager.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT`` of the Hub server (set once started).
        cdn_endpoint: ``http://127.0.0.1:PORT2``, where LFS downloads are redirected (signed URLs, no auth).
        repos: ``{"org/name" | "datasets/org/name" | "spaces/org/name": RepoState}``.
        requests: every request seen by either server, in order: ``{"server", "method", "path", "query",
            "headers", "body", "status"}`` (`headers`: all of them, Authorization included, names lower-cased and
            looked up case-insensitively; `body`: bytes).
        errors: tracebacks of bugs in the double itself (answered with status 520, which the client won't retry).
    """

    def __init__(
        self,
        token: str = "hf_test_token",
        *,
        username: str = "test-user",
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        lfs_patterns: tuple[str, ...] | list[str] = tuple(DEFAULT_LFS_PATTERNS),
        page_size: int = 1000,
    ):
        self.token = token
        self.username = username
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns = tuple(lfs_patterns)
        self.page_size = page_size  # tree / commits listings are paginated with a `Link: <...>; rel="next"` header
        self.repos: dict[str, RepoState] = {}
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.endpoint = ""
        self.cdn_endpoint = ""
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._blobs: dict[str, bytes] = {}  # sha256 -> content of every LFS object (what the CDN serves)
        self._pending_uploads: dict[str, tuple[str, str, int]] = {}  # upload id -> (repo key, sha256, size)
        self._counter = itertools.count()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # ----------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> HubDouble:
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.double = self  # type: ignore[attr-defined]
            server.role = role  # type: ignore[attr-defined]
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"hf-double-{role}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ test helpers
    @staticmethod
    def key(repo_id: str, repo_type: str | None = "model") -> str:
        return f"{URL_PREFIX[repo_type or 'model']}{repo_id}"

    def repo(self, repo_id: str, repo_type: str | None = "model") -> RepoState:
        return self.repos[self.key(repo_id, repo_type)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str | None = "model") -> dict[str, bytes]:
        """The files of `repo_id` at `revision` (branch, tag, sha or sha prefix): ``{path: content}``."""
        with self._lock:
            commit = self.repo(repo_id, repo_type).resolve(revision)
            if commit is None:
                raise KeyError(f"no revision {revision!r} in {repo_type} repo {repo_id}")
            return dict(commit["files"])

    def commit_shas(self, repo_id: str, repo_type: str | None = "model") -> list[str]:
        """Commit shas of a repo, oldest first (the first one is the empty commit `create_repo` made)."""
        return [c["sha"] for c in self.repo(repo_id, repo_type).commits]

    def token_leaks(self, token: str | None = None) -> list[str]:
        """Where `token` (default: the double's) shows up other than as ``Authorization: Bearer <token>``:
        request bodies, query strings, other headers, stored files or LFS objects. Empty list = no leak."""
        needle = (token or self.token).encode()
        leaks = []
        for i, req in enumerate(self.requests):
            where = f"request {i} {req['method']} {req['path']}"
            if needle in req["body"]:
                leaks.append(f"{where}: body")
            if needle in req["query"].encode():
                leaks.append(f"{where}: query")
            for name, value in req["headers"].items():
                if needle in value.encode() and name.lower() != "authorization":
                    leaks.append(f"{where}: header {name}")
        for key, repo in self.repos.items():
            for commit in repo.commits:
                leaks += [f"{key}@{commit['sha']}: {p}" for p, b in commit["files"].items() if needle in b]
                if needle in (commit["message"] + commit["description"]).encode():
                    leaks.append(f"{key}@{commit['sha']}: commit message")
        leaks += [f"LFS object {oid}" for oid, b in self._blobs.items() if needle in b]
        return leaks

    def requests_to(self, pattern: str, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests whose path matches the regex `pattern` (and `method`, if given)."""
        return [r for r in self.requests if re.search(pattern, r["path"]) and method in (None, r["method"])]

    # ---------------------------------------------------------------------------------------- state helpers
    def is_lfs(self, path: str, size: int, sample: bytes = b"") -> bool:
        """Upload mode the Hub would pick: LFS for `.gitattributes` patterns, big files and binary content."""
        name = path.rsplit("/", 1)[-1]
        return (
            size >= self.lfs_threshold
            or any(fnmatch.fnmatch(name, pattern) for pattern in self.lfs_patterns)
            or b"\x00" in sample
        )

    def _new_commit(
        self, repo: RepoState, parent: dict | None, files: dict[str, bytes], lfs: set[str], message: str, description: str
    ) -> dict[str, Any]:
        tree = hashlib.sha1()
        for path in sorted(files):
            blob = lfs_pointer(files[path]) if path in lfs else files[path]
            tree.update(f"{path}\0{git_blob_sha1(blob)}\n".encode())
        payload = (
            f"tree {tree.hexdigest()}\nparent {parent['sha'] if parent else ''}\nrepo {self.key(repo.repo_id, repo.repo_type)}\n"
            f"n {next(self._counter)} {time.time_ns()}\n\n{message}\n\n{description}"
        )
        commit = {
            "sha": hashlib.sha1(payload.encode()).hexdigest(),
            "message": message,
            "description": description,
            "parent": parent["sha"] if parent else None,
            "date": _now_iso(),
            "files": files,
            "lfs": lfs,
        }
        repo.commits.append(commit)
        return commit

    @staticmethod
    def commit_at(repo: RepoState, branch: str) -> dict[str, Any]:
        return repo.commit(repo.branches[branch])

    def _file_entry(self, commit: dict[str, Any], path: str) -> dict[str, Any]:
        content = commit["files"][path]
        if path in commit["lfs"]:
            pointer = lfs_pointer(content)
            entry = {"type": "file", "oid": git_blob_sha1(pointer), "size": len(content), "path": path}
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": len(pointer)}
        else:
            entry = {"type": "file", "oid": git_blob_sha1(content), "size": len(content), "path": path}
        return entry

    def _folder_entry(self, commit: dict[str, Any], folder: str) -> dict[str, Any]:
        inside = sorted(p for p in commit["files"] if p.startswith(folder + "/"))
        oid = hashlib.sha1("\n".join(f"{p}:{git_blob_sha1(commit['files'][p])}" for p in inside).encode()).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": folder}

    def _signed(self, kind: str, value: str) -> str:
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


# ================================================================================================ HTTP handler
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubDouble/1.0"

    # Silence the default stderr access log.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    @property
    def double(self) -> HubDouble:
        return self.server.double  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # ------------------------------------------------------------------------------------------- plumbing
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.segments = [unquote(s) for s in split.path.split("/")[1:]]
        self.body = self._read_body()
        record = {
            "server": self.server.role,  # type: ignore[attr-defined]
            "method": self.command,
            "path": unquote(split.path),
            "query": split.query,
            "headers": Headers(self.headers.items()),
            "body": self.body,
            "status": None,
        }
        with self.double._lock:
            self.double.requests.append(record)
        try:
            status, headers, body = self._route()
        except _HubError as err:
            status, headers = err.status, {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            body = {"error": err.message, **err.extra}
        except Exception:  # a bug in the double: say so loudly, with a status the client does not retry
            tb = traceback.format_exc()
            self.double.errors.append(tb)
            status, headers, body = 520, {"X-Error-Message": "HubDouble internal error"}, {"error": tb}
        record["status"] = status
        self._send(status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            payload = body or b""
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(payload)))
        headers.setdefault("X-Request-Id", self.headers.get("X-Amzn-Trace-Id") or secrets.token_hex(8))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.close_connection = True

    def _json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as err:
            raise _HubError(400, f"Invalid JSON body: {err}") from err

    def _page(self, items: list[Any]) -> tuple[int, dict[str, str], Any]:
        """One page of `items` from `?cursor=`, with a GitHub-style `Link` header to the next one (as the Hub)."""
        try:
            start = int(self.query.get("cursor", ["0"])[0])
        except ValueError as err:
            raise _HubError(400, "Invalid cursor") from err
        end = start + self.double.page_size
        headers = {}
        if end < len(items):
            query = {k: v[-1] for k, v in self.query.items()}
            query["cursor"] = str(end)
            path = urlsplit(self.path).path
            headers["Link"] = f'<{self.double.endpoint}{path}?{urlencode(query)}>; rel="next"'
        return 200, headers, items[start:end]

    # ----------------------------------------------------------------------------------------------- auth
    def _auth(self, *, required: bool, repo_scoped: bool = False) -> bool:
        """True if the request carries the double's token. A wrong token is always a 401, a missing one only
        when `required` (with `RepoNotFound` on repo endpoints: the Hub does not tell whether the repo exists)."""
        header = self.headers.get("Authorization")
        if header is not None:
            if header != f"Bearer {self.double.token}":
                raise _HubError(401, "Invalid credentials in Authorization header")
            return True
        if required:
            if repo_scoped:
                raise _HubError(401, "Invalid username or password.", code="RepoNotFound")
            raise _HubError(401, "You must be authenticated to access this resource (Invalid username or password.)")
        return False

    def _get_repo(self, repo_type: str, repo_id: str, *, authed: bool) -> RepoState:
        repo = self.double.repos.get(HubDouble.key(repo_id, repo_type))
        if repo is None:
            raise _HubError(404, "Repository not found", code="RepoNotFound")
        if repo.private and not authed:
            raise _HubError(401, "Invalid username or password.", code="RepoNotFound")
        return repo

    @staticmethod
    def _get_commit(repo: RepoState, revision: str) -> dict[str, Any]:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    # --------------------------------------------------------------------------------------------- routing
    def _route(self) -> tuple[int, dict[str, str], Any]:
        seg, method = self.segments, self.command
        if self.server.role == "cdn":  # type: ignore[attr-defined]
            if method in ("GET", "HEAD") and len(seg) == 2 and seg[0] == "lfs":
                return self._cdn_get(seg[1])
            raise _HubError(404, "Not found")
        if seg[:1] == ["api"]:
            return self._route_api(seg[1:], method)
        if method == "PUT" and len(seg) == 2 and seg[0] == "lfs-upload":
            return self._lfs_put(seg[1])
        # /[datasets/|spaces/]{ns}/{name}.git/info/lfs/objects/{batch,verify}  and  .../{name}/resolve/{rev}/{path}
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"] and method == "POST":
            repo_id = f"{seg[0]}/{seg[1][: -len('.git')]}"
            if seg[5] == "batch":
                return self._lfs_batch(repo_type, repo_id)
            if seg[5] == "verify":
                return self._lfs_verify(repo_type, repo_id)
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise _HubError(501, f"HubDouble does not implement {method} {self.path}")

    def _route_api(self, seg: list[str], method: str) -> tuple[int, dict[str, str], Any]:
        if seg == ["whoami-v2"] and method == "GET":
            self._auth(required=True)
            name = self.double.username
            return 200, {}, {
                "type": "user", "id": "0" * 24, "name": name, "fullname": name, "email": None, "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "hub-double", "role": "write"}},
            }  # fmt: skip
        if seg == ["agent-harnesses"] and method == "GET":
            return 200, {}, {"standardEnvVars": [], "harnesses": {}}
        if seg[:1] == ["telemetry"]:
            return 200, {}, {}
        if seg == ["validate-yaml"] and method == "POST":
            self._auth(required=False)
            return 200, {}, {"errors": [], "warnings": []}
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if seg == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if len(seg) >= 3 and seg[0] in REPO_TYPES:
            repo_type, repo_id, rest = REPO_TYPES[seg[0]], f"{seg[1]}/{seg[2]}", seg[3:]
            action = rest[0] if rest else None
            if action is None and method == "GET":
                return self._repo_info(repo_type, repo_id, "main")
            if action == "revision" and len(rest) == 2 and method == "GET":
                return self._repo_info(repo_type, repo_id, rest[1])
            if action == "tree" and len(rest) >= 2 and method == "GET":
                return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
            if action == "paths-info" and len(rest) == 2 and method == "POST":
                return self._paths_info(repo_type, repo_id, rest[1])
            if action == "refs" and len(rest) == 1 and method == "GET":
                return self._refs(repo_type, repo_id)
            if action == "commits" and len(rest) == 2 and method == "GET":
                return self._commits(repo_type, repo_id, rest[1])
            if action == "preupload" and len(rest) == 2 and method == "POST":
                return self._preupload(repo_type, repo_id, rest[1])
            if action == "commit" and len(rest) == 2 and method == "POST":
                return self._commit(repo_type, repo_id, rest[1])
            if action in ("xet-read-token", "xet-write-token"):
                raise _HubError(501, "HubDouble does not implement Xet storage: set HF_HUB_DISABLE_XET=1")
        raise _HubError(501, f"HubDouble does not implement {method} {self.path}")

    # ---------------------------------------------------------------------------------------------- repos
    def _create_repo(self) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True)
        payload = self._json() or {}
        name, organization = payload.get("name"), payload.get("organization") or self.double.username
        repo_type = payload.get("type") or "model"
        if not name or not re.fullmatch(r"[\w.\-]+", name) or not re.fullmatch(r"[\w.\-]+", organization):
            raise _HubError(400, f"Invalid repo name: {organization}/{name}")
        if repo_type not in URL_PREFIX:
            raise _HubError(400, f"Invalid repo type: {repo_type}")
        repo_id = f"{organization}/{name}"
        key = HubDouble.key(repo_id, repo_type)
        url = f"{self.double.endpoint}/{key}"
        with self.double._lock:
            if key in self.double.repos:
                # `create_repo(exist_ok=True)` reads the repo url from the body of this 409, like the Hub sends it.
                raise _HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = RepoState(repo_id=repo_id, repo_type=repo_type, private=private)
            initial = self.double._new_commit(repo, None, {}, set(), "initial commit", "")
            repo.branches["main"] = initial["sha"]
            self.double.repos[key] = repo
        return 200, {}, {"url": url, "name": repo_id, "id": secrets.token_hex(12)}

    def _delete_repo(self) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True)
        payload = self._json() or {}
        repo_id = f"{payload.get('organization') or self.double.username}/{payload.get('name')}"
        key = HubDouble.key(repo_id, payload.get("type") or "model")
        with self.double._lock:
            if self.double.repos.pop(key, None) is None:
                raise _HubError(404, "Repository not found", code="RepoNotFound")
        return 200, {}, {}

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=authed)
            commit = self._get_commit(repo, revision)
            blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
            siblings = []
            for path in sorted(commit["files"]):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    entry = self.double._file_entry(commit, path)
                    sibling.update(size=entry["size"], blobId=entry["oid"])
                    if "lfs" in entry:
                        lfs = entry["lfs"]
                        sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit["sha"],
                "lastModified": commit["date"],
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
            if repo_type == "model":
                info["modelId"] = repo_id
            return 200, {}, info

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=authed)
            commit = self._get_commit(repo, revision)
            prefix = f"{path.strip('/')}/" if path.strip("/") else ""
            files = sorted(p for p in commit["files"] if p.startswith(prefix))
            if prefix and not files:
                raise _HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": commit["sha"]})
            entries: dict[str, dict[str, Any]] = {}
            for file in files:
                parts = file[len(prefix) :].split("/")
                for depth in range(1, len(parts)):  # folders on the way
                    if depth > 1 and not recursive:
                        break
                    folder = prefix + "/".join(parts[:depth])
                    entries.setdefault(folder, self.double._folder_entry(commit, folder))
                if recursive or len(parts) == 1:
                    entries[file] = self.double._file_entry(commit, file)
            return self._page([entries[k] for k in sorted(entries)])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        form = parse_qs(self.body.decode(), keep_blank_values=True)
        paths = form.get("paths", [])
        with self.double._lock:
            commit = self._get_commit(self._get_repo(repo_type, repo_id, authed=authed), revision)
            out = []
            for path in paths:
                path = path.strip("/")
                if path in commit["files"]:
                    out.append(self.double._file_entry(commit, path))
                elif any(p.startswith(path + "/") for p in commit["files"]):
                    out.append(self.double._folder_entry(commit, path))
            return 200, {}, out

    def _refs(self, repo_type: str, repo_id: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=authed)
            branches = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                for n, s in repo.branches.items()
                if not n.startswith("refs/pr/")
            ]
            prs = [{"name": n, "ref": n, "targetCommit": s} for n, s in repo.branches.items() if n.startswith("refs/pr/")]
            tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()]
            body: dict[str, Any] = {"branches": branches, "tags": tags, "converts": []}
            if self.query.get("include_prs"):
                body["pullRequests"] = prs
            return 200, {}, body

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=authed)
            commit: dict | None = self._get_commit(repo, revision)
            history = []
            while commit is not None:
                history.append(
                    {
                        "id": commit["sha"],
                        "title": commit["message"],
                        "message": commit["description"],
                        "authors": [{"user": self.double.username}],
                        "date": commit["date"],
                    }
                )
                commit = repo.commit(commit["parent"]) if commit["parent"] else None
            return self._page(history)

    # --------------------------------------------------------------------------------------------- upload
    def _writable_branch(self, repo: RepoState, revision: str) -> str:
        branch = revision.removeprefix("refs/heads/")
        if branch not in repo.branches:
            if repo.resolve(branch) is not None:
                raise _HubError(400, f"Invalid rev id: {revision} is not a branch")
            raise _HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return branch

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True, repo_scoped=True)
        payload = self._json() or {}
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=True)
            create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true")
            commit = repo.head if create_pr else self.double.commit_at(repo, self._writable_branch(repo, revision))
            out = []
            for file in payload.get("files", []):
                path, size = file["path"], int(file["size"])
                sample = base64.b64decode(file.get("sample") or "")
                mode = "lfs" if self.double.is_lfs(path, size, sample) else "regular"
                oid = None
                if path in commit["files"]:
                    content = commit["files"][path]
                    oid = hashlib.sha256(content).hexdigest() if mode == "lfs" else git_blob_sha1(content)
                out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return 200, {}, {"files": out, "commitOid": commit["sha"]}

    def _lfs_batch(self, repo_type: str, repo_id: str) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True)
        payload = self._json() or {}
        headers = {"Content-Type": "application/vnd.git-lfs+json"}
        if payload.get("operation") != "upload":
            raise _HubError(400, "HubDouble only implements the LFS 'upload' operation")
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=True)
            if (ref := (payload.get("ref") or {}).get("name")) is not None:
                self._writable_branch(repo, ref)
            key = HubDouble.key(repo_id, repo_type)
            objects = []
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], int(obj["size"])
                if not re.fullmatch(r"[0-9a-f]{64}", oid):
                    objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
                elif oid in repo.lfs_objects:  # already there: no action, the client skips the upload
                    objects.append({"oid": oid, "size": size, "authenticated": True})
                else:
                    upload_id = secrets.token_urlsafe(24)
                    self.double._pending_uploads[upload_id] = (key, oid, size)
                    prefix = URL_PREFIX[repo_type]
                    verify = f"{self.double.endpoint}/{prefix}{repo_id}.git/info/lfs/objects/verify"
                    objects.append(
                        {
                            "oid": oid,
                            "size": size,
                            "authenticated": True,
                            "actions": {
                                "upload": {"href": f"{self.double.endpoint}/lfs-upload/{upload_id}", "header": {}},
                                "verify": {"href": verify, "header": {}},
                            },
                        }
                    )
        # Whatever transfers the client offers (it may list "xet"), answer "basic": classic single-PUT LFS.
        return 200, headers, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, upload_id: str) -> tuple[int, dict[str, str], Any]:
        with self.double._lock:
            pending = self.double._pending_uploads.get(upload_id)
            if pending is None:
                raise _HubError(403, "Invalid or expired upload URL")
            key, oid, size = pending
            if len(self.body) != size or hashlib.sha256(self.body).hexdigest() != oid:
                raise _HubError(400, f"Uploaded content does not match oid {oid} / size {size}")
            del self.double._pending_uploads[upload_id]
            repo = self.double.repos.get(key)
            if repo is None:
                raise _HubError(404, "Repository not found", code="RepoNotFound")
            repo.lfs_objects[oid] = self.body
            self.double._blobs[oid] = self.body
        return 200, {"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'}, b""

    def _lfs_verify(self, repo_type: str, repo_id: str) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True)
        payload = self._json() or {}
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=True)
            content = repo.lfs_objects.get(payload.get("oid", ""))
            if content is None or len(content) != payload.get("size"):
                raise _HubError(404, f"LFS object {payload.get('oid')} not found")
        return 200, {}, {"success": True}

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> tuple[int, dict[str, str], Any]:
        self._auth(required=True, repo_scoped=True)
        try:
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _HubError(400, f"Invalid NDJSON commit payload: {err}") from err
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "The first line of the commit payload must be the header")
        header = lines[0]["value"]
        message, description = header.get("summary") or "", header.get("description") or ""
        if not message:
            raise _HubError(400, "Commit summary can't be empty")
        create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true")
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=True)
            branch = self._writable_branch(repo, revision)
            parent = self.double.commit_at(repo, branch)
            if (expected := header.get("parentCommit")) is not None and not parent["sha"].startswith(expected):
                raise _HubError(412, "A commit has happened since. Please refresh and try again.")
            files, lfs = dict(parent["files"]), set(parent["lfs"])
            for line in lines[1:]:
                kind, value = line.get("key"), line.get("value") or {}
                path = str(value.get("path", "")).strip("/")
                if not path or ".." in path.split("/"):
                    raise _HubError(400, f"Invalid path {path!r}")
                if kind == "file":
                    if value.get("encoding") != "base64":
                        raise _HubError(400, "Only base64-encoded regular files are supported")
                    content = base64.b64decode(value["content"])
                    if content and self.double.is_lfs(path, len(content), content[:512]):
                        raise _HubError(400, f"'{path}' must be uploaded with LFS (binary, large or LFS-tracked file)")
                    files[path] = content
                    lfs.discard(path)
                elif kind == "lfsFile":
                    oid = value.get("oid", "")
                    content = repo.lfs_objects.get(oid)
                    if value.get("algo", "sha256") != "sha256" or content is None:
                        raise _HubError(400, f"LFS object {oid} for '{path}' was not uploaded to this repo")
                    if value.get("size") is not None and int(value["size"]) != len(content):
                        raise _HubError(400, f"Size mismatch for LFS file '{path}'")
                    files[path] = content
                    lfs.add(path)
                elif kind == "deletedFile":
                    if path not in files:
                        raise _HubError(404, "A file with this name doesn't exist", code="EntryNotFound")
                    del files[path]
                    lfs.discard(path)
                elif kind == "deletedFolder":
                    for p in [p for p in files if p.startswith(path + "/")]:
                        del files[p]
                        lfs.discard(p)
                else:
                    raise _HubError(400, f"Unsupported commit operation {kind!r}")
            commit = self.double._new_commit(repo, parent, files, lfs, message, description)
            prefix = f"{self.double.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
            pr_url = None
            if create_pr:
                number = 1 + sum(1 for n in repo.branches if n.startswith("refs/pr/"))
                repo.branches[f"refs/pr/{number}"] = commit["sha"]
                pr_url = f"{prefix}/discussions/{number}"
            else:
                repo.branches[branch] = commit["sha"]
        return 200, {}, {
            "success": True,
            "commitOid": commit["sha"],
            "commitUrl": f"{prefix}/commit/{commit['sha']}",
            "pullRequestUrl": pr_url,
        }

    # ------------------------------------------------------------------------------------------- download
    def _range(self, content: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        headers["Accept-Ranges"] = "bytes"
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not match or not (match[1] or match[2]):
            return 200, content
        if match[1]:
            start, end = int(match[1]), int(match[2]) if match[2] else len(content) - 1
        else:  # suffix range: the last N bytes
            start, end = max(len(content) - int(match[2]), 0), len(content) - 1
        if start >= len(content) or end < start:
            headers["Content-Range"] = f"bytes */{len(content)}"
            return 416, b""
        end = min(end, len(content) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        return 206, content[start : end + 1]

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> tuple[int, dict[str, str], Any]:
        authed = self._auth(required=False)
        with self.double._lock:
            repo = self._get_repo(repo_type, repo_id, authed=authed)
            commit = self._get_commit(repo, revision)
            headers = {"X-Repo-Commit": commit["sha"]}
            if path not in commit["files"]:
                raise _HubError(404, "Entry not found", code="EntryNotFound", headers=headers)
            content = commit["files"][path]
            entry = self.double._file_entry(commit, path)
        headers["ETag"] = f'"{entry["oid"]}"'
        if "lfs" in entry:  # like the Hub: redirect to the (signed) CDN url, file metadata on the redirect itself
            sha256 = entry["lfs"]["oid"]
            headers["X-Linked-Etag"] = f'"{sha256}"'
            headers["X-Linked-Size"] = str(len(content))
            headers["Location"] = f"{self.double.cdn_endpoint}/lfs/{sha256}?sig={self.double._signed('cdn', sha256)}"
            return 302, headers, b""
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"
        status, body = self._range(content, headers)
        return status, headers, body

    def _cdn_get(self, sha256: str) -> tuple[int, dict[str, str], Any]:
        if not hmac.compare_digest(self.query.get("sig", [""])[0], self.double._signed("cdn", sha256)):
            raise _HubError(403, "AccessDenied: bad signature")
        content = self.double._blobs.get(sha256)
        if content is None:
            raise _HubError(404, "NoSuchKey")
        headers = {"ETag": f'"{sha256}"', "Content-Type": "application/octet-stream"}
        status, body = self._range(content, headers)
        return status, headers, body


# ===================================================================================== pointing the client to it
def use_hub_double(monkeypatch: pytest.MonkeyPatch, hub: HubDouble, hf_home: str | os.PathLike) -> None:
    """Point huggingface_hub (env *and* its import-time constants) at `hub`, with a private HF_HOME.

    Env: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=0, HF_HUB_DISABLE_XET=1, HF_HUB_DISABLE_TELEMETRY=1, HF_HOME and
    the cache paths; HF_OIDC_RESOURCE / HUGGING_FACE_HUB_TOKEN / TRANSFORMERS_OFFLINE / HF_HUB_DISABLE_IMPLICIT_TOKEN /
    HUGGINGFACE_CO_STAGING removed. `huggingface_hub.constants` computes ENDPOINT, the resolve-URL template, the
    offline/Xet/telemetry flags and every HF_HOME-derived path once, at import, so those are patched too, as are
    the values other modules captured at import (the Hub origins the HTTP layer forwards auth to, the cache paths
    `from ..constants import`ed by the cache helpers, and the endpoint of the module-level `HfApi` instance behind
    `huggingface_hub.create_repo`, `upload_folder`…). Everything is undone by `monkeypatch` at teardown.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    home = Path(hf_home)
    hub_cache, assets, xet = home / "hub", home / "assets", home / "xet"
    for path in (hub_cache, assets):
        path.mkdir(parents=True, exist_ok=True)

    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_TOKEN": hub.token,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (
        "HF_OIDC_RESOURCE",
        "HUGGING_FACE_HUB_TOKEN",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
        "HUGGINGFACE_CO_STAGING",
        "HF_TOKEN_PATH",
        "HUGGINGFACE_HUB_CACHE",
        "HUGGINGFACE_ASSETS_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):  # in case a proxy is configured: never route 127.0.0.1 through it
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost"])))

    token_path = home / "token"
    patched = {
        "ENDPOINT": hub.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HOME": str(home),
        "default_cache_path": str(hub_cache),
        "default_assets_cache_path": str(assets),
        "default_xet_cache_path": str(xet),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_ASSETS_CACHE": str(assets),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(assets),
        "HF_XET_CACHE": str(xet),
        "HF_TOKEN_PATH": str(token_path),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(home / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(home / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value, raising=name in _REQUIRED_CONSTANTS)

    # Values other modules copied at import time.
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(hub.endpoint)})
    monkeypatch.setattr(hf_api.api, "endpoint", hub.endpoint)
    from huggingface_hub.utils import _cache_assets, _cache_manager

    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(hub_cache), raising=False)
    monkeypatch.setattr(_cache_assets, "HF_ASSETS_CACHE", str(assets), raising=False)

    # The shared HTTP client is created once per process; start (and end) with a fresh one built under this env.
    _http.close_session()


_REQUIRED_CONSTANTS = {
    "ENDPOINT",
    "HUGGINGFACE_CO_URL_TEMPLATE",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_XET",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_TOKEN_PATH",
}


@pytest.fixture
def hf_hub_double(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A running `HubDouble` that a bare `HfApi()` / `snapshot_download` / `hf_hub_download` talk to, with
    `HF_TOKEN` = `hub.token` and a private HF_HOME under `tmp_path` (see `use_hub_double`)."""
    from huggingface_hub.utils import _http

    with HubDouble() as hub:
        use_hub_double(monkeypatch, hub, tmp_path / "hf_home")
        try:
            yield hub
        finally:
            _http.close_session()  # drop connections to this server; the next user gets a fresh client
