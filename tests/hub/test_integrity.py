"""The local hub under tampering, kills and races: pushes run in real processes, killed with SIGKILL
at named points (``ZOO_HUB_FAULT``) or racing each other, and the hub checked after each."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import stat
import tempfile
import time

import pytest

from tests.hub.fault_run import POINTS, finish, inconsistencies, run, staging_left, start_pusher
from zoo.hub import MANIFEST, STAGING, HubError, IntegrityError, LocalHub, folder_id, push_run
from zoo.zoo_model import load

REPO = "me/m"


@pytest.fixture()
def hub(tmp_path):
    return LocalHub(tmp_path / "hub")


def _folder(path, seed: int, files: int = 3, size: int = 1 << 16):
    path.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(files):
        (path / f"{i}.bin").write_bytes(rng.randbytes(size))
    return path


def _fake_run(path):
    """A run folder `push_run` accepts without a real model (its own card, so none is rendered)."""
    (path / "model").mkdir(parents=True)
    (path / "model" / "config.json").write_text("{}")
    (path / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    (path / "model" / "model.safetensors").chmod(0o600)  # as safetensors writes it
    (path / "README.md").write_text("# a run\n")
    return path


def test_a_rewritten_manifest_does_not_make_tampered_files_load(hub, tmp_path):
    rev = hub.push(_folder(tmp_path / "f", 0), REPO)
    path = hub.resolve(REPO).path
    data = bytearray((path / "0.bin").read_bytes())
    data[0] ^= 1
    (path / "0.bin").write_bytes(bytes(data))
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"]["0.bin"] = hashlib.sha256(data).hexdigest()  # the tamperer rewrites the checksum too
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="manifest hashes to .* not to the revision id"):
        hub.resolve(REPO, revision=rev)
    with pytest.raises(IntegrityError, match="tampered"):
        load(REPO, revision=rev, hub=hub)
    (path / MANIFEST).write_text("{")
    with pytest.raises(IntegrityError, match="unreadable manifest"):
        hub.resolve(REPO)
    assert hub.revisions(REPO) == [rev]  # still listed (and refused by resolve)


@pytest.mark.parametrize("point", POINTS)
def test_a_push_killed_at_any_point_leaves_the_hub_consistent(hub, tmp_path, point):
    good = hub.push(_folder(tmp_path / "a", 0), REPO)
    new = _folder(tmp_path / "b", 1)
    proc = start_pusher(hub.root, new, REPO, fault=point)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert hub.main(REPO) == good
    # killed after its rename, the push left a complete revision that main does not point at
    assert hub.revisions(REPO) == ([good, folder_id(new)] if point == "renamed" else [good])
    assert inconsistencies(hub, REPO, {good, folder_id(new)}) == []
    assert (staging_left(hub, REPO) > 0) == (point in ("copying", "manifest"))
    again = hub.push(new, REPO)  # reclaims the staging, and stores the content (once)
    assert again == folder_id(new) and again.created == (point != "renamed") and hub.main(REPO) == again
    assert staging_left(hub, REPO) == 0 and hub.resolve(REPO).manifest["parent"] == good


def test_a_push_waits_for_the_lock_and_a_killed_holder_releases_it(hub, tmp_path):
    good = hub.push(_folder(tmp_path / "a", 0), REPO)
    holder = start_pusher(hub.root, _folder(tmp_path / "b", 1), REPO, fault="copying:pause")
    assert "paused at copying" in holder.stderr.readline()
    waiter = start_pusher(hub.root, _folder(tmp_path / "c", 2), REPO)
    time.sleep(1.0)
    assert waiter.poll() is None  # blocked on the repo's lock
    assert hub.revisions(REPO) == [good] and staging_left(hub, REPO) == 1  # a push in progress is not listed
    holder.kill()
    holder.communicate(timeout=60)
    result = finish(waiter)
    assert result["created"] and result["previous"] == good and hub.main(REPO) == result["revision"]
    assert staging_left(hub, REPO) == 0


@pytest.mark.parametrize("same", [True, False], ids=["identical", "different"])
def test_concurrent_pushes_from_two_processes(hub, tmp_path, same):
    main = hub.push(_folder(tmp_path / "base", 0), REPO)
    for trial in range(3):
        first = _folder(tmp_path / f"{trial}-a", 10 + trial, files=8, size=1 << 20)
        second = _folder(tmp_path / f"{trial}-b", 10 + trial if same else 100 + trial, files=8, size=1 << 20)
        go = tmp_path / f"go-{trial}"
        procs = [start_pusher(hub.root, folder, REPO, go=go) for folder in (first, second)]
        go.touch()
        a, b = (finish(p) for p in procs)  # neither fails
        if same:
            assert a["revision"] == b["revision"] == hub.main(REPO) and {a["created"], b["created"]} == {True, False}
            assert hub.revisions(REPO)[-1] == a["revision"]
        else:  # both stored, and history is a line: main → the other push → main before the pair
            one, two = sorted((a, b), key=lambda r: r["previous"] != main)
            assert one["previous"] == main and two["previous"] == one["revision"] and hub.main(REPO) == two["revision"]
            assert hub.resolve(REPO).manifest["parent"] == one["revision"]
            assert hub.resolve(REPO, one["revision"]).manifest["parent"] == main
        main = hub.main(REPO)
    assert len(hub.revisions(REPO)) == (4 if same else 7) and staging_left(hub, REPO) == 0


def test_identical_content_returns_the_stored_revision_and_says_so(hub, tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    folder = _folder(tmp_path / "f", 0)
    first = hub.push(folder, REPO)
    again = hub.push(folder, REPO)
    assert again == first and first.created and not again.created
    assert pickle.loads(pickle.dumps(again)).describe() == again.describe()
    assert again.describe() == f"nothing new: {REPO} is already at revision {first} (identical content)"
    other = hub.push(_folder(tmp_path / "g", 1), REPO)
    back = hub.push(folder, REPO)  # the old content again: main goes back to its revision
    assert back == first and not back.created and back.previous == other and hub.main(REPO) == first
    assert "main points at it again" in back.describe() and hub.revisions(REPO) == [first, other]
    monkeypatch.setenv("ZOO_HOME", str(hub.root.parent))
    run_dir = _fake_run(tmp_path / "run")
    assert main(["push", str(run_dir), "--repo", "me/run"]) == 0
    assert "is now at the new revision" in capsys.readouterr().out
    assert main(["push", str(run_dir), "--repo", "me/run"]) == 0
    assert "nothing new: me/run is already at revision" in capsys.readouterr().out


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_hub_files_and_folders_follow_the_umask(hub, tmp_path, umask):
    folder = _folder(tmp_path / "f", 0)
    folder.chmod(0o700)
    for p in folder.iterdir():
        p.chmod(0o600)
    old = os.umask(umask)
    try:
        hub.push(folder, REPO)
        push_run(_fake_run(tmp_path / "run"), "me/run", hub)
    finally:
        os.umask(old)
    for path in hub.root.rglob("*"):
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_pushes_stage_inside_the_hub_never_in_tmp(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-tmp"))  # any temporary file or folder fails
    rev = push_run(_fake_run(tmp_path / "run"), REPO, hub)
    assert (hub.resolve(REPO, rev).path / "model.safetensors").is_file()
    assert hub.push(_folder(tmp_path / "f", 0), "me/other").created


def test_gc_reclaims_what_killed_pushes_left(hub, tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    good = hub.push(_folder(tmp_path / "a", 0), REPO)
    start_pusher(hub.root, _folder(tmp_path / "b", 1), REPO, fault="manifest").communicate(timeout=60)
    repo = hub.repo_dir(REPO)
    legacy = repo / "revisions" / ".push-abc123"  # what a push killed before the rename used to leave
    legacy.mkdir()
    (legacy / MANIFEST).write_text(json.dumps({"files": {}, "created": time.time(), "parent": None}))
    (repo / "refs" / ".main.4242.tmp").write_text("0123\n")
    assert hub.revisions(REPO) == [good]
    monkeypatch.setenv("ZOO_HOME", str(hub.root.parent))
    assert main(["hub", "gc"]) == 0
    out = capsys.readouterr().out
    assert "models/me/m: removed 3 leftover(s) of killed pushes" in out and "reclaimed 3 leftover(s)" in out
    assert not list((repo / STAGING).iterdir()) and not legacy.exists() and not list((repo / "refs").glob(".*"))
    assert hub.resolve(REPO).revision == good
    holder = start_pusher(hub.root, _folder(tmp_path / "c", 2), REPO, fault="locked:pause")
    assert "paused at locked" in holder.stderr.readline()
    try:
        assert main(["hub", "gc", REPO]) == 0  # a push in progress is left alone
        assert "models/me/m: skipped, a push to it is in progress" in capsys.readouterr().out
    finally:
        holder.kill()
        holder.communicate(timeout=60)


def test_an_overlong_repo_name_is_a_clear_hub_error(hub, tmp_path):
    name = "me/" + "x" * 300
    with pytest.raises(HubError, match="has a part of 300 characters; org and name may have at most 96"):
        hub.push(_folder(tmp_path / "f", 0), name)
    with pytest.raises(HubError, match="at most 96"):
        load(name, hub=hub)


def test_the_fault_runs_checker_finds_broken_promises(hub, tmp_path):
    a = hub.push(_folder(tmp_path / "a", 0), REPO)
    b = hub.push(_folder(tmp_path / "b", 1), REPO)
    assert inconsistencies(hub, REPO, {a, b}) == []
    assert inconsistencies(hub, REPO, {b}) == [f"{a}: not the content of any push"]
    (hub.resolve(REPO, a).path / "1.bin").write_bytes(b"changed")
    assert inconsistencies(hub, REPO, {a, b}) == [
        f"{a}: {REPO}@{a}: 1.bin does not match its recorded sha256 (tampered or corrupted); refusing to load it",
        f"{b}: parent {a} is not a revision"]


@pytest.mark.slow
def test_fault_run_small(tmp_path):
    """`python -m tests.hub.fault_run` in a small form: kills at every point and at random times, racing
    pairs, then every revision loaded with `zoo.load` and fully verified."""
    report = run(kills=8, pairs=4, mb=1, workdir=tmp_path)
    assert report["inconsistencies"] == []
    # at least: the first push, 2 clean pushes, the kill after its rename, 2 identical and 2 different pairs
    assert report["counts"]["revisions loaded"] == report["revisions"] >= 1 + 2 + 1 + 2 + 4
    assert all(report["counts"][f"kills at {p}"] == 1 for p in POINTS)
