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


def card_defaults(repo_id: str) -> dict:
    """What the model card of the entry published as ``repo_id`` says about it (nothing for other repos):
    its name, backbone, modalities, and the model it starts from (the base entry's repo, or the HF id)."""
    entry = next((e for e in ENTRIES.values() if e.repo == repo_id), None)
    if entry is None:
        return {}
    base = ENTRIES[entry.base].repo if entry.base else None if entry.embedded else entry.backbone
    return {"name": entry.name, "base_model": base, "backbone": entry.backbone, "modalities": entry.modalities}


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


# Real backbones: HF-native checkpoints, aligned on GPUs (not embedded: the base weights are downloaded).
# The overrides are starting points for one 80 GB GPU: LoRA on the language model (the BDHS paper used
# r=128 / α=256), media towers frozen (model=hf freezes its family's default: zoo/models/families), the
# LoRA-disabled model as the reference, bf16.
def _gpu_entry(name: str, hf_id: str, recipe: str, lr: float, description: str,
               modalities: tuple[str, ...] = ("image",), beta: float = 0.1, tags: tuple[str, ...] = ()) -> ZooEntry:
    overrides = (f"recipe={recipe}", "model=hf", f"model.path={hf_id}",
                 "reference=lora_disabled", f"module.objective.hparams.beta={beta}", f"module.optimizer.lr={lr}",
                 "trainer.precision=bf16-mixed", "trainer.accelerator=gpu")
    return register(ZooEntry(name, hf_id, modalities, overrides, f"zoo/{name}", description=description,
                             embedded=False, tags=(recipe, "lora", *tags)))


_gpu_entry("llava-1.5-7b-bdhs", "llava-hf/llava-1.5-7b-hf", "bdhs", 2e-5,
           "LLaVA-1.5-7B aligned with offline BDHS (LoRA r=128, α=256)")
_gpu_entry("llava-1.6-7b-bdhs", "llava-hf/llava-v1.6-vicuna-7b-hf", "bdhs", 2e-5,
           "LLaVA-1.6-7B (anyres) aligned with offline BDHS, the BDHS paper's setting (LoRA r=128, α=256)")
_gpu_entry("qwen2-vl-2b-dpo", "Qwen/Qwen2-VL-2B-Instruct", "dpo", 1e-5,
           "Qwen2-VL-2B-Instruct aligned with DPO (+ RPO term, LoRA r=128, α=256)")
_gpu_entry("qwen2.5-vl-3b-bdhs", "Qwen/Qwen2.5-VL-3B-Instruct", "bdhs", 1e-5,
           "Qwen2.5-VL-3B-Instruct aligned with offline BDHS (LoRA r=128, α=256)")
# the thinker is aligned (text out); the talker and vocoder (speech out) are not loaded
_gpu_entry("qwen2.5-omni-3b-dpo", "Qwen/Qwen2.5-Omni-3B", "dpo", 1e-5,
           "Qwen2.5-Omni-3B's thinker aligned with DPO (+ RPO term, LoRA r=128, α=256); text answers",
           modalities=("image", "audio", "video"), tags=("omni",))
_gpu_entry("idefics3-8b-dpo", "HuggingFaceM4/Idefics3-8B-Llama3", "dpo", 1e-5,
           "Idefics3-8B (Llama 3.1, image crops) aligned with DPO (+ RPO term, LoRA r=128, α=256)")
# the image-generation half (VQ-VAE, its embeddings, aligner and head) stays frozen: text answers only
_gpu_entry("janus-pro-1b-dpo", "deepseek-community/Janus-Pro-1B", "dpo", 1e-5,
           "Janus-Pro-1B aligned with DPO on its understanding path (+ RPO term, LoRA r=128, α=256)")
