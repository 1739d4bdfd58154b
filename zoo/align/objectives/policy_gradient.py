"""Policy-gradient objectives over a group of K sampled responses per prompt: GRPO and its variants, RLOO.

They are ranked objectives (they see the whole group) registered with ``tokens=True``: besides the
judge's rewards ``lp.scores`` ``[B, K]`` they read the per-token log-probs ``lp.tokens`` ``[B, K, T]`` of the
policy, of the policy that sampled the responses (``old``; None means the current one, detached: one
update per sampled batch, where the ratio is 1 and only its gradient acts) and of the reference.

Notation, per prompt b, response i and response token t (mask m):

* ratio  ρ_t = exp(log π(y_t) − log π_old(y_t));
* surrogate s_t = min(ρ_t · A_i, clip(ρ_t, 1 − ε, 1 + ε_high) · A_i) (PPO's clipped objective);
* KL     k3_t = exp(q_t) − q_t − 1 with q_t = log π_ref(y_t) − log π(y_t) (Schulman's k3 estimator of
  KL(π ‖ π_ref): unbiased, non-negative);
* token loss ℓ_t = −(s_t − β · k3_t).

The variants differ in the advantage A_i and in how token losses are summed:

* ``grpo`` — Shao et al., "DeepSeekMath", arXiv:2402.03300 (Eq. 3): A_i = (r_i − mean(r)) / (std(r) + 1e-4)
  over the group (std with Bessel's correction); the loss is the mean over the group of each response's
  mean token loss (1/K Σ_i 1/|y_i| Σ_t ℓ_t). β = 0.04, ε = ε_high = 0.2 by default.
* ``dr_grpo`` — Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective" (Dr. GRPO),
  arXiv:2503.20783: no division by the std (A_i = r_i − mean(r)) and no division by each response's own
  length: 1/(K · L) Σ_i Σ_t ℓ_t with the constant L = ``max_tokens``. β = 0 by default.
* ``dapo`` — Yu et al., "DAPO", arXiv:2503.14476: GRPO's advantage, token-level aggregation over the whole
  batch (Σ ℓ_t over every token of every response, / the batch's token count; written per prompt so that
  the mean over prompts is that), clip-higher ε_high = 0.28, β = 0. Its dynamic sampling (groups whose
  rewards are all equal carry no advantage and are dropped) is the group source's ``drop_uniform``.
* ``rloo`` — Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
  Human Feedback in LLMs", arXiv:2402.14740: the leave-one-out baseline A_i = r̃_i − 1/(K−1) Σ_{j≠i} r̃_j on
  the KL-penalised reward r̃_i = r_i − β Σ_t (log π(y_t) − log π_ref(y_t)) (the sequence's KL, no
  gradient), and REINFORCE on the whole sequence: 1/K Σ_i −Σ_t s_t (no KL term in the loss). β = 0.05.

The metrics (``pg/…``) are the rewards' mean and within-group std, the share of groups whose rewards are
all equal, the mean |advantage|, the share of tokens whose ratio was clipped, and the mean k3 KL per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.align.objectives.base import GroupLogps, objective

STD_EPS = 1e-4


def _tokens(lp: GroupLogps, name: str):
    if lp.tokens is None:
        raise ValueError(f"objective '{name}' needs per-token log-probs (lp.tokens); PreferenceModule gives them "
                         "to objectives registered with tokens=True")
    if lp.scores is None:
        raise ValueError(f"objective '{name}' needs each response's reward (lp.scores): train it on an online "
                         "group source (pairs=online_group) or scored data")
    return lp.tokens


def _rewards(lp: GroupLogps, name: str) -> Tensor:
    """The rewards in the log-probs' precision, at least float32 (bf16 advantages would round)."""
    return lp.scores.to(torch.promote_types(_tokens(lp, name).policy.dtype, torch.float32))


def group_advantages(rewards: Tensor, scale: bool = True) -> Tensor:
    """GRPO's group-relative advantage ``[B, K]``: reward minus the group mean, divided by the group std
    (+1e-4) when ``scale`` (Dr. GRPO: not)."""
    centred = rewards - rewards.mean(1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(1, keepdim=True) + STD_EPS)


def leave_one_out_advantages(rewards: Tensor) -> Tensor:
    """RLOO's advantage ``[B, K]``: each reward minus the mean of the other K − 1 of its group."""
    k = rewards.shape[1]
    if k < 2:
        raise ValueError("RLOO needs at least 2 responses per prompt")
    return rewards - (rewards.sum(1, keepdim=True) - rewards) / (k - 1)


def _k3(tokens) -> Tensor:
    q = tokens.reference - tokens.policy
    return torch.exp(q) - q - 1


def _surrogate(tokens, advantages: Tensor, epsilon: float, epsilon_high: float) -> tuple[Tensor, Tensor]:
    """(s_t ``[B, K, T]``, clipped ``[B, K, T]`` bool): PPO's clipped surrogate per token."""
    old = tokens.policy.detach() if tokens.old is None else tokens.old
    ratio = torch.exp(tokens.policy - old)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high) * adv
    surrogate = torch.minimum(unclipped, clipped)
    return surrogate, (clipped < unclipped).detach()


