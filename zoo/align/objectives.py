"""Preference-optimisation objectives: small, pure loss functions over sequence log-probabilities.

Contract
--------
Every objective receives one struct, `GroupLogps` — the summed response log-probs of K responses per
prompt under the policy and the reference, their lengths, and (ranked data) their scores — and returns
the per-example loss ``[B]``. Metrics are computed once, by the caller (`Objective`), not by each loss.

* **Pairwise** objectives (registry ``OBJECTIVES``) see a pair (K = 2, chosen in slot 0): ``lp.chosen``,
  ``lp.rejected``, ``lp.ref_chosen``, ``lp.ref_rejected`` ``[B]``, ``lp.lengths`` ``[B, 2]``::

      f(lp, *, beta=0.1, <its own hparams>) -> loss [B]

  Reference-free objectives (``simpo``, ``sft``) accept ``lp.reference is None``.
* **Ranked** objectives (registry ``RANKED_OBJECTIVES``) see the whole group: ``lp.policy``,
  ``lp.reference`` (may be None), ``lp.lengths`` and ``lp.scores`` ``[B, K]`` (higher is better).

``beta`` is the inverse temperature / KL-regularisation strength (its exact role is given per
objective). Objectives are pure: no state, no parameters, no reduction, no device or dtype changes.
Stateful quantities some papers keep (e.g. BCO's running reward mean) are explicit arguments.

`Objective` is the training part: a weighted sum of registered terms with shared hparams, applied to
each pair a group batch names (``GroupBatch.pairs``: chosen vs rejected by default, best vs worst on
ranked rows) and, for ranked terms, to the whole group; it returns ``(loss [B], metrics)``.
:func:`curriculum_pairs` orders pairs of a ranked list easy-to-hard for Curry-DPO.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modalities.registry import Registry

__all__ = [
    "OBJECTIVES",
    "RANKED_OBJECTIVES",
    "GroupLogps",
    "Objective",
    "preference_metrics",
    "ranked_metrics",
    "curriculum_pairs",
]

LossFn = Callable[..., Tensor]

OBJECTIVES: Registry[LossFn] = Registry("objective")
"""Pairwise preference objectives, by name (see the module docstring for the contract)."""

RANKED_OBJECTIVES: Registry[LossFn] = Registry("ranked objective")
"""Objectives over K ranked responses per prompt."""


@dataclass
class GroupLogps:
    """Summed response log-probs of K responses per prompt: what every objective receives."""

    policy: Tensor  # [B, K], with gradient
    reference: Tensor | None = None  # [B, K], without; None for reference-free training
    lengths: Tensor | None = None  # [B, K] response tokens
    scores: Tensor | None = None  # [B, K] ranked data, higher is better

    @classmethod
    def pair(cls, chosen, rejected, ref_chosen=None, ref_rejected=None, chosen_lengths=None,
             rejected_lengths=None) -> GroupLogps:
        """A pair batch from ``[B]`` tensors (lengths may be ints or tensors)."""
        ref = None if ref_chosen is None or ref_rejected is None else torch.stack([ref_chosen, ref_rejected], 1)
        lengths = None
        if chosen_lengths is not None and rejected_lengths is not None:
            lengths = torch.stack([torch.as_tensor(chosen_lengths), torch.as_tensor(rejected_lengths)], 1)
        return cls(torch.stack([chosen, rejected], 1), ref, lengths)

    @property
    def k(self) -> int:
        return self.policy.shape[1]

    def select(self, i: int, j: int) -> GroupLogps:
        """The pair (slot i chosen, slot j rejected) of every row."""
        cols = [i, j]
        pick = lambda t: None if t is None else t[:, cols]  # noqa: E731
        return GroupLogps(self.policy[:, cols], pick(self.reference), pick(self.lengths), pick(self.scores))

    # pair views (K = 2)
    chosen = property(lambda self: self.policy[:, 0])
    rejected = property(lambda self: self.policy[:, -1])
    ref_chosen = property(lambda self: None if self.reference is None else self.reference[:, 0])
    ref_rejected = property(lambda self: None if self.reference is None else self.reference[:, -1])
    chosen_lengths = property(lambda self: None if self.lengths is None else self.lengths[:, 0])
    rejected_lengths = property(lambda self: None if self.lengths is None else self.lengths[:, -1])

    def ratios(self) -> tuple[Tensor, Tensor]:
        """log pi/pi_ref of the chosen and the rejected response."""
        if self.reference is None:
            raise ValueError("this objective needs reference log-probs: use a reference (frozen, cached, "
                             "lora_disabled), not reference=none")
        return self.chosen - self.ref_chosen, self.rejected - self.ref_rejected


# --------------------------------------------------------------------------------------------------- metrics


def preference_metrics(lp: GroupLogps, beta: float) -> dict[str, Tensor]:
    """Per-step metrics of a pair batch (detached scalar means over the batch).

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
        pc, pr = lp.chosen.detach(), lp.rejected.detach()
        rc = lp.ref_chosen.detach() if lp.reference is not None else torch.zeros_like(pc)
        rr = lp.ref_rejected.detach() if lp.reference is not None else torch.zeros_like(pr)
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


