"""Preference-optimisation objectives: small, pure loss functions over sequence log-probabilities.

Contract (pairwise objectives, registry ``OBJECTIVES``)
-------------------------------------------------------
Every pairwise objective has the signature::

    f(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *,
      beta=0.1, <its own hparams>, chosen_lengths=None, rejected_lengths=None)
        -> (loss [B], metrics: dict[str, Tensor])

Inputs (all ``[B]`` tensors, one entry per preference pair):

* ``policy_chosen`` / ``policy_rejected`` -- log pi_theta(y|x) of the chosen / rejected response under the
  policy, **summed** over the response tokens (prompt tokens excluded).
* ``ref_chosen`` / ``ref_rejected`` -- the same under the frozen reference model. Reference-free objectives
  (``simpo``, ``sft``) ignore them in the loss and accept ``None``; the metrics then treat the reference as 0.
* ``chosen_lengths`` / ``rejected_lengths`` -- number of response tokens of each sequence (``[B]``, int or
  float). Objectives that need them (``simpo``; ``sft`` for the chosen side) raise without them; ``ipo`` uses
  them when given.
* ``beta`` -- the inverse temperature / KL-regularisation strength (its exact role is given per objective).

Outputs: ``loss`` is the **per-pair** loss ``[B]`` (reduce it yourself, e.g. ``.mean()``); ``metrics`` is a
dict of detached scalar tensors, the same keys for every objective, computed by :func:`preference_metrics`.

Objectives are pure: no state, no parameters, no reduction, no device or dtype changes. Stateful quantities
that some papers keep (e.g. BCO's running reward mean) are explicit arguments.

Ranked objectives (registry ``RANKED_OBJECTIVES``) take ``[B, K]`` log-probs of K candidate responses per
prompt and their ``scores [B, K]`` (higher is better); see :func:`lipo_lambda` and :func:`pro`.
:func:`curriculum_pairs` orders pairs of a ranked list easy-to-hard for Curry-DPO.

:func:`combine` builds a weighted sum of pairwise objectives with the same signature.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from modalities.registry import Registry

__all__ = [
    "OBJECTIVES",
    "RANKED_OBJECTIVES",
    "preference_metrics",
    "ranked_metrics",
    "combine",
    "curriculum_pairs",
]

Objective = Callable[..., tuple[Tensor, dict[str, Tensor]]]

OBJECTIVES: Registry[Objective] = Registry("objective")
"""Pairwise preference objectives, by name (see the module docstring for the contract)."""

RANKED_OBJECTIVES: Registry[Objective] = Registry("ranked objective")
"""Objectives over K ranked responses per prompt: ``f(policy [B,K], ref [B,K] | None, scores [B,K], *, beta, ...)``."""


# --------------------------------------------------------------------------------------------------- metrics


def preference_metrics(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor | None,
    ref_rejected: Tensor | None,
    beta: float,
) -> dict[str, Tensor]:
    """Per-step metrics shared by all pairwise objectives (detached scalar means over the batch).

    * ``rewards/chosen``, ``rewards/rejected`` -- implicit DPO rewards beta * (log pi - log pi_ref).
    * ``rewards/margin`` -- rewards/chosen - rewards/rejected.
    * ``rewards/accuracy`` -- fraction of pairs whose chosen reward is strictly larger.
    * ``logps/chosen``, ``logps/rejected`` -- the summed policy log-probs.
    * ``kl`` -- a per-sequence estimate of KL(pi || pi_ref): the mean of (log pi - log pi_ref) over the chosen
      and the rejected sequences of the batch. It is the usual Monte-Carlo estimator E_y[log pi/pi_ref], but
      evaluated on the dataset's responses rather than on samples from pi, so it is a drift indicator, not an
      unbiased KL (it can be negative).

    A missing reference (``None``) counts as 0 (reference-free objectives).
    """
    with torch.no_grad():
        pc, pr = policy_chosen.detach(), policy_rejected.detach()
        rc = ref_chosen.detach() if ref_chosen is not None else torch.zeros_like(pc)
        rr = ref_rejected.detach() if ref_rejected is not None else torch.zeros_like(pr)
        chosen_ratio, rejected_ratio = pc - rc, pr - rr
        rw_c, rw_r = beta * chosen_ratio, beta * rejected_ratio
        return {
            "rewards/chosen": rw_c.mean(),
            "rewards/rejected": rw_r.mean(),
            "rewards/margin": (rw_c - rw_r).mean(),
            "rewards/accuracy": (rw_c > rw_r).float().mean(),
            "logps/chosen": pc.mean(),
            "logps/rejected": pr.mean(),
            "kl": torch.cat([chosen_ratio, rejected_ratio]).mean(),
        }


def _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
    if ref_chosen is None or ref_rejected is None:
        raise ValueError("this objective needs reference log-probs (ref_chosen, ref_rejected)")
    return policy_chosen - ref_chosen, policy_rejected - ref_rejected


def _need_lengths(name: str, **lengths):
    for key, value in lengths.items():
        if value is None:
            raise ValueError(f"objective '{name}' needs {key} (number of response tokens per sequence)")


def _per_token(logps: Tensor, lengths) -> Tensor:
    """Divide summed log-probs by the response length (clamped to >= 1, as TRL does)."""
    lengths = torch.as_tensor(lengths, device=logps.device)
    return logps / lengths.to(logps.dtype).clamp(min=1.0)


# ------------------------------------------------------------------------------------------ pairwise losses
# In all of them: h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)) is the log-ratio margin.


@OBJECTIVES.register("sigmoid")
def sigmoid(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """DPO: -log sigmoid(beta * h).

    Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    arXiv:2305.18290. ``beta`` is the KL-regularisation strength of the underlying RLHF problem.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = -F.logsigmoid(beta * (cr - rr))
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("cdpo")
def cdpo(
    policy_chosen,
    policy_rejected,
    ref_chosen,
    ref_rejected,
    *,
    beta=0.1,
    label_smoothing=0.1,
    chosen_lengths=None,
    rejected_lengths=None,
):
    """Conservative DPO (label smoothing): -(1-eps) log sigmoid(beta*h) - eps log sigmoid(-beta*h).

    Mitchell, "A note on DPO with noisy preferences & relationship to IPO" (2023 note, no arXiv id;
    https://ericmitchell.ai/cdpo.pdf). ``label_smoothing`` (eps, in [0, 0.5]) is the assumed probability that a
    preference label is flipped; eps = 0 is DPO.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    logits = beta * (cr - rr)
    loss = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("robust")
def robust(
    policy_chosen,
    policy_rejected,
    ref_chosen,
    ref_rejected,
    *,
    beta=0.1,
    label_smoothing=0.1,
    chosen_lengths=None,
    rejected_lengths=None,
):
    """Robust DPO: [-(1-eps) log sigmoid(beta*h) + eps log sigmoid(-beta*h)] / (1 - 2 eps).

    Chowdhury et al., "Provably Robust DPO: Aligning Language Models with Noisy Feedback", arXiv:2403.00409.
    An unbiased estimate of the clean DPO loss under label-flip rate ``label_smoothing`` (eps, in [0, 0.5)).
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust: label_smoothing must lie in [0, 0.5), got {label_smoothing}")
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    logits = beta * (cr - rr)
    loss = (-(1 - label_smoothing) * F.logsigmoid(logits) + label_smoothing * F.logsigmoid(-logits)) / (
        1 - 2 * label_smoothing
    )
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("ipo")
def ipo(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """IPO: (h' - 1/(2 beta))^2, with ``beta`` the paper's tau.

    Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
    arXiv:2310.12036 (Eq. 17). Length normalisation (TRL's convention, which the IPO authors confirmed to TRL):
    when both ``chosen_lengths`` and ``rejected_lengths`` are given, each log-ratio is divided by its own
    response length before taking the difference, h' = (log pi/pi_ref)(y_w)/|y_w| - (log pi/pi_ref)(y_l)/|y_l|;
    without lengths h' = h (summed log-probs).
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    if chosen_lengths is not None and rejected_lengths is not None:
        cr, rr = _per_token(cr, chosen_lengths), _per_token(rr, rejected_lengths)
    loss = (cr - rr - 1 / (2 * beta)) ** 2
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("hinge")
def hinge(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """Hinge loss on the log-ratio margin: max(0, 1 - beta * h).

    SLiC-HF: Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", arXiv:2305.10425;
    in the reference-normalised form of RSO: Liu et al., "Statistical Rejection Sampling Improves Preference
    Optimization", arXiv:2309.06657. 1/``beta`` is the margin.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = torch.relu(1 - beta * (cr - rr))
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("sppo_hard")
def sppo_hard(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """SPPO with hard win probabilities: (r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2, r = log pi/pi_ref.

    Wu et al., "Self-Play Preference Optimization for Language Model Alignment", arXiv:2405.00675 (Eq. 4.7 of
    Algorithm 1 with P(y_w wins) = 1 and P(y_l wins) = 0). ``beta`` is the paper's 1/eta.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = (cr - 0.5 / beta) ** 2 + (rr + 0.5 / beta) ** 2
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("nca_pair")
def nca_pair(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """NCA (pairwise): -log sigmoid(r_w) - 1/2 log sigmoid(-r_w) - 1/2 log sigmoid(-r_l), r = beta log pi/pi_ref.

    Chen et al., "Noise Contrastive Alignment of Language Models with Explicit Rewards", arXiv:2402.05369.
    Unlike DPO it optimises absolute likelihoods, so the chosen log-prob does not drift down.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    rw_c, rw_r = beta * cr, beta * rr
    loss = -F.logsigmoid(rw_c) - 0.5 * F.logsigmoid(-rw_c) - 0.5 * F.logsigmoid(-rw_r)
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("bco_pair")
def bco_pair(
    policy_chosen,
    policy_rejected,
    ref_chosen,
    ref_rejected,
    *,
    beta=0.1,
    delta=0.0,
    chosen_lengths=None,
    rejected_lengths=None,
):
    """BCO (pairwise): -log sigmoid(r_w - delta) - log sigmoid(-(r_l - delta)), r = beta log pi/pi_ref.

    Jung et al., "Binary Classifier Optimization for Large Language Model Alignment", arXiv:2404.04656.
    ``delta`` is the paper's reward shift: a running mean of the rewards of chosen and rejected responses,
    kept by the caller (e.g. an EMA of ``(rewards/chosen + rewards/rejected) / 2``); 0 disables it.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    rw_c, rw_r = beta * cr, beta * rr
    loss = -F.logsigmoid(rw_c - delta) - F.logsigmoid(-(rw_r - delta))
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("apo_zero")
def apo_zero(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """APO-zero: (1 - sigmoid(r_w)) + sigmoid(r_l), r = beta log pi/pi_ref.

    D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive Revisions: Addressing
    Underspecification in Alignment", arXiv:2408.06266 (Eq. 7). For chosen outputs better than the policy's
    own: raises the chosen likelihood and lowers the rejected one.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = (1 - torch.sigmoid(beta * cr)) + torch.sigmoid(beta * rr)
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("apo_down")
def apo_down(
    policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, chosen_lengths=None, rejected_lengths=None
):
    """APO-down: sigmoid(r_w) + (1 - sigmoid(r_w - r_l)), r = beta log pi/pi_ref.

    D'Oosterlinck et al., arXiv:2408.06266 (Eq. 8; see :func:`apo_zero`). For chosen outputs worse than the
    policy's own: lowers both likelihoods, the rejected one more.
    """
    cr, rr = _ratios(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    loss = torch.sigmoid(beta * cr) + (1 - torch.sigmoid(beta * (cr - rr)))
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("simpo")
def simpo(
    policy_chosen,
    policy_rejected,
    ref_chosen=None,
    ref_rejected=None,
    *,
    beta=0.1,
    gamma=0.5,
    chosen_lengths=None,
    rejected_lengths=None,
):
    """SimPO: -log sigmoid(beta * (log pi(y_w)/|y_w| - log pi(y_l)/|y_l|) - gamma). Reference-free.

    Meng et al., "SimPO: Simple Preference Optimization with a Reference-Free Reward", arXiv:2405.14734.
    Needs both lengths. ``gamma`` is the target reward margin (the paper's gamma, not gamma/beta; TRL's
    ``simpo_gamma``). The paper uses beta around 2-10, much larger than DPO's; the default here is the shared
    0.1, so set it. The reference log-probs are ignored by the loss (they only feed the metrics).
    """
    _need_lengths("simpo", chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
    avg_c, avg_r = _per_token(policy_chosen, chosen_lengths), _per_token(policy_rejected, rejected_lengths)
    loss = -F.logsigmoid(beta * (avg_c - avg_r) - gamma)
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


@OBJECTIVES.register("sft")
def sft(
    policy_chosen,
    policy_rejected,
    ref_chosen=None,
    ref_rejected=None,
    *,
    beta=0.1,
    rpo_alpha=1.0,
    chosen_lengths=None,
    rejected_lengths=None,
):
    """SFT term of RPO: rpo_alpha * (-log pi(y_w) / |y_w|), the per-token NLL of the chosen response.

    Pang et al., "Iterative Reasoning Preference Optimization", arXiv:2404.19733 (the NLL term of Eq. 1, which is
    length-normalised there too). Needs ``chosen_lengths``. ``rpo_alpha`` is the paper's alpha (the weight of
    the NLL term); within :func:`combine` the combination weight multiplies it. Per sequence, this equals TRL's
    ``sft`` loss type for one pair; over a batch TRL averages over all chosen tokens instead (token-weighted),
    which differs when lengths differ.
    """
    _need_lengths("sft", chosen_lengths=chosen_lengths)
    loss = -rpo_alpha * _per_token(policy_chosen, chosen_lengths)
    return loss, preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


# --------------------------------------------------------------------------------------------- combination


def _hparams_of(fn: Callable) -> set[str]:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in {"chosen_lengths", "rejected_lengths"}
    }


def combine(weights: Mapping[str, float], registry: Registry[Objective] = OBJECTIVES, **hparams) -> Objective:
    """A weighted sum of registered objectives with the pairwise signature, e.g. RPO::

        loss_fn = combine({"sigmoid": 1.0, "sft": 0.2}, beta=0.1)
        loss, metrics = loss_fn(pc, pr, rc, rr, chosen_lengths=lc, rejected_lengths=lr)

    ``weights`` maps objective names to weights. ``hparams`` are shared defaults; each objective receives only
    the hparams it declares (so ``beta`` reaches all of them, ``gamma`` only ``simpo``), and keyword arguments
    given at call time override them. An hparam no objective declares is an error.

    The result returns ``loss = sum_k w_k * loss_k`` ``[B]`` and metrics: the shared
    :func:`preference_metrics` (unprefixed, under the combined ``beta``) plus ``"<name>/loss"`` (the
    unweighted mean loss of each term) and ``"<name>/<metric>"`` for every metric of each term.
    """
    if not weights:
        raise ValueError("combine: give at least one objective")
    fns = {name: registry.get(name) for name in weights}
    accepted = {name: _hparams_of(fn) for name, fn in fns.items()}
    known = set().union(*accepted.values())
    unknown = set(hparams) - known
    if unknown:
        raise TypeError(f"combine: no objective among {sorted(fns)} takes {sorted(unknown)}")

    def combined(
        policy_chosen, policy_rejected, ref_chosen=None, ref_rejected=None, *, chosen_lengths=None,
        rejected_lengths=None, **overrides,
    ):
        bad = set(overrides) - known
        if bad:
            raise TypeError(f"combined objective: no objective among {sorted(fns)} takes {sorted(bad)}")
        merged = {**hparams, **overrides}
        total, metrics = None, {}
        for name, fn in fns.items():
            kwargs = {k: v for k, v in merged.items() if k in accepted[name]}
            loss, m = fn(
                policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths, **kwargs,
            )
            term = weights[name] * loss
            total = term if total is None else total + term
            metrics[f"{name}/loss"] = loss.detach().mean()
            metrics.update({f"{name}/{k}": v for k, v in m.items()})
        beta = merged.get("beta", 0.1)
        metrics.update(preference_metrics(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta))
        return total, metrics

    combined.__name__ = "combine(" + ", ".join(f"{k}={v}" for k, v in weights.items()) + ")"
    combined.weights = dict(weights)
    return combined


# ------------------------------------------------------------------------------------------ ranked objectives


def _ranked_rewards(policy: Tensor, ref: Tensor | None, beta: float, lengths) -> Tensor:
    rewards = policy if ref is None else policy - ref
    if lengths is not None:
        rewards = _per_token(rewards, lengths)
    return beta * rewards


def ranked_metrics(rewards: Tensor, scores: Tensor) -> dict[str, Tensor]:
    """Metrics of ranked objectives (detached scalars), from rewards and scores ``[B, K]``.

    * ``rewards/best``, ``rewards/worst`` -- mean reward of the highest- / lowest-scored response.
    * ``rewards/margin`` -- their difference.
    * ``rewards/accuracy`` -- over all pairs with different scores, the fraction the rewards order the same way.
    """
    with torch.no_grad():
        r, s = rewards.detach(), scores.detach()
        best = r.gather(1, s.argmax(1, keepdim=True)).squeeze(1)
        worst = r.gather(1, s.argmin(1, keepdim=True)).squeeze(1)
        higher = s.unsqueeze(2) > s.unsqueeze(1)  # [B, i, j]: i scored above j
        agree = (r.unsqueeze(2) > r.unsqueeze(1)) & higher
        acc = agree.sum() / higher.sum().clamp(min=1)
        return {
            "rewards/best": best.mean(),
            "rewards/worst": worst.mean(),
            "rewards/margin": (best - worst).mean(),
            "rewards/accuracy": acc.float(),
        }


@RANKED_OBJECTIVES.register("lipo_lambda")
def lipo_lambda(policy, ref, scores, *, beta=0.1, lengths=None):
    """LiPO-lambda: -sum_{i,j: psi_i > psi_j} Delta_ij * log sigmoid(s_i - s_j), per prompt.

    Liu et al., "LiPO: Listwise Preference Optimization through Learning-to-Rank", arXiv:2402.01878 (Eq. 6-7).
    Inputs ``[B, K]``: ``policy`` / ``ref`` summed log-probs of K responses per prompt (``ref`` may be None for a
    reference-free variant), ``scores`` their labels psi (higher is better), ``lengths`` optional response
    lengths (if given, log-ratios are length-normalised). s = beta * (log pi - log pi_ref). The lambda weight
    is Delta_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|, with gain G = 2^psi - 1, discount
    D(tau) = log2(1 + tau), and tau the 1-based rank of a response when sorted by s, descending (computed
    without gradient). The loss is the sum over pairs (not averaged), ``[B]``.
    """
    s = _ranked_rewards(policy, ref, beta, lengths)
    with torch.no_grad():
        psi = scores.to(s.dtype)
        gain = torch.pow(2.0, psi) - 1
        order = torch.argsort(s.detach(), dim=1, descending=True)
        tau = torch.empty_like(order)
        tau.scatter_(1, order, torch.arange(1, s.size(1) + 1, device=s.device).expand_as(order))
        inv_disc = 1.0 / torch.log2(1.0 + tau.to(s.dtype))
        delta = (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (inv_disc.unsqueeze(2) - inv_disc.unsqueeze(1)).abs()
        higher = (psi.unsqueeze(2) > psi.unsqueeze(1)).to(s.dtype)  # [B, i, j]: i better than j
    pair_loss = -F.logsigmoid(s.unsqueeze(2) - s.unsqueeze(1))
    loss = (delta * higher * pair_loss).sum(dim=(1, 2))
    return loss, ranked_metrics(s, scores)


@RANKED_OBJECTIVES.register("pro")
def pro(policy, ref, scores, *, beta=0.1, lengths=None):
    """PRO: -sum_{k=1}^{K-1} log( exp(r_(k)) / sum_{i>=k} exp(r_(i)) ), responses sorted by score, descending.

    Song et al., "Preference Ranking Optimization for Human Alignment", arXiv:2306.17492 (Eq. 5: the
    Plackett-Luce likelihood of the human ranking). Inputs as in :func:`lipo_lambda`. The paper's r is the
    length-normalised policy log-prob with ``beta`` = 1 and no reference: pass ``ref=None`` and ``lengths`` for
    that; with ``ref`` the reward is beta * (log pi - log pi_ref) (length-normalised if lengths are given).
    Not included: the paper's score-dependent temperatures and its SFT term on the best response (add ``sft``).
    Tied scores are ordered arbitrarily (stable sort). Loss ``[B]``.
    """
    r = _ranked_rewards(policy, ref, beta, lengths)
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    r_sorted = r.gather(1, order)
    # log-sum-exp over the suffix i >= k, for each k
    suffix_lse = torch.logcumsumexp(r_sorted.flip(1), dim=1).flip(1)
    loss = -(r_sorted - suffix_lse)[:, :-1].sum(dim=1)
    return loss, ranked_metrics(r, scores)


def curriculum_pairs(scores: Sequence[float] | Tensor, *, top_only: bool = False) -> list[tuple[int, int]]:
    """Curry-DPO pairs of one prompt's K ranked responses, ordered easy-to-hard.

    Pattnaik et al., "Curry-DPO: Enhancing Alignment using Curriculum Learning & Ranked Preferences",
    arXiv:2403.07230. Returns ``(i, j)`` index pairs with ``scores[i] > scores[j]`` (i is chosen, j rejected),
    sorted by score gap, largest (easiest) first; equal gaps keep the order (i, j) ascending. ``top_only``
    keeps only pairs whose chosen response is the best one (the paper's main setting, K-1 pairs); by default
    all strictly-ordered pairs are returned. Tied responses are never paired. For ``[B, K]`` scores, returns
    one list per row.
    """
    t = torch.as_tensor(scores, dtype=torch.float64)
    if t.dim() == 2:
        return [curriculum_pairs(row, top_only=top_only) for row in t]
    if t.dim() != 1:
        raise ValueError(f"curriculum_pairs: scores must be [K] or [B, K], got shape {tuple(t.shape)}")
    vals = t.tolist()
    best = max(vals) if vals else math.inf
    pairs = [
        (i, j)
        for i, si in enumerate(vals)
        for j, sj in enumerate(vals)
        if si > sj and (not top_only or si == best)
    ]
    return sorted(pairs, key=lambda p: -(vals[p[0]] - vals[p[1]]))
