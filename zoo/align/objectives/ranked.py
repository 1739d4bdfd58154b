"""Ranked objectives over K responses per prompt, and Curry-DPO's curriculum of pairs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.align.objectives.base import GroupLogps, _ranked_rewards, objective

@objective("lipo_lambda", ranked=True, needs_reference=False)  # a reference-free variant is allowed
def lipo_lambda(lp: GroupLogps, *, beta=0.1, normalize=False) -> Tensor:
    """LiPO-lambda: -sum_{i,j: psi_i > psi_j} Delta_ij * log sigmoid(s_i - s_j), per prompt.

    Liu et al., "LiPO: Listwise Preference Optimization through Learning-to-Rank", arXiv:2402.01878 (Eq. 6-7).
    Inputs ``[B, K]``: ``lp.policy`` / ``lp.reference`` summed log-probs of K responses per prompt (the
    reference may be None for a reference-free variant), ``lp.scores`` their labels psi (higher is better);
    ``normalize`` divides log-ratios by the response lengths. s = beta * (log pi - log pi_ref). The lambda weight
    is Delta_ij = |G_i - G_j| * |1/D(tau_i) - 1/D(tau_j)|, with gain G = 2^psi - 1, discount
    D(tau) = log2(1 + tau), and tau the 1-based rank of a response when sorted by s, descending (computed
    without gradient). The loss is the sum over pairs (not averaged), ``[B]``.
    """
    s = _ranked_rewards(lp, beta, normalize)
    with torch.no_grad():
        psi = lp.scores.to(s.dtype)
        gain = torch.pow(2.0, psi) - 1
        order = torch.argsort(s.detach(), dim=1, descending=True)
        tau = torch.empty_like(order)
        tau.scatter_(1, order, torch.arange(1, s.size(1) + 1, device=s.device).expand_as(order))
        inv_disc = 1.0 / torch.log2(1.0 + tau.to(s.dtype))
        delta = (gain.unsqueeze(2) - gain.unsqueeze(1)).abs() * (inv_disc.unsqueeze(2) - inv_disc.unsqueeze(1)).abs()
        higher = (psi.unsqueeze(2) > psi.unsqueeze(1)).to(s.dtype)  # [B, i, j]: i better than j
    pair_loss = -F.logsigmoid(s.unsqueeze(2) - s.unsqueeze(1))
    return (delta * higher * pair_loss).sum(dim=(1, 2))


@objective("pro", ranked=True, needs_reference=False)
def pro(lp: GroupLogps, *, beta=0.1, normalize=True) -> Tensor:
    """PRO: -sum_{k=1}^{K-1} log( exp(r_(k)) / sum_{i>=k} exp(r_(i)) ), responses sorted by score, descending.

    Song et al., "Preference Ranking Optimization for Human Alignment", arXiv:2306.17492 (Eq. 5: the
    Plackett-Luce likelihood of the human ranking). Inputs as in :func:`lipo_lambda`. The paper's r is the
    length-normalised policy log-prob with ``beta`` = 1 and no reference (``reference=none``, ``normalize``
    true, the default); with a reference the reward is beta * (log pi - log pi_ref), length-normalised
    unless ``normalize`` is false.
    Not included: the paper's score-dependent temperatures and its SFT term on the best response (add ``sft``).
    Tied scores are ordered arbitrarily (stable sort). Loss ``[B]``.
    """
    r = _ranked_rewards(lp, beta, normalize)
    order = torch.argsort(lp.scores, dim=1, descending=True, stable=True)
    r_sorted = r.gather(1, order)
    # log-sum-exp over the suffix i >= k, for each k
    suffix_lse = torch.logcumsumexp(r_sorted.flip(1), dim=1).flip(1)
    return -(r_sorted - suffix_lse)[:, :-1].sum(dim=1)


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
