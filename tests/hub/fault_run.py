"""The local hub's fault run: pushes killed with SIGKILL at random points and pushes racing in pairs,
then every revision loaded and fully verified.

    python -m tests.hub.fault_run --kills 40 --pairs 20

Each push runs in its own process (`tests.hub.pusher`) and pushes a fresh copy of a tiny zoo model plus
a few MB of seeded random bytes (fresh content, so every push has a rename to be killed around). Half
the kills land at a named point of the push (``ZOO_HUB_FAULT``, cycling through `POINTS`), half after
a random delay within the push's measured duration. A clean push follows every few kills. Pairs start
together (both wait for one file); even pairs push identical content, odd pairs different content.
Prints the counts and every inconsistency found; exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from zoo.hub import FAULT_ENV, MANIFEST, STAGING, HubError, LocalHub, folder_id

ROOT = Path(__file__).resolve().parents[2]
POINTS = ("locked", "copying", "manifest", "renamed")
REPO = "fault/run"


def make_source(folder: Path, model: Path | None, seed: int, mb: int) -> Path:
    """A folder to push: the model's files (if any) and ``mb`` MiB of random bytes drawn from ``seed``."""
    if model is not None:
        shutil.copytree(model, folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(4):
        (folder / f"pad-{i}.bin").write_bytes(rng.randbytes(mb * 2**20 // 4))
    return folder


def start_pusher(root: Path, folder: Path, repo: str, fault: str | None = None,
                 go: Path | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if fault:
        env[FAULT_ENV] = fault
    args = [sys.executable, "-m", "tests.hub.pusher", str(root), str(folder), repo, *([str(go)] if go else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    if proc.stdout.readline().strip() != "ready":
        proc.wait()
        raise RuntimeError(f"pusher did not start: {proc.stderr.read()[-2000:]}")
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"push failed (exit {proc.returncode}): {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def inconsistencies(hub: LocalHub, repo: str, pushed: set[str]) -> list[str]:
    """What breaks the hub's promises in ``repo``: a listed revision that is staging, fails `resolve`'s
    full check or is not the content of any push (``pushed``: `folder_id` of every folder pushed); a
    parent that is missing or not older; ``main`` not a listed revision; a cycle in the history."""
    problems = []
    revs = hub.revisions(repo)
    manifests = {}
    for rev in revs:
        if rev.startswith(".") or rev == STAGING:
            problems.append(f"{rev}: staging listed as a revision")
            continue
        try:
            manifests[rev] = hub.resolve(repo, rev).manifest  # the id against the manifest, the files against it
        except HubError as e:
            problems.append(f"{rev}: {e}")
            continue
        if rev not in pushed:
            problems.append(f"{rev}: not the content of any push")
    for rev, manifest in manifests.items():
        parent = manifest["parent"]
        if parent is not None and parent not in manifests:
            problems.append(f"{rev}: parent {parent} is not a revision")
        elif parent is not None and manifests[parent]["created"] >= manifest["created"]:
            problems.append(f"{rev}: parent {parent} is not older")
    if hub.exists(repo):
        seen, rev = set(), hub.main(repo)
        if rev not in manifests:
            problems.append(f"main points at {rev}, which is not a verified revision")
        while rev in manifests and rev not in seen:
            seen.add(rev)
            rev = manifests[rev]["parent"]
        if rev in seen:
            problems.append(f"the history from main has a cycle at {rev}")
    return problems


def staging_left(hub: LocalHub, repo: str) -> int:
    staging = hub.repo_dir(repo) / STAGING
    return len(list(staging.iterdir())) if staging.is_dir() else 0


def run(kills: int, pairs: int, mb: int = 4, seed: int = 0, workdir: Path | None = None, load: bool = True) -> dict:
    """Run the fault run in ``workdir`` (a temporary folder by default); returns its report."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        hub = LocalHub(tmp / "hub")
        model = None
        if load:
            from tests.conftest import build_tiny_policy

            model = tmp / "model"
            build_tiny_policy().backbone.save_pretrained(model)
        n_sources = 0
        pushed: set[str] = set()
        problems: list[str] = []
        counts = Counter()

        def source() -> Path:
            nonlocal n_sources
            n_sources += 1
            folder = make_source(tmp / "src" / str(n_sources), model, seed * 100_000 + n_sources, mb)
            pushed.add(folder_id(folder))
            return folder

        def clean_push() -> float:
            proc = start_pusher(hub.root, source(), REPO)
            t0 = time.perf_counter()  # from "ready": the push itself
            result = finish(proc)
            counts["clean pushes"] += 1
            if not result["created"] or hub.main(REPO) != result["revision"]:
                problems.append(f"clean push {result}: not a new revision at main")
            if staging_left(hub, REPO):
                problems.append("a clean push left staging behind (stale staging not reclaimed)")
            return time.perf_counter() - t0

        push_seconds = clean_push()
        for k in range(kills):
            before_main, before = hub.main(REPO), set(hub.revisions(REPO))
            if k % 2 == 0:
                point = POINTS[(k // 2) % len(POINTS)]
                proc = start_pusher(hub.root, source(), REPO, fault=point)
                proc.wait(timeout=120)
                counts[f"kills at {point}"] += 1
            else:
                proc = start_pusher(hub.root, source(), REPO)
                time.sleep(rng.uniform(0, push_seconds))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=120)
                counts["kills at a random time"] += 1
                if proc.returncode == 0:
                    counts["random kills that came after the push had finished"] += 1
            proc.stdout.close()
            proc.stderr.close()
            after = set(hub.revisions(REPO))
            if proc.returncode == -signal.SIGKILL:
                if hub.main(REPO) != before_main and hub.main(REPO) not in after - before:
                    problems.append(f"kill {k}: main moved to {hub.main(REPO)}, not to a new revision")
                counts["kills leaving a complete revision off main"] += bool(after - before) and hub.main(REPO) == before_main
                counts["kills leaving staging"] += staging_left(hub, REPO) > 0
            problems += [f"after kill {k}: {p}" for p in inconsistencies(hub, REPO, pushed)]
            if k % 4 == 3:
                counts["staging folders reclaimed by a clean push"] += staging_left(hub, REPO)
                clean_push()
        for p in range(pairs):
            same = p % 2 == 0
            first = source()
            if same:
                second = tmp / "src" / f"{n_sources}-copy"
                shutil.copytree(first, second)
            else:
                second = source()
            before_main, before = hub.main(REPO), set(hub.revisions(REPO))
            go = tmp / f"go-{p}"
            procs = [start_pusher(hub.root, folder, REPO, go=go) for folder in (first, second)]
            go.touch()
            try:
                results = [finish(proc) for proc in procs]
            except RuntimeError as e:
                problems.append(f"pair {p}: {e}")
                continue
            counts["identical pairs" if same else "different pairs"] += 1
            new = set(hub.revisions(REPO)) - before
            a, b = results
            if same:
                ok = (a["revision"] == b["revision"] and new == {a["revision"]} and a["created"] != b["created"])
            else:  # linear: one push's parent is main before the pair, the other's is that push
                one, two = sorted(results, key=lambda r: r["previous"] != before_main)
                ok = (new == {a["revision"], b["revision"]} and len(new) == 2 and one["previous"] == before_main
                      and two["previous"] == one["revision"] and hub.main(REPO) == two["revision"]
                      and hub.resolve(REPO, two["revision"]).manifest["parent"] == one["revision"])
            if not ok:
                problems.append(f"pair {p} ({'identical' if same else 'different'}): {results}, new {sorted(new)}")
            if staging_left(hub, REPO):
                problems.append(f"pair {p} left staging behind")
        start_pusher(hub.root, source(), REPO, fault="copying").wait(timeout=120)  # debris for gc
        reclaimed = hub.gc(REPO)
        counts["staging folders reclaimed by gc"] = sum(n for n, _ in filter(None, reclaimed.values()))
        if staging_left(hub, REPO):
            problems.append("gc left staging behind")
        problems += inconsistencies(hub, REPO, pushed)
        revs = hub.revisions(REPO)
        if load:
            from zoo.zoo_model import load as zoo_load

            for rev in revs:
                try:
                    m = zoo_load(REPO, revision=rev, hub=hub)
                    if m.revision != rev or not (m.path / MANIFEST).is_file():
                        problems.append(f"load {rev}: got {m.revision} from {m.path}")
                except Exception as e:  # noqa: BLE001  (any failure to load is an inconsistency to report)
                    problems.append(f"load {rev}: {type(e).__name__}: {e}")
            counts["revisions loaded"] = len(revs)
        return {"kills": kills, "pairs": pairs, "revisions": len(revs), "counts": dict(counts),
                "push_seconds": round(push_seconds, 3), "inconsistencies": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hub.fault_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--mb", type=int, default=4, help="MiB of random bytes per pushed folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-load", action="store_true", help="skip the tiny model and zoo.load (faster)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    report = run(args.kills, args.pairs, args.mb, args.seed, load=not args.no_load)
    print(json.dumps({**report, "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    print(f"{report['kills']} kills, {report['pairs']} concurrent pairs, {report['revisions']} revisions checked: "
          f"{len(report['inconsistencies'])} inconsistencies")
    return 1 if report["inconsistencies"] else 0


if __name__ == "__main__":
    sys.exit(main())
