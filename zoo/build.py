"""`zoo build NAME`: train an embedded zoo entry by its recipe and push it to the local hub.

An application entry point, beside the CLI and the demo: it trains (`zoo.train`) and publishes
(`zoo.hub`). `zoo.load` only loads; when an embedded entry is in no hub yet, its error says to run
`zoo build NAME`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from zoo.entries import ENTRIES
from zoo.hub import LocalHub, push_run
from zoo.train.run import compose_config, train

log = logging.getLogger(__name__)


def push_entry(name: str, run_dir: str | Path, hub: LocalHub | None = None, message: str = "") -> str:
    """Push a training run as the zoo entry ``name`` (its repo; the card takes name, backbone, modalities
    and base from the entry); returns the new revision."""
    entry = ENTRIES.get(name)
    return push_run(run_dir, entry.repo, hub or LocalHub(), message=message or f"build {entry.name}")


def build_entry(name: str, hub: LocalHub | None = None, runs_root: str | Path = "runs",
                extra: tuple[str, ...] = ()) -> str:
    """Train the embedded entry ``name`` (its base first, when the hub lacks it), push it to the local hub
    and return the revision. ``extra``: Hydra overrides added to the entry's recipe."""
    entry, hub = ENTRIES.get(name), hub or LocalHub()
    if not entry.embedded:
        raise ValueError(f"{entry.name} is not built from the embedded world: {entry.how_to_make()}")
    overrides = list(entry.recipe)
    if entry.base is not None:
        base = ENTRIES.get(entry.base)
        if not hub.exists(base.repo):
            build_entry(base.name, hub, runs_root, extra)
        base_path = hub.resolve(base.repo).path
        overrides = [o.replace("{base}", str(base_path)) for o in overrides]
    out = Path(runs_root) / entry.name
    cfg = compose_config([*overrides, f"output_dir={out}", "overwrite=true", *extra])
    log.info("building %s: zoo train %s", entry.name, " ".join(overrides))
    train(cfg)
    return push_entry(entry.name, out, hub)
