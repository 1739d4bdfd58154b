"""The newcomer's hour, scripted: the README's quick start, run as it is from a clean folder.

Each command of the README's "Quick start" block runs as a separate process (``zoo`` → this interpreter's
``-m zoo.cli``), the way a user types it. Every command must succeed without a traceback, print no log line
twice, and leave its files where the README says.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    head = {"zoo": [sys.executable, "-m", "zoo.cli"], "python": [sys.executable]}[words[0]]
    return head + words[1:]


def _log_lines(output: str) -> list[str]:
    """The messages of the log records a command printed, whatever the handler's format ('INFO: msg',
    'INFO lightning.pytorch…: msg'): one record printed by two handlers counts twice."""
    found = (re.match(r"\s*(?:INFO|WARNING|ERROR)(?:\s+[\w.]+)?:\s*(.*)$", line) for line in output.splitlines())
    return [m.group(1).strip() for m in found if m]


@pytest.mark.slow
def test_the_readme_quick_start_runs_as_written(tmp_path):
    commands = quick_start_commands()
    assert [c.split()[:2] for c in commands][:3] == [["zoo", "world"], ["zoo", "train"], ["zoo", "train"]]
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "COLUMNS": "100", "PYTHONPATH": str(README.parent),
           "HF_HUB_OFFLINE": "1"}
    env.pop("ZOO_DEBUG", None)
    outputs = {}
    for command in commands:
        done = subprocess.run(_argv(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}\n{output[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        twice = [line for line, n in Counter(_log_lines(output)).items() if n > 1]
        assert not twice, f"{command} printed these log lines more than once: {twice}"
        outputs[command] = output

    runs = tmp_path / "runs"
    for run in ("sft", "dpo"):  # the run folder of the README's "Command line" section
        for name in ("model/config.json", "model/model.safetensors", "recipe.yaml", "checkpoints/last.ckpt",
                     "metrics.json", "results.json", "results.samples.jsonl"):
            assert (runs / run / name).is_file(), f"runs/{run}/{name}"
        assert list((runs / run / "logs").glob("*/version_*")), f"runs/{run}/logs"
    assert (runs / "dpo" / "curves.png").is_file() and (tmp_path / "board.html").is_file()
    assert (tmp_path / "data" / "small" / "world.json").is_file()
    assert not (tmp_path / "data" / "shapes-0").exists()  # the runs read the small world, never the default one
    recipe = (runs / "sft" / "recipe.yaml").read_text()
    assert "n_train: 200" in recipe  # recipe.yaml records the world the run read
    listed = next(out for cmd, out in outputs.items() if cmd.strip() == "zoo list")
    assert "me/small-dpo" in listed
    loaded = next(out for cmd, out in outputs.items() if cmd.startswith("python -c"))
    assert "me/small-dpo" in loaded and len(loaded.strip().splitlines()) < 15  # a short summary, then a caption
    hub = tmp_path / "home" / "hub"
    assert list(hub.glob("models/me/small-dpo/*")) and list(hub.glob("datasets/zoo/leaderboard/*"))
