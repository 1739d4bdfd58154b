"""The Hub test double against huggingface_hub's real client: create, upload (regular + LFS), revisions, download."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from safetensors.torch import save_file

from tests.hub.hf_double import HubDouble, hf_hub_double  # noqa: F401  (fixture)

REPO = "test-org/tiny-model"
# huggingface_hub 2.4's LFS upload calls httpx2 with `data=<file>` for the single-part PUT, which httpx2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def _make_folder(root: Path, *, seed: int = 0, note: str = "hello hub\n") -> dict[str, bytes]:
    """A folder like a model push: text, JSON, a nested `.eval_results/` YAML and a 2 MB safetensors file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text(note)
    (root / "config.json").write_text(json.dumps({"hidden_size": 32, "seed": seed}, indent=2))
    (root / ".eval_results").mkdir(exist_ok=True)
    (root / ".eval_results" / "x.yaml").write_text(f"- task: chair\n  value: {0.1 + seed}\n")
    generator = torch.Generator().manual_seed(seed)
    save_file({"weight": torch.rand(512 * 1024, generator=generator)}, str(root / "model.safetensors"))  # 2 MiB
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _read_tree(folder: str | Path) -> dict[str, bytes]:
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_create_and_upload_folder_regular_and_lfs(hf_hub_double: HubDouble, tmp_path):
    hub = hf_hub_double
    api = HfApi()  # no arguments: endpoint and token come from the patched environment
    assert api.endpoint == hub.endpoint
    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO and url.endpoint == hub.endpoint
    api.create_repo(REPO, exist_ok=True)  # 409 from the double, swallowed by exist_ok

    expected = _make_folder(tmp_path / "push")
    assert len(expected["model.safetensors"]) > 2_000_000
    info = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "push", commit_message="first push")

    assert hub.files(REPO) == expected  # exactly these files, byte for byte
    assert info.oid == hub.commit_shas(REPO)[-1] == hub.repo(REPO).branches["main"]
    assert len(info.oid) == 40 and info.repo_url.repo_id == REPO
    assert hub.repo(REPO).head["lfs"] == {"model.safetensors"}

    # The safetensors file took the LFS path: preupload -> batch -> PUT (no token, like S3) -> verify -> commit.
    (preupload,) = hub.requests_to(r"/preupload/main$", "POST")
    modes = {f["path"]: f for f in json.loads(preupload["body"])["files"]}
    assert set(modes) == set(expected)
    (batch,) = hub.requests_to(r"\.git/info/lfs/objects/batch$", "POST")
    assert [o["oid"] for o in json.loads(batch["body"])["objects"]] == [
        hashlib.sha256(expected["model.safetensors"]).hexdigest()
    ]
    (put,) = hub.requests_to(r"^/lfs-upload/", "PUT")
    assert "Authorization" not in put["headers"] and put["body"] == expected["model.safetensors"]
    assert len(hub.requests_to(r"/lfs/objects/verify$", "POST")) == 1
    (commit,) = hub.requests_to(rf"^/api/models/{REPO}/commit/main$", "POST")
    assert commit["headers"]["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in commit["body"].splitlines()]
    assert lines[0] == {"key": "header", "value": {"summary": "first push", "description": ""}}
    assert {(ln["key"], ln["value"]["path"]) for ln in lines[1:]} == {
        ("file", "notes.txt"),
        ("file", "config.json"),
        ("file", ".eval_results/x.yaml"),
        ("lfsFile", "model.safetensors"),
    }
    assert not hub.requests_to("xet")  # HF_HUB_DISABLE_XET is honoured: no Xet probing at all

    # Listing / info endpoints agree with what was pushed.
    assert sorted(api.list_repo_files(REPO)) == sorted(expected)
    model = api.model_info(REPO, files_metadata=True)
    assert model.sha == info.oid
    sizes = {s.rfilename: (s.size, s.lfs) for s in model.siblings}
    assert sizes["model.safetensors"][1].size == len(expected["model.safetensors"])
    assert sizes["notes.txt"] == (len(expected["notes.txt"]), None)
    assert api.repo_info(REPO).sha == info.oid
    assert hub.errors == []


def test_revisions_snapshot_and_single_file_download(hf_hub_double: HubDouble, tmp_path):
    hub = hf_hub_double
    api = HfApi()
    api.create_repo(REPO)
    first_files = _make_folder(tmp_path / "v1")
    first = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1").oid
    second_files = _make_folder(tmp_path / "v2", seed=1, note="second version\n")  # every file changes
    (tmp_path / "v2" / "extra.md").write_text("new in v2\n")
    second_files["extra.md"] = b"new in v2\n"
    second = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v2", commit_message="v2").oid

    assert first != second and hub.commit_shas(REPO)[-2:] == [first, second]
    assert hub.files(REPO, revision=first) == first_files and hub.files(REPO) == second_files
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second, first]

    old = snapshot_download(REPO, revision=first)
    assert Path(old).name == first and _read_tree(old) == first_files
    new = snapshot_download(REPO, revision="main")
    assert Path(new).name == second and _read_tree(new) == second_files

    # One file, by branch and by commit sha; the LFS one is fetched from the "CDN" without the token.
    path = hf_hub_download(REPO, "model.safetensors", revision=first, force_download=True)
    assert Path(path).read_bytes() == first_files["model.safetensors"]
    cdn = [r for r in hub.requests if r["server"] == "cdn"]
    assert cdn and all("Authorization" not in r["headers"] for r in cdn)
    path = hf_hub_download(REPO, ".eval_results/x.yaml", local_dir=tmp_path / "one")
    assert Path(path).read_bytes() == second_files[".eval_results/x.yaml"]

    # An unchanged re-upload is a no-op (the double reports remote oids at preupload): no new revision.
    again = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v2", commit_message="noop")
    assert again.oid == second and hub.commit_shas(REPO)[-1] == second
    assert hub.errors == []


