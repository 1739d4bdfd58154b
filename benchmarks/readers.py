"""Readers of public hallucination-benchmark formats into benchmark items.

Every reader returns items in the one schema the tasks of :mod:`benchmarks.hallucination` score::

    {"id": str, "prompt": [user message with one image placeholder + question], "images": [...],
     "reference": {...}}

Image entries stay as written in the file (relative paths resolve against the task's
``media_root``, i.e. the benchmark's image folder). Order is the file's order, so items are
deterministic. Formats:

* **POPE** (``coco_pope_{random,popular,adversarial}.json``): JSON Lines (a JSON list is accepted
  too), one ``{"question_id", "image", "text", "label"}`` per question. Reference:
  ``{"label": "yes"|"no", "kind": <pope kind or None>}``. Rows carrying a ``category`` field (the
  merged lmms-lab layout) are filtered by ``kind``.
* **MMHal-Bench** (``response_template.json``): a JSON list of ``{"question_type",
  "question_topic", "image_id", "image_src", "image_content", "question", "gt_answer",
  "model_answer"}``. Reference: ``{"answer": gt_answer, "kind": question_type, "topic",
  "image_content"}``. The real benchmark is judged by GPT-4 against ``image_content``; here the
  programmatic rule of :class:`benchmarks.hallucination.MMHalTask` is used instead (see there).
* **Caption sets** (AMBER generative / Object-HalBench style): a query list ``[{"id", "image",
  "query"}]`` (AMBER ``query_generative.json``) plus an annotation list ``[{"id", "truth": [...],
  "hallu": [...]}]`` (AMBER ``annotations.json``; a dict keyed by id also works), joined on
  ``id``. Entries may also carry ``truth`` (or ``objects``) inline, then no annotation file is
  needed. Reference: ``{"objects": truth, "hallu": hallu}`` — CHAIR-style scoring uses ``truth``
  as the present objects. Object HalBench (COCO captions + segmentation) converts to this layout
  with one entry per image and ``truth`` = the image's COCO object names.

:func:`load_hub` (at the end, separate) reads the same benchmarks from a Hugging Face ``datasets``
repo id when online; it is not exercised by the offline tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMATS = ("pope", "mmhal", "captions")


def user_prompt(text: str, n_images: int = 1) -> list[dict[str, Any]]:
    """A one-turn user prompt: ``n_images`` image placeholders, then ``text``."""
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def _item(item_id: Any, question: str, image: Any, reference: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(item_id), "prompt": user_prompt(question), "images": [image], "reference": reference}


def read_json_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON list, a JSON object (one record, or ``{id: record}``) or JSON Lines file."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # JSON Lines (POPE's *.json files are JSON Lines)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()) and data:
        return [{"id": k, **v} if "id" not in v else v for k, v in data.items()]
    return [data]


def _yes_no(label: Any) -> str:
    value = str(label).strip().lower().rstrip(".")
    if value not in ("yes", "no"):
        raise ValueError(f"POPE label must be 'yes' or 'no', not {label!r}")
    return value


# --- POPE --------------------------------------------------------------------------------


def pope_items(records: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    """POPE records (``question_id``/``image``/``text``/``label``; hub aliases accepted) to items."""
    items = []
    for i, rec in enumerate(records):
        category = rec.get("category")
        if kind is not None and category is not None and category != kind:
            continue
        question = rec.get("text", rec.get("question"))
        label = rec.get("label", rec.get("answer"))
        image = rec.get("image", rec.get("image_source"))
        if question is None or label is None or image is None:
            raise ValueError(f"POPE record {i} needs 'text', 'label' and 'image' (got keys {sorted(rec)})")
        items.append(
            _item(rec.get("question_id", i), question, image, {"label": _yes_no(label), "kind": category or kind})
        )
    return items


def read_pope(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Items of a POPE file; ``kind`` (random/popular/adversarial) is recorded in the references."""
    return pope_items(read_json_records(path), kind)


# --- MMHal-Bench -------------------------------------------------------------------------


def mmhal_items(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    for i, rec in enumerate(records):
        missing = [k for k in ("question", "gt_answer", "question_type") if k not in rec]
        if missing:
            raise ValueError(f"MMHal-Bench record {i} lacks {missing}")
        image = rec.get("image", rec.get("image_path", rec.get("image_src")))
        reference = {
            "answer": rec["gt_answer"],
            "kind": rec["question_type"],
            "topic": rec.get("question_topic"),
            "image_content": rec.get("image_content", []),
        }
        items.append(_item(rec.get("id", i), rec["question"], image, reference))
    return items


def read_mmhal(path: str | Path) -> list[dict[str, Any]]:
    """Items of an MMHal-Bench ``response_template.json`` (ids are the record positions)."""
    return mmhal_items(read_json_records(path))


# --- caption sets (AMBER generative, Object HalBench) ------------------------------------


def caption_items(queries: list[dict[str, Any]], annotations: list[dict[str, Any]] | None = None,
                  default_query: str = "Describe this image.") -> list[dict[str, Any]]:
    by_id = {str(a["id"]): a for a in annotations or []}
    items = []
    for i, rec in enumerate(queries):
        item_id = rec.get("id", i)
        note = by_id.get(str(item_id), rec)
        truth = note.get("truth", note.get("objects"))
        if truth is None:
            raise ValueError(f"caption entry {item_id!r} has no 'truth' objects (inline or in the annotations)")
        image = rec.get("image", rec.get("image_path"))
        if image is None:
            raise ValueError(f"caption entry {item_id!r} has no 'image'")
        question = rec.get("query", rec.get("question", rec.get("text", default_query)))
        reference = {"objects": [str(o).lower() for o in truth], "hallu": [str(o).lower() for o in note.get("hallu", [])]}
        items.append(_item(item_id, question, image, reference))
    return items


def read_caption_set(path: str | Path, annotations: str | Path | None = None) -> list[dict[str, Any]]:
    """Items of an AMBER-style query file, joined on ``id`` with an annotation file when given.

    AMBER's ``annotations.json`` also holds its discriminative questions; only ids present in the
    query file are used, so they are ignored.
    """
    notes = read_json_records(annotations) if annotations is not None else None
    return caption_items(read_json_records(path), notes)


def read_items(fmt: str, path: str | Path, kind: str | None = None,
               annotations: str | Path | None = None) -> list[dict[str, Any]]:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "pope":
        return read_pope(path, kind)
    if fmt == "mmhal":
        return read_mmhal(path)
    if fmt == "captions":
        return read_caption_set(path, annotations)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


# --- Hugging Face hub (online only; not exercised by the offline tests) -------------------


def load_hub(repo_id: str, fmt: str, split: str = "test", kind: str | None = None, **load_kwargs: Any) -> list[dict[str, Any]]:
    """Items from a hub dataset (e.g. ``lmms-lab/POPE``, ``Shengcao1006/MMHal-Bench``) via ``datasets``.

    Column names follow the local formats, with the hub aliases handled by the same converters
    (POPE: ``question``/``answer``/``category``/``image``). Images come back as whatever the
    dataset holds (PIL images for an ``Image`` feature), which ``load_image`` accepts directly.
    """
    import datasets

    records = datasets.load_dataset(repo_id, split=split, **load_kwargs).to_list()
    if fmt == "pope":
        return pope_items(records, kind)
    if fmt == "mmhal":
        return mmhal_items(records)
    if fmt == "captions":
        return caption_items(records)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
