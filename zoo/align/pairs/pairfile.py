"""Resumable pair files: what offline pair sources that write their data before training share (BDHS, LLF).

A pair file is ``<output>/<name>.jsonl`` (one row per line, written as made) beside ``<name>.json`` (the
settings it was made with, then the summary). A rerun with the same settings skips the rows already written
(by id; a torn last line from a crash is cut off first); one with other settings is refused, since the file
would mix two datasets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def row_id(row: dict, split: str, position: int) -> str:
    """A source row's id: its ``id``, else ``split[position]``."""
    return str(row.get("id", f"{split}[{position}]"))


def existing_ids(path: Path) -> set[str]:
    """Ids already written to ``path``; a torn last line (a crash mid-write) is cut off so appending stays valid."""
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    ids, keep = set(), 0
    for line in lines:
        try:
            ids.add(str(json.loads(line)["id"]))
        except (ValueError, KeyError):
            break
        keep += len(line.encode("utf-8"))
    if keep != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(keep)
    return ids


def check_settings(meta_path: Path, settings: dict[str, Any], what: str) -> None:
    """Refuse to extend a pair file made with other settings (``what`` names the data, e.g. "BDHS pairs")."""
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in settings} != settings:
            raise ValueError(f"{meta_path.parent} holds {what} made with other settings ({meta_path}); "
                             "choose another output or delete it")


def write_summary(meta_path: Path, summary: dict[str, Any]) -> None:
    """Write the summary atomically (a crash leaves the old one or the new one, never half)."""
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    tmp.replace(meta_path)


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a pair file (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
