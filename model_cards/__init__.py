"""Jinja templates of the model cards that `zoo push` writes (``README.md`` of a hub repo)."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent
