"""Named zoo entries: what each model is, how it is built, where it is published.

An entry names its backbone, its modalities, the `zoo train` overrides of its recipe and its hub
repo. Embedded entries (the shapes models) are reproducible on a CPU from the embedded world:
``load(name, build=True)`` or ``zoo build NAME`` runs the recipe (after the entry it starts from)
and pushes the result to the local hub. ``{base}`` in an override is the model folder of the entry
named by ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZooEntry:
    name: str
    backbone: str  # "composed: …" or an HF model id
    modalities: tuple[str, ...]
    recipe: tuple[str, ...]  # `zoo train` overrides
    repo: str  # hub repo id (local hub and HF Hub alike)
    base: str | None = None  # the entry this one starts from
    description: str = ""
    embedded: bool = True  # buildable from the embedded synthetic world
    tags: tuple[str, ...] = field(default_factory=tuple)


_PRETRAINED = ("model=pretrained", "model.path={base}")

ENTRIES: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    if entry.name in ENTRIES:
        raise ValueError(f"zoo entry {entry.name!r} is already registered")
    if entry.base is not None and entry.base not in ENTRIES:
        raise ValueError(f"zoo entry {entry.name!r} starts from unknown entry {entry.base!r}")
    ENTRIES[entry.name] = entry
    return entry


def get_entry(name: str) -> ZooEntry:
    try:
        return ENTRIES[name]
    except KeyError:
        raise KeyError(f"no zoo entry {name!r}; known: {', '.join(sorted(ENTRIES))}") from None


def list_models() -> list[ZooEntry]:
    return [ENTRIES[n] for n in sorted(ENTRIES)]


SHAPES_BACKBONE = "composed: ViT (4 image tokens) + Llama d=128"

register(ZooEntry(
    "shapes-vlm", SHAPES_BACKBONE, ("image",), ("recipe=sft",), "zoo/shapes-vlm",
    description="SFT base on the shapes world (learns the co-occurrence prior)", tags=("sft",),
))
register(ZooEntry(
    "shapes-vlm-dpo", SHAPES_BACKBONE, ("image",), ("recipe=dpo", *_PRETRAINED), "zoo/shapes-vlm-dpo",
    base="shapes-vlm", description="DPO + RPO term on annotated pairs (one injected hallucination)", tags=("dpo",),
))
register(ZooEntry(
    "shapes-vlm-bdhs", SHAPES_BACKBONE, ("image",), ("recipe=bdhs", *_PRETRAINED), "zoo/shapes-vlm-bdhs",
    base="shapes-vlm", description="offline BDHS: rejected written by the base with its image hidden", tags=("bdhs",),
))
register(ZooEntry(
    "shapes-vlm-online-bdhs", SHAPES_BACKBONE, ("image",), ("recipe=online_bdhs", *_PRETRAINED),
    "zoo/shapes-vlm-online-bdhs", base="shapes-vlm",
    description="online BDHS: rejected written by the policy every step", tags=("bdhs", "online"),
))
