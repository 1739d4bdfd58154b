"""Reading data into the one schema: local files (JSONL, Parquet, saved DatasetDicts).

Adapters for public preference formats (RLAIF-V, VLFeedback, POVID, align-anything) join here.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_rows(path: str | Path, split: str) -> list[dict]:
    """Rows of one split from a folder holding ``{split}.jsonl`` / ``{split}.parquet`` or a saved DatasetDict."""
    path = Path(path)
    jsonl = path / f"{split}.jsonl"
    if jsonl.exists():
        with jsonl.open() as f:
            return [json.loads(line) for line in f if line.strip()]
    import datasets

    parquet = path / f"{split}.parquet"
    if parquet.exists():
        return datasets.Dataset.from_parquet(str(parquet)).to_list()
    if (path / "dataset_dict.json").exists():
        return datasets.load_from_disk(str(path))[split].to_list()
    raise FileNotFoundError(f"no split '{split}' under {path} (expected {split}.jsonl, {split}.parquet or a saved DatasetDict)")
