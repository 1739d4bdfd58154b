"""The one-way dependency contracts of pyproject.toml hold (`lint-imports`, as `make test` runs it), and
they do catch a forbidden import (upward, out of the bottom layer, training from the hub, benchmarks
reaching into zoo's internals)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("zoo", "modalities", "benchmarks")


def _lint(root: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_layer_contracts_hold():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


BREAKS = [  # (module file, the import appended to it, what lint-imports reports)
    ("zoo/models/adapters.py", "from zoo.align.reference import REFERENCES", "zoo.models is not allowed to import zoo.align"),
    ("zoo/registry.py", "import zoo.entries", "zoo.registry is not allowed to import zoo.entries"),
    ("zoo/hub.py", "from zoo.train.callbacks import EvalCallback", "zoo.hub is not allowed to import zoo.train"),
    ("benchmarks/task.py", "from zoo.data.collate import pad_batch", "benchmarks is not allowed to import zoo.data.collate"),
]


@pytest.mark.parametrize("module,line,message", BREAKS, ids=[b[0] for b in BREAKS])
def test_a_forbidden_import_breaks_them(tmp_path, module, line, message):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as f:
        f.write(f"\n{line}  # noqa\n")
    out = _lint(tmp_path)
    assert out.returncode == 1 and message in out.stdout, out.stdout[-4000:]