def _need_lengths(name: str, lp: GroupLogps) -> None:
    if lp.lengths is None:
        raise ValueError(f"objective '{name}' needs lp.lengths (number of response tokens per sequence)")


def _per_token(logps: Tensor, lengths) -> Tensor:
    """Divide summed log-probs by the response length (clamped to >= 1, as TRL does)."""
    lengths = torch.as_tensor(lengths, device=logps.device)
    return logps / lengths.to(logps.dtype).clamp(min=1.0)


# ------------------------------------------------------------------------------------------ pairwise losses
# In all of them: h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)) is the log-ratio margin.


@OBJECTIVES.register("sigmoid")
def sigmoid(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """DPO: -log sigmoid(beta * h).

    Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    arXiv:2305.18290. ``beta`` is the KL-regularisation strength of the underlying RLHF problem.
    """
    cr, rr = lp.ratios()
    return -F.logsigmoid(beta * (cr - rr))


@OBJECTIVES.register("cdpo")
def cdpo(lp: GroupLogps, *, beta=0.1, label_smoothing=0.1) -> Tensor:
    """Conservative DPO (label smoothing): -(1-eps) log sigmoid(beta*h) - eps log sigmoid(-beta*h).

    Mitchell, "A note on DPO with noisy preferences & relationship to IPO" (2023 note, no arXiv id;
    https://ericmitchell.ai/cdpo.pdf). ``label_smoothing`` (eps, in [0, 0.5]) is the assumed probability that a
    preference label is flipped; eps = 0 is DPO.
    """
    cr, rr = lp.ratios()
    logits = beta * (cr - rr)
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


@OBJECTIVES.register("robust")
def robust(lp: GroupLogps, *, beta=0.1, label_smoothing=0.1) -> Tensor:
    """Robust DPO: [-(1-eps) log sigmoid(beta*h) + eps log sigmoid(-beta*h)] / (1 - 2 eps).

    Chowdhury et al., "Provably Robust DPO: Aligning Language Models with Noisy Feedback", arXiv:2403.00409.
    An unbiased estimate of the clean DPO loss under label-flip rate ``label_smoothing`` (eps, in [0, 0.5)).
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust: label_smoothing must lie in [0, 0.5), got {label_smoothing}")
    cr, rr = lp.ratios()
    logits = beta * (cr - rr)
    loss = (-(1 - label_smoothing) * F.logsigmoid(logits) + label_smoothing * F.logsigmoid(-logits)) / (
        1 - 2 * label_smoothing
    )
    return loss


@OBJECTIVES.register("ipo")
def ipo(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """IPO: (h' - 1/(2 beta))^2, with ``beta`` the paper's tau.

    Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
    arXiv:2310.12036 (Eq. 17). Length normalisation (TRL's convention, which the IPO authors confirmed to TRL):
    when both ``chosen_lengths`` and ``rejected_lengths`` are given, each log-ratio is divided by its own
    response length before taking the difference, h' = (log pi/pi_ref)(y_w)/|y_w| - (log pi/pi_ref)(y_l)/|y_l|;
    without lengths h' = h (summed log-probs).
    """
    cr, rr = lp.ratios()
    if lp.lengths is not None:
        cr, rr = _per_token(cr, lp.chosen_lengths), _per_token(rr, lp.rejected_lengths)
    return (cr - rr - 1 / (2 * beta)) ** 2


@OBJECTIVES.register("hinge")
def hinge(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """Hinge loss on the log-ratio margin: max(0, 1 - beta * h).

    SLiC-HF: Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", arXiv:2305.10425;
    in the reference-normalised form of RSO: Liu et al., "Statistical Rejection Sampling Improves Preference
    Optimization", arXiv:2309.06657. 1/``beta`` is the margin.
    """
    cr, rr = lp.ratios()
    return torch.relu(1 - beta * (cr - rr))


@OBJECTIVES.register("sppo_hard")
def sppo_hard(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """SPPO with hard win probabilities: (r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2, r = log pi/pi_ref.

    Wu et al., "Self-Play Preference Optimization for Language Model Alignment", arXiv:2405.00675 (Eq. 4.7 of
    Algorithm 1 with P(y_w wins) = 1 and P(y_l wins) = 0). ``beta`` is the paper's 1/eta.
    """
    cr, rr = lp.ratios()
    return (cr - 0.5 / beta) ** 2 + (rr + 0.5 / beta) ** 2


@OBJECTIVES.register("nca_pair")
def nca_pair(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """NCA (pairwise): -log sigmoid(r_w) - 1/2 log sigmoid(-r_w) - 1/2 log sigmoid(-r_l), r = beta log pi/pi_ref.

    Chen et al., "Noise Contrastive Alignment of Language Models with Explicit Rewards", arXiv:2402.05369.
    Unlike DPO it optimises absolute likelihoods, so the chosen log-prob does not drift down.
    """
    cr, rr = lp.ratios()
    rw_c, rw_r = beta * cr, beta * rr
    return -F.logsigmoid(rw_c) - 0.5 * F.logsigmoid(-rw_c) - 0.5 * F.logsigmoid(-rw_r)


@OBJECTIVES.register("bco_pair")
def bco_pair(lp: GroupLogps, *, beta=0.1, delta=0.0) -> Tensor:
    """BCO (pairwise): -log sigmoid(r_w - delta) - log sigmoid(-(r_l - delta)), r = beta log pi/pi_ref.

    Jung et al., "Binary Classifier Optimization for Large Language Model Alignment", arXiv:2404.04656.
    ``delta`` is the paper's reward shift: a running mean of the rewards of chosen and rejected responses,
    kept by the caller (e.g. an EMA of ``(rewards/chosen + rewards/rejected) / 2``); 0 disables it.
    """
    cr, rr = lp.ratios()
    rw_c, rw_r = beta * cr, beta * rr
    return -F.logsigmoid(rw_c - delta) - F.logsigmoid(-(rw_r - delta))


@OBJECTIVES.register("apo_zero")
def apo_zero(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """APO-zero: (1 - sigmoid(r_w)) + sigmoid(r_l), r = beta log pi/pi_ref.

    D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive Revisions: Addressing
    Underspecification in Alignment", arXiv:2408.06266 (Eq. 7). For chosen outputs better than the policy's
    own: raises the chosen likelihood and lowers the rejected one.
    """
    cr, rr = lp.ratios()
    return (1 - torch.sigmoid(beta * cr)) + torch.sigmoid(beta * rr)


@OBJECTIVES.register("apo_down")
def apo_down(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """APO-down: sigmoid(r_w) + (1 - sigmoid(r_w - r_l)), r = beta log pi/pi_ref.

    D'Oosterlinck et al., arXiv:2408.06266 (Eq. 8; see :func:`apo_zero`). For chosen outputs worse than the
    policy's own: lowers both likelihoods, the rejected one more.
    """
    cr, rr = lp.ratios()
    return torch.sigmoid(beta * cr) + (1 - torch.sigmoid(beta * (cr - rr)))


@OBJECTIVES.register("simpo")
def simpo(lp: GroupLogps, *, beta=0.1, gamma=0.5) -> Tensor:
    """SimPO: -log sigmoid(beta * (log pi(y_w)/|y_w| - log pi(y_l)/|y_l|) - gamma). Reference-free.

    Meng et al., "SimPO: Simple Preference Optimization with a Reference-Free Reward", arXiv:2405.14734.
    Needs both lengths. ``gamma`` is the target reward margin (the paper's gamma, not gamma/beta; TRL's
    ``simpo_gamma``). The paper uses beta around 2-10, much larger than DPO's; the default here is the shared
    0.1, so set it. The reference log-probs are ignored by the loss (they only feed the metrics).
    """
    _need_lengths("simpo", lp)
    avg_c, avg_r = _per_token(lp.chosen, lp.chosen_lengths), _per_token(lp.rejected, lp.rejected_lengths)
    return -F.logsigmoid(beta * (avg_c - avg_r) - gamma)


@OBJECTIVES.register("sft")
def sft(lp: GroupLogps, *, beta=0.1, rpo_alpha=1.0) -> Tensor:
    """SFT term of RPO: rpo_alpha * (-log pi(y_w) / |y_w|), the per-token NLL of the chosen response.

    Pang et al., "Iterative Reasoning Preference Optimization", arXiv:2404.19733 (the NLL term of Eq. 1, which is
    length-normalised there too). Needs ``chosen_lengths``. ``rpo_alpha`` is the paper's alpha (the weight of
    the NLL term); within an `Objective` the term's weight multiplies it. Per sequence, this equals TRL's
    ``sft`` loss type for one pair; over a batch TRL averages over all chosen tokens instead (token-weighted),
    which differs when lengths differ.
    """
    _need_lengths("sft", lp)
    return -rpo_alpha * _per_token(lp.chosen, lp.chosen_lengths)


# --------------------------------------------------------------------------------------------- combination


def _hparams_of(fn: Callable) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


class Objective:
    """The objective part of a preference recipe: a weighted sum of registered terms.

    ``terms`` is a registered name or ``{name: weight}`` (zero weights are dropped), e.g. RPO
    ``{"sigmoid": 1.0, "sft": 1.0}``; ``hparams`` (beta, label_smoothing, …) are shared: each term
    receives only those it declares, and one no term declares is an error. Pairwise terms apply to each
    pair the batch names (``pairs``: ``(chosen slot, rejected slot, weight)``); ranked terms to the whole
    group, which then needs scores. Returns ``(loss [B], metrics)``: the pair metrics of the first pair
    (later pairs under their ``pair_names`` prefix), the ranked metrics for ranked terms, and
    ``<term>/loss`` when there are several terms.
    """

    def __init__(self, terms: str | Mapping[str, float], hparams: Mapping | None = None):
        weights = {terms: 1.0} if isinstance(terms, str) else {k: float(v) for k, v in terms.items() if v}
        if not weights:
            raise ValueError("objective: give at least one term with a non-zero weight")
        self.weights = weights
        self.fns = {}
        for name in weights:
            if name in OBJECTIVES:
                self.fns[name] = OBJECTIVES.get(name)
            elif name in RANKED_OBJECTIVES:
                self.fns[name] = RANKED_OBJECTIVES.get(name)
            else:
                known = ", ".join(OBJECTIVES.names() + RANKED_OBJECTIVES.names())
                raise KeyError(f"unknown objective '{name}'; known: {known}")
        self.ranked = {name for name in weights if name in RANKED_OBJECTIVES}
        self.hparams = dict(hparams or {})
        accepted = {name: _hparams_of(fn) for name, fn in self.fns.items()}
        unknown = set(self.hparams) - set().union(*accepted.values())
        if unknown:
            raise TypeError(f"objective: no term among {sorted(self.fns)} takes {sorted(unknown)}")
        self._kwargs = {name: {k: v for k, v in self.hparams.items() if k in accepted[name]} for name in self.fns}
        self.beta = float(self.hparams.get("beta", 0.1))

    @property
    def needs_reference(self) -> bool:
        """False when every term trains without a reference (then ``reference=none`` is allowed)."""
        return not set(self.weights) <= REFERENCE_OPTIONAL

    def __repr__(self) -> str:
        terms = " + ".join(f"{w:g}·{n}" for n, w in self.weights.items())
        return f"Objective({terms}, {self.hparams})"

    def __call__(self, lp: GroupLogps, pairs: Sequence[tuple[int, int, float]] = ((0, 1, 1.0),),
                 pair_names: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        if self.ranked and lp.scores is None:
            raise ValueError(f"ranked objective(s) {sorted(self.ranked)} need scored responses (ranked data)")
        pairwise = [n for n in self.fns if n not in self.ranked]
        if pairwise and not pairs:
            raise ValueError(f"pairwise objective(s) {pairwise} need pairs; this batch names none")
        total, terms = 0.0, {}
        for name, fn in self.fns.items():
            if name in self.ranked:
                loss = fn(lp, **self._kwargs[name])
            else:
                loss = sum(w * fn(lp.select(i, j), **self._kwargs[name]) for i, j, w in pairs)
            terms[name] = loss
            total = total + self.weights[name] * loss
        metrics = {}
        for n, (i, j, _) in enumerate(pairs):
            prefix = "" if n == 0 else f"{pair_names[n - 1] if n - 1 < len(pair_names) else f'pair{n}'}/"
            metrics.update({prefix + k: v for k, v in preference_metrics(lp.select(i, j), self.beta).items()})
        if self.ranked:
            ref = lp.reference if lp.reference is not None else torch.zeros_like(lp.policy)
            metrics.update({f"ranked/{k.split('/')[-1]}": v for k, v in
                            ranked_metrics(self.beta * (lp.policy - ref), lp.scores).items()})
        if len(terms) > 1:
            metrics.update({f"{name}/loss": loss.detach().mean() for name, loss in terms.items()})
        return total, metrics


# ------------------------------------------------------------------------------------------ ranked objectives


def _ranked_rewards(lp: GroupLogps, beta: float, normalize: bool) -> Tensor:
    rewards = lp.policy if lp.reference is None else lp.policy - lp.reference
    if normalize:
        if lp.lengths is None:
            raise ValueError("length-normalised ranked rewards need lp.lengths")
        rewards = _per_token(rewards, lp.lengths)
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


@RANKED_OBJECTIVES.register("pro")
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


# Terms that train without a reference model (simpo and sft never read it; the ranked ones use it when given).
REFERENCE_OPTIONAL = {"simpo", "sft", "pro", "lipo_lambda"}


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
