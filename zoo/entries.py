"""Named zoo entries: what each model is, how it is built, where it is published.

An entry names its backbone, its modalities, the `zoo train` overrides of its recipe and its hub
repo. Names read ``<backbone>.<recipe>`` (``shapes-vlm.dpo``, ``qwen2.5-vl-3b.bdhs``); an SFT base is
the backbone's name alone (``shapes-vlm``). The names used before (``shapes-vlm-dpo`` …) stay as
aliases, and the hub repos keep those names, so earlier pushes keep loading. Embedded entries (the
shapes models) are reproducible on a CPU from the embedded world: ``zoo build NAME`` (`zoo.build`) runs
the recipe (after the entry it starts from) and pushes the result to the local hub. ``{base}`` in an
override is the model folder of the entry named by ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.registry import Registry


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

    def how_to_make(self) -> str:
        """The commands that make this model: ``zoo build`` for an embedded entry, else train + push."""
        if self.embedded:
            return f"zoo build {self.name}"
        run = f"runs/{self.name}"
        return f"zoo train {' '.join(self.recipe)} output_dir={run} (on a GPU), then zoo push {run} --repo {self.repo}"


_PRETRAINED = ("model=pretrained", "model.path={base}")

ENTRIES: Registry[ZooEntry] = Registry("zoo entry")


def register(entry: ZooEntry, aliases: tuple[str, ...] = ()) -> ZooEntry:
    """Add ``entry`` to `ENTRIES` under its name and ``aliases``; its base must be registered first."""
    if entry.name in ENTRIES:
        raise ValueError(f"zoo entry {entry.name!r} is already registered")
    if entry.base is not None and entry.base not in ENTRIES:
        raise ValueError(f"zoo entry {entry.name!r} starts from unknown entry {entry.base!r}")
    return ENTRIES.register(entry.name, entry, aliases=aliases)


def list_models() -> list[ZooEntry]:
    return [entry for _, entry in ENTRIES.items()]


def card_defaults(repo_id: str) -> dict:
    """What the model card of the entry published as ``repo_id`` says about it (nothing for other repos):
    its name, backbone, modalities, and the model it starts from (the base entry's repo, or the HF id)."""
    entry = next((e for _, e in ENTRIES.items() if e.repo == repo_id), None)
    if entry is None:
        return {}
    base = ENTRIES.get(entry.base).repo if entry.base else None if entry.embedded else entry.backbone
    return {"name": entry.name, "base_model": base, "backbone": entry.backbone, "modalities": entry.modalities}


SHAPES_BACKBONE = "composed: ViT (4 image tokens) + Llama d=128"


def _shapes_entry(recipe: str, description: str, tags: tuple[str, ...]) -> ZooEntry:
    """``shapes-vlm.<recipe>``: the SFT base aligned by ``recipe=<recipe>`` (hub repo under its old name)."""
    old = f"shapes-vlm-{recipe.replace('_', '-')}"
    return register(ZooEntry(
        f"shapes-vlm.{recipe.replace('_', '-')}", SHAPES_BACKBONE, ("image",), (f"recipe={recipe}", *_PRETRAINED),
        f"zoo/{old}", base="shapes-vlm", description=description, tags=tags,
    ), aliases=(old,))


register(ZooEntry(
    "shapes-vlm", SHAPES_BACKBONE, ("image",), ("recipe=sft",), "zoo/shapes-vlm",
    description="SFT base on the shapes world (learns the co-occurrence prior)", tags=("sft",),
))
_shapes_entry("dpo", "DPO + RPO term on relative preference pairs (the chosen is better, not right)", ("dpo",))
_shapes_entry("sft_chosen", "the control: SFT on the chosen captions of the same pairs, steps and lr", ("sft", "control"))
_shapes_entry("bdhs", "offline BDHS: rejected written by the base with its image hidden", ("bdhs",))
_shapes_entry("online_bdhs", "online BDHS: rejected written by the policy every step", ("bdhs", "online"))
_shapes_entry("online_dpo", "online DPO: best vs worst of 8 samples by the world's verifier, every step",
              ("dpo", "online"))
_shapes_entry("mixed_dpo", "Mixed-DPO: per example, the online pair with p = 0.5, else the dataset's", ("dpo", "online"))
_shapes_entry("grpo", "GRPO: 8 samples a prompt, the verifier's rewards, group-relative advantages, k3 KL",
              ("grpo", "online"))


# Real backbones: HF-native checkpoints, aligned on GPUs (not embedded: the base weights are downloaded).
# The overrides are starting points for one 80 GB GPU: LoRA on the language model (the BDHS paper used
# r=128 / α=256), media towers frozen (model=hf freezes its family's default: zoo/models/families), the
# LoRA-disabled model as the reference, bf16.
def _gpu_entry(backbone: str, hf_id: str, recipe: str, lr: float, description: str,
               modalities: tuple[str, ...] = ("image",), beta: float = 0.1, tags: tuple[str, ...] = ()) -> ZooEntry:
    """``<backbone>.<recipe>``; its hub repo (and alias) keep the earlier name ``<backbone>-<recipe>``."""
    old = f"{backbone}-{recipe}"
    overrides = (f"recipe={recipe}", "model=hf", f"model.path={hf_id}",
                 "reference=lora_disabled", f"module.objective.hparams.beta={beta}", f"module.optimizer.lr={lr}",
                 "trainer.precision=bf16-mixed", "trainer.accelerator=gpu")
    return register(ZooEntry(f"{backbone}.{recipe}", hf_id, modalities, overrides, f"zoo/{old}",
                             description=description, embedded=False, tags=(recipe, "lora", *tags)), aliases=(old,))


_gpu_entry("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", "bdhs", 2e-5,
           "LLaVA-1.5-7B aligned with offline BDHS (LoRA r=128, α=256)")
_gpu_entry("llava-1.6-7b", "llava-hf/llava-v1.6-vicuna-7b-hf", "bdhs", 2e-5,
           "LLaVA-1.6-7B (anyres) aligned with offline BDHS, the BDHS paper's setting (LoRA r=128, α=256)")
_gpu_entry("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct", "dpo", 1e-5,
           "Qwen2-VL-2B-Instruct aligned with DPO (+ RPO term, LoRA r=128, α=256)")
_gpu_entry("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", "bdhs", 1e-5,
           "Qwen2.5-VL-3B-Instruct aligned with offline BDHS (LoRA r=128, α=256)")
# the thinker is aligned (text out); the talker and vocoder (speech out) are not loaded
_gpu_entry("qwen2.5-omni-3b", "Qwen/Qwen2.5-Omni-3B", "dpo", 1e-5,
           "Qwen2.5-Omni-3B's thinker aligned with DPO (+ RPO term, LoRA r=128, α=256); text answers",
           modalities=("image", "audio", "video"), tags=("omni",))
_gpu_entry("idefics3-8b", "HuggingFaceM4/Idefics3-8B-Llama3", "dpo", 1e-5,
           "Idefics3-8B (Llama 3.1, image crops) aligned with DPO (+ RPO term, LoRA r=128, α=256)")
# the image-generation half (VQ-VAE, its embeddings, aligner and head) stays frozen: text answers only
_gpu_entry("janus-pro-1b", "deepseek-community/Janus-Pro-1B", "dpo", 1e-5,
           "Janus-Pro-1B aligned with DPO on its understanding path (+ RPO term, LoRA r=128, α=256)")


# A reward model on the shapes SFT base (recipe=reward): the Bradley–Terry judge of online alignment
# (pairs=online_dpo_rm), scored by its accuracy on the pairs held out by image.
_shapes_entry("reward", "reward model: Bradley–Terry head on the SFT base; the judge of pairs=online_dpo_rm",
              ("reward",))
# Learning from language feedback (recipe=llf): the base's answers, the world critic's critiques, the base's
# refinements; DPO on refinement ≻ answer. And the reward model trained on those pairs (recipe=llf_reward).
_shapes_entry("llf", "DPO+LLF: the base answers, the world's critic critiques, the base refines; refinement ≻ answer",
              ("dpo", "llf"))
_shapes_entry("llf_reward", "RLHF+LLF's reward model: Bradley–Terry head trained on the LLF pairs", ("reward", "llf"))
