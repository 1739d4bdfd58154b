"""LightningModules. They receive their parts (policy, optimizer as a partial) and hold no data logic."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from zoo.align.objectives import GroupLogps, Objective, TokenLogps, stack_tokens
from zoo.align.pairs import PairSource
from zoo.align.reference import NoReference, Reference
from zoo.models.distributed import data_parallel_mean, is_sharded, shard_layers
from zoo.models.policy import Policy


def warmup_cosine(warmup_steps: int, total_steps: int | Callable[[], int], min_ratio: float = 0.1
                  ) -> Callable[[int], float]:
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate. ``total_steps`` may be a
    function, asked only once a step past the warm-up needs it."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        if step == warmup_steps:
            progress = 0.0  # whatever the total
        else:
            total = total_steps() if callable(total_steps) else total_steps
            progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class PolicyModule(L.LightningModule):
    """Shared plumbing: the policy, the optimizer and schedule, saving the model folder."""

    def __init__(self, policy: Policy, optimizer: Callable, warmup_steps: int = 0, min_lr_ratio: float = 0.1,
                 logps_chunk: int = 0, gradient_checkpointing: bool = False):
        super().__init__()
        if isinstance(logps_chunk, bool) or not isinstance(logps_chunk, int) or logps_chunk < 0:
            raise ValueError(f"module.logps_chunk must be an integer >= 0 (0: the full logits), not {logps_chunk!r}")
        policy.logps_chunk = logps_chunk  # > 0: response log-probs this many tokens at a time (Policy.logps_chunk)
        if gradient_checkpointing:  # each transformer layer's activations recomputed in backward instead of kept
            if not getattr(policy.model, "supports_gradient_checkpointing", False):
                raise ValueError(f"module.gradient_checkpointing: {type(policy.model).__name__} does not support it")
            policy.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.policy = policy
        self.optimizer_factory = optimizer
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio

    def on_fit_start(self) -> None:
        self.policy.train()  # a policy loaded from a folder comes in eval mode

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        trainer = self.trainer
        # without max_steps, Lightning's estimate is asked for at the first step, not here: estimating builds the
        # train loader, and one built before a checkpoint is restored never gets its saved position (Lightning
        # issue #20550), so a resumed run would start its epoch over
        total = trainer.max_steps if trainer.max_steps > 0 else functools.cache(lambda: int(trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(self.warmup_steps, total, self.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def step(self, batch, stage: str) -> torch.Tensor:
        """The loss of one batch, logged under ``stage`` ("train" / "val")."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self.step(batch, "val")

    def configure_model(self) -> None:
        """Under ``strategy=fsdp`` (`zoo.train.strategies.FSDP`): shard the policy layer by layer, then every other
        trainable part (FSDP2 syncs the gradients of sharded parameters only). Other strategies: nothing."""
        from zoo.train.strategies import FSDP

        strategy = self._trainer.strategy if self._trainer is not None else None
        if not isinstance(strategy, FSDP) or is_sharded(self.policy.model):
            return
        from torch.distributed.fsdp import fully_shard

        mesh, reshard = strategy.data_parallel_mesh, strategy.reshard_after_forward
        shard_layers(self.policy.model, mesh, reshard_after_forward=reshard)
        for child in self.children():
            if child is not self.policy and any(p.requires_grad for p in child.parameters()):
                fully_shard(child, mesh=mesh, reshard_after_forward=reshard)

    def save_model(self, path: str | Path, state_dict: dict | None = None) -> Path:
        """Write the model folder. ``state_dict``: this module's whole weights when they are sharded
        (`zoo.models.distributed.full_state_dict`); None: the weights it holds."""
        self.policy.backbone.save_pretrained(path, state_dict=_under(state_dict, "policy.model."))
        return Path(path)


class SFTModule(PolicyModule):
    """Supervised fine-tuning: mean negative log-likelihood of the response tokens."""

    def step(self, batch, stage: str) -> torch.Tensor:
        out = self.policy.sequence_logps(batch)
        n_tokens = out.mask.sum().clamp(min=1)
        loss = -out.token_logps.sum() / n_tokens
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss on examples {batch['example_index'][:8]}…")
        bs = batch["input_ids"].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=stage == "train", on_epoch=stage != "train",
                 sync_dist=True)
        if stage == "train":
            self.log("train/tokens", n_tokens.float(), batch_size=bs, reduce_fx="sum", on_step=False, on_epoch=True,
                     sync_dist=True)
        return data_parallel_mean(loss, n_tokens)  # under DDP: the mean over every rank's tokens


