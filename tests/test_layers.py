"""The one-way dependency contracts of pyproject.toml hold (`lint-imports`, as `make test` runs it), and
they do catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_an_upward_import_breaks_them(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "zoo" / "models" / "adapters.py").open("a") as f:
        f.write("\nfrom zoo.align.reference import REFERENCES  # noqa: E402  (upward: zoo.models -> zoo.align)\n")
    out = _lint(tmp_path)
    assert out.returncode == 1 and "zoo.models is not allowed to import zoo.align" in out.stdout, out.stdout[-4000:]
