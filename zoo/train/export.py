"""``zoo export``: a run's checkpoint as a model folder — the weights of any saved step, LoRA merged.

A run writes ``model/`` once, at its end; its checkpoints hold the policy at every ``checkpoint_every``
steps (and at the last). `export_checkpoint` rebuilds the run's policy from its ``recipe.yaml`` (the same
backbone, LoRA adapters included), loads the checkpoint's policy weights into it (strictly: every tensor
must match) and writes a model folder as the run does (`Backbone.save_pretrained`: LoRA folded into the
base weights, the adapter alone in ``adapter/``). It also repairs LoRA runs saved before that rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

POLICY = "policy."  # the Lightning module's attribute holding the trained policy (the reference is not saved)
HEAD = "head."  # a reward model's scalar head (`zoo.train.modules.RewardModule`)


def find_checkpoint(run_dir: str | Path, which: str = "last") -> Path:
    """``which``: ``last``, a step number (``500``) or a checkpoint file; an error lists what the run holds."""
    run = Path(run_dir)
    if Path(which).suffix == ".ckpt":
        path = Path(which)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path}")
        return path
    folder = run / "checkpoints"
    held = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    if which == "last":
        chosen = [p for p in held if p.name == "last.ckpt"]
    elif which.isdigit():
        chosen = [p for p in held if re.fullmatch(rf"step-(step=)?{int(which)}\.ckpt", p.name)]
    else:
        raise ValueError(f"--checkpoint takes last, a step number or a .ckpt file, not {which!r}")
    if not chosen:
        names = ", ".join(p.name for p in held) or "none"
        raise FileNotFoundError(f"{run} has no checkpoint {which!r} (checkpoints: {names})")
    return chosen[0]


def export_checkpoint(run_dir: str | Path, output: str | Path, which: str = "last") -> Path:
    """Write the policy of checkpoint ``which`` of the run ``run_dir`` as a model folder ``output``."""
    run = Path(run_dir)
    recipe = run / "recipe.yaml"
    if not recipe.exists():
        raise FileNotFoundError(f"{run} is not a run folder (no recipe.yaml): export a folder `zoo train` wrote")
    checkpoint = find_checkpoint(run, which)
    cfg = OmegaConf.load(recipe)
    policy = instantiate(cfg.model)  # the run's backbone (and its LoRA wrapping), before training
    # a Lightning checkpoint pickles its loops' and callbacks' state: load only checkpoints of your own runs
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    weights = {k[len(POLICY):]: v for k, v in state.items() if k.startswith(POLICY)}
    if not weights:
        raise ValueError(f"{checkpoint} holds no policy weights (keys start {sorted(state)[:3]})")
    missing, unexpected = policy.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{checkpoint} does not fit the model of {recipe}: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    head = {k[len(HEAD):]: v for k, v in state.items() if k.startswith(HEAD)}
    if head:  # a reward model's run (RewardModule): its folder holds the head too
        from zoo.models.reward import RewardModel

        reward = RewardModel(policy)
        reward.head.load_state_dict(head)
        reward.save_pretrained(output)
        return Path(output)
    policy.backbone.save_pretrained(output)
    return Path(output)