class PreferenceModule(PolicyModule):
    """Preference optimisation from three parts, each built by Hydra from its own config group:

    * ``objective`` (`zoo.align.objectives.Objective`, ``recipes/objective/``): the loss over the
      group's log-probs;
    * ``reference`` (`zoo.align.reference.Reference`, ``recipes/reference/``): frozen copy, LoRA
      disabled, cached log-probs, or none;
    * ``pairs`` (`zoo.align.pairs.PairSource`, ``recipes/pairs/``): what turns a data batch into the
      `GroupBatch` to train on — offline data, BDHS offline, BDHS online, ….

    One step: ``pairs`` gives the group batch, the policy encodes its media once, `Policy.group_logps`
    scores the K responses (prefix shared), the reference scores them (reusing the media where exact),
    the objective returns the loss and the metrics. No subclass per method.
    """

    def __init__(self, policy: Policy, optimizer: Callable, objective: Objective, reference: Reference | None = None,
                 pairs: PairSource | None = None, warmup_steps: int = 0, min_lr_ratio: float = 0.1,
                 logps_chunk: int = 0, gradient_checkpointing: bool = False):
        super().__init__(policy, optimizer, warmup_steps, min_lr_ratio, logps_chunk, gradient_checkpointing)
        self.objective = objective
        self.pairs = pairs if pairs is not None else PairSource()
        if gradient_checkpointing and getattr(self.pairs, "layout", None) == "shared_prefix":
            raise ValueError("module.gradient_checkpointing recomputes each layer without its KV cache, which the "
                             "shared prompt prefix needs: set module.pairs.layout=concat (or turn it off)")
        reference = reference if reference is not None else NoReference()
        if not reference.provides_logps and objective.needs_reference:
            raise ValueError(f"{objective!r} needs a reference model: choose reference=frozen, cached or lora_disabled")
        if reference.precomputed and self.pairs.online:
            raise ValueError(f"the pair source {type(self.pairs).__name__} writes new responses every step: their "
                             "reference log-probs cannot be cached (choose reference=frozen or lora_disabled)")
        self.reference = reference.attach(policy)  # now, before a checkpoint can overwrite the initial weights

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.reference.prepare(self.policy, self.trainer.datamodule, resuming=self.trainer.ckpt_path is not None)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean objective over the batch's groups and its metrics (no logging: usable outside a Trainer)."""
        groups = self.pairs(self.policy, batch, step=self.global_step)
        media = self.policy.encode_media(groups.media_batch)
        slots = self.policy.group_logps(groups, media)
        tokens = None
        if self.objective.needs_tokens:  # policy-gradient terms: per-token ratios and KL
            ref_tokens = self.reference.group_token_logps(self.policy, groups, media)
            tokens = TokenLogps(policy=stack_tokens([s.token_logps for s in slots]),
                                mask=stack_tokens([s.mask for s in slots]), reference=ref_tokens,
                                old=groups.behaviour)
            reference = None if ref_tokens is None else ref_tokens.sum(-1)
        else:
            reference = self.reference.group_logps(self.policy, groups, media)
        lp = GroupLogps(policy=torch.stack([s.logps for s in slots], 1), reference=reference,
                        lengths=torch.stack([s.lengths for s in slots], 1), scores=groups.scores, tokens=tokens)
        losses, metrics = self.objective(lp, groups.pairs, groups.pair_names)
        # on the loss's device: synced over ranks when logged (NCCL reduces device tensors only)
        metrics.update({k: torch.as_tensor(float(v), device=losses.device) for k, v in self.pairs.metrics.items()})
        return losses.mean(), metrics

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.reference.on_step(self.policy, self.global_step)  # after the optimizer step (TR-DPO's refresh)

    def step(self, batch, stage: str) -> torch.Tensor:
        loss, metrics = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss on examples {batch.example_index[:8]}…")
        bs = len(batch)
        on_step = stage == "train"
        # sync_dist: under DDP the logged value is the mean over the ranks' batches (a no-op on one process)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=on_step, on_epoch=not on_step,
                 sync_dist=True)
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=bs, on_step=on_step,
                      on_epoch=not on_step, sync_dist=True)
        return data_parallel_mean(loss, bs)  # under DDP: the mean over every rank's groups