def test_writes_need_the_token_which_never_leaks(hf_hub_double: HubDouble, tmp_path):
    hub = hf_hub_double
    api = HfApi()
    api.create_repo(REPO)
    payload = tmp_path / "a.txt"
    payload.write_text("data")

    with pytest.raises(RepositoryNotFoundError) as no_token:  # what the real Hub + client give without a token
        api.upload_file(path_or_fileobj=payload, path_in_repo="a.txt", repo_id=REPO, token=False)
    assert no_token.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as create_anon:
        api.create_repo("test-org/other", token=False)
    assert create_anon.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as wrong:
        HfApi(token="hf_wrong").upload_file(path_or_fileobj=payload, path_in_repo="a.txt", repo_id=REPO)
    assert wrong.value.response.status_code == 401
    assert hub.files(REPO) == {} and "test-org/other" not in hub.repos

    # A real push (regular + LFS) with the token, then a download: the token only ever travels as a Bearer header.
    _make_folder(tmp_path / "push")
    api.upload_folder(repo_id=REPO, folder_path=tmp_path / "push")
    snapshot_download(REPO)
    assert hub.token_leaks() == []
    for request in hub.requests:
        auth = request["headers"].get("Authorization")
        assert auth in (None, f"Bearer {hub.token}", "Bearer hf_wrong")
    writes = [r for r in hub.requests if r["method"] in ("POST", "DELETE") and r["status"] == 200]
    assert writes and all(r["headers"].get("Authorization") == f"Bearer {hub.token}" for r in writes)
    assert os.environ["HF_TOKEN"] == hub.token
    assert hub.errors == []


def test_dataset_repo_create_upload_download(hf_hub_double: HubDouble, tmp_path):
    hub = hf_hub_double
    api = HfApi()
    repo_id = "test-org/tiny-data"
    url = api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    assert url.repo_type == "dataset" and "datasets/test-org/tiny-data" in hub.repos

    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    (folder / "data" / "train.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    (folder / "data" / "blob.bin").write_bytes(bytes(range(256)) * 64)  # binary -> LFS
    expected = _read_tree(folder)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder)

    assert hub.files(repo_id, repo_type="dataset") == expected
    assert info.oid == hub.commit_shas(repo_id, "dataset")[-1]
    assert info.commit_url.startswith(f"{hub.endpoint}/datasets/{repo_id}/commit/")
    assert hub.repo(repo_id, "dataset").head["lfs"] == {"data/blob.bin"}
    assert REPO not in hub.repos and repo_id not in hub.repos  # not a model repo
    assert api.dataset_info(repo_id).sha == info.oid

    local = snapshot_download(repo_id, repo_type="dataset")
    assert _read_tree(local) == expected
    path = hf_hub_download(repo_id, "data/blob.bin", repo_type="dataset", local_dir=tmp_path / "dl")
    assert Path(path).read_bytes() == expected["data/blob.bin"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)  # same id, wrong type
    assert hub.errors == []