def _token_losses(lp: GroupLogps, name: str, advantages: Tensor, beta: float, epsilon: float,
                  epsilon_high: float) -> tuple[Tensor, Tensor]:
    tokens = _tokens(lp, name)
    surrogate, _ = _surrogate(tokens, advantages, epsilon, epsilon_high)
    loss = -surrogate
    if beta:
        if tokens.reference is None:
            raise ValueError(f"objective '{name}' with beta {beta} needs the reference's token log-probs: choose "
                             "reference=frozen or lora_disabled (or beta=0)")
        loss = loss + beta * _k3(tokens)
    mask = tokens.mask.to(loss.dtype)
    return loss * mask, mask


def _needs_reference(default_beta: float):
    return lambda hparams: float(hparams.get("beta", default_beta)) > 0


def pg_metrics(lp: GroupLogps, *, beta: float = 0.0, epsilon: float = 0.2, epsilon_high: float = 0.2,
               **_) -> dict[str, Tensor]:
    """The ``pg/…`` metrics of a group batch (module docstring), detached."""
    with torch.no_grad():
        tokens, rewards = lp.tokens, lp.scores.detach().float()
        mask = tokens.mask.bool()
        adv = group_advantages(rewards)
        _, clipped = _surrogate(tokens, adv, epsilon, epsilon_high)
        out = {
            "pg/reward": rewards.mean(),
            "pg/reward_std": rewards.std(1).mean() if rewards.shape[1] > 1 else rewards.new_zeros(()),
            "pg/uniform_groups": (rewards.max(1).values == rewards.min(1).values).float().mean(),
            "pg/advantage_abs": adv.abs().mean(),
            "pg/clipped": (clipped & mask).sum() / mask.sum().clamp(min=1),
        }
        if tokens.reference is not None:
            out["pg/kl"] = (_k3(tokens) * mask).sum() / mask.sum().clamp(min=1)
        return out


@objective("grpo", ranked=True, tokens=True, needs_reference=_needs_reference(0.04), metrics=pg_metrics)
def grpo(lp: GroupLogps, *, beta=0.04, epsilon=0.2, epsilon_high=0.2) -> Tensor:
    """GRPO (module docstring): 1/K Σ_i 1/|y_i| Σ_t ℓ_t with the std-scaled group advantage; ``[B]``."""
    loss, mask = _token_losses(lp, "grpo", group_advantages(_rewards(lp, "grpo")), beta, epsilon, epsilon_high)
    per_response = loss.sum(-1) / mask.sum(-1).clamp(min=1)
    return per_response.mean(1)


@objective("dr_grpo", ranked=True, tokens=True, needs_reference=_needs_reference(0.0), metrics=pg_metrics)
def dr_grpo(lp: GroupLogps, *, beta=0.0, epsilon=0.2, epsilon_high=0.2, max_tokens=48) -> Tensor:
    """Dr. GRPO (module docstring): 1/(K · max_tokens) Σ_i Σ_t ℓ_t with the unscaled advantage; ``[B]``."""
    loss, _ = _token_losses(lp, "dr_grpo", group_advantages(_rewards(lp, "dr_grpo"), scale=False), beta, epsilon,
                            epsilon_high)
    return loss.sum((1, 2)) / (loss.shape[1] * max_tokens)


@objective("dapo", ranked=True, tokens=True, needs_reference=_needs_reference(0.0), metrics=pg_metrics)
def dapo(lp: GroupLogps, *, beta=0.0, epsilon=0.2, epsilon_high=0.28) -> Tensor:
    """DAPO (module docstring): token-level mean over the batch, clip-higher; ``[B]`` whose mean is it."""
    loss, mask = _token_losses(lp, "dapo", group_advantages(_rewards(lp, "dapo")), beta, epsilon, epsilon_high)
    batch_tokens = mask.sum().clamp(min=1)
    return loss.sum((1, 2)) * (loss.shape[0] / batch_tokens)


@objective("rloo", ranked=True, tokens=True, needs_reference=_needs_reference(0.05), metrics=pg_metrics)
def rloo(lp: GroupLogps, *, beta=0.05, epsilon=0.2, epsilon_high=0.2) -> Tensor:
    """RLOO (module docstring): REINFORCE on the sequence with the leave-one-out baseline on the
    KL-penalised reward; ``[B]``."""
    tokens = _tokens(lp, "rloo")
    rewards = _rewards(lp, "rloo")
    if beta:
        if tokens.reference is None:
            raise ValueError(f"objective 'rloo' with beta {beta} needs the reference's token log-probs: choose "
                             "reference=frozen or lora_disabled (or beta=0)")
        sequence_kl = ((tokens.policy - tokens.reference) * tokens.mask).sum(-1).detach()
        rewards = rewards - beta * sequence_kl.to(rewards.dtype)
    surrogate, _ = _surrogate(tokens, leave_one_out_advantages(rewards), epsilon, epsilon_high)
    return -(surrogate * tokens.mask.to(surrogate.dtype)).sum(-1).mean(1)