class RewardModule(PolicyModule):
    """A reward model (`zoo.models.reward.RewardModel`: the policy's backbone + a scalar head on its last hidden
    state) trained on preference pairs with the Bradley–Terry loss −log σ(r_chosen − r_rejected) per pair of the
    batch's ``pairs`` (ranked rows: best vs worst), plus ``center`` · (r_chosen + r_rejected)², an optional
    term that keeps the rewards near zero (their offset is otherwise free; Eisenstein et al. 2023,
    arXiv:2312.09244). Logged: ``loss``, ``rewards/accuracy`` (fraction with r_chosen > r_rejected),
    ``rewards/margin``, ``rewards/chosen``, ``rewards/rejected``; ``val/…`` on the held-out pairs.

    ``pairs``: an offline pair source (its layout: ``shared_prefix`` scores each prompt once, ``concat`` runs
    the K full sequences). ``head_lr``: the head's learning rate (default: the optimizer's). The model folder
    written at the end is a reward-model folder (`RewardModel.save_pretrained`).
    """

    def __init__(self, policy: Policy, optimizer: Callable, pairs: PairSource | None = None, center: float = 0.0,
                 head_lr: float | None = None, warmup_steps: int = 0, min_lr_ratio: float = 0.1):
        from zoo.models.reward import RewardModel

        super().__init__(policy, optimizer, warmup_steps, min_lr_ratio)
        self.pairs = pairs if pairs is not None else PairSource()
        if self.pairs.online:
            raise ValueError(f"a reward model trains on annotated pairs: {type(self.pairs).__name__} writes its own "
                             "(choose pairs=offline)")
        if isinstance(center, bool) or not isinstance(center, (int, float)) or center < 0:
            raise ValueError(f"module.center must be a number >= 0, not {center!r}")
        if head_lr is not None and (isinstance(head_lr, bool) or not isinstance(head_lr, (int, float)) or head_lr <= 0):
            raise ValueError(f"module.head_lr must be a number > 0 or null, not {head_lr!r}")
        self.center, self.head_lr = float(center), head_lr
        reward = RewardModel(policy)
        self.head = reward.head  # registered here once; the policy is registered by PolicyModule
        self.__dict__["reward"] = reward  # not a submodule: its parameters are the policy's and the head's

    def configure_optimizers(self):
        if self.head_lr is None:
            return super().configure_optimizers()
        factory = self.optimizer_factory
        head = {id(p) for p in self.head.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in head]
        self.optimizer_factory = lambda params: factory(params=[{"params": rest},
                                                                {"params": list(self.head.parameters()),
                                                                 "lr": self.head_lr}])
        try:
            return super().configure_optimizers()
        finally:
            self.optimizer_factory = factory

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean Bradley–Terry loss over the batch's pairs and the reward metrics (no logging)."""
        groups = self.pairs(self.policy, batch, step=self.global_step)
        rewards = self.reward.group_rewards(groups)  # [B, K]
        losses, chosen, rejected = [], [], []
        for c, r, weight in groups.pairs:
            losses.append(weight * bradley_terry(rewards[:, c], rewards[:, r]))
            chosen.append(rewards[:, c])
            rejected.append(rewards[:, r])
        loss = torch.stack(losses).sum(0).mean()
        if self.center:
            loss = loss + self.center * ((chosen[0] + rejected[0]) ** 2).mean()
        rc, rr = torch.cat(chosen).detach(), torch.cat(rejected).detach()
        metrics = {"rewards/accuracy": (rc > rr).float().mean(), "rewards/margin": (rc - rr).mean(),
                   "rewards/chosen": rc.mean(), "rewards/rejected": rr.mean()}
        return loss, metrics

    def step(self, batch, stage: str) -> torch.Tensor:
        loss, metrics = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss on examples {batch.example_index[:8]}…")
        bs, on_step = len(batch), stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=on_step, on_epoch=not on_step,
                 sync_dist=True)
        self.log(f"{stage}/rewards/accuracy", metrics.pop("rewards/accuracy"), prog_bar=not on_step, batch_size=bs,
                 on_step=on_step, on_epoch=not on_step, sync_dist=True)
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=bs, on_step=on_step,
                      on_epoch=not on_step, sync_dist=True)
        return data_parallel_mean(loss, bs)

    def save_model(self, path: str | Path, state_dict: dict | None = None) -> Path:
        return self.reward.save_pretrained(path, model_state=_under(state_dict, "policy.model."),
                                           head_state=_under(state_dict, "head."))


def _under(state_dict: dict | None, prefix: str) -> dict | None:
    """The entries of a module's state dict under ``prefix``, the prefix removed (None stays None)."""
    if state_dict is None:
        return None
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def bradley_terry(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """−log σ(r_chosen − r_rejected) per pair (Bradley & Terry, 1952): the reward model's loss."""
    return -torch.nn.functional.logsigmoid(chosen - rejected)
