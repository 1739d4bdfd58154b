"""The DPO family: pairwise objectives over (chosen, rejected) log-probs (see `zoo.align.objectives`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.align.objectives.base import GroupLogps, _need_lengths, _per_token, objective

# ------------------------------------------------------------------------------------------ pairwise losses
# In all of them: h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)) is the log-ratio margin.


@objective("sigmoid")
def sigmoid(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """DPO: -log sigmoid(beta * h).

    Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    arXiv:2305.18290. ``beta`` is the KL-regularisation strength of the underlying RLHF problem.
    """
    cr, rr = lp.ratios()
    return -F.logsigmoid(beta * (cr - rr))


@objective("cdpo")
def cdpo(lp: GroupLogps, *, beta=0.1, label_smoothing=0.1) -> Tensor:
    """Conservative DPO (label smoothing): -(1-eps) log sigmoid(beta*h) - eps log sigmoid(-beta*h).

    Mitchell, "A note on DPO with noisy preferences & relationship to IPO" (2023 note, no arXiv id;
    https://ericmitchell.ai/cdpo.pdf). ``label_smoothing`` (eps, in [0, 0.5]) is the assumed probability that a
    preference label is flipped; eps = 0 is DPO.
    """
    cr, rr = lp.ratios()
    logits = beta * (cr - rr)
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


@objective("robust")
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


@objective("ipo")
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


@objective("hinge")
def hinge(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """Hinge loss on the log-ratio margin: max(0, 1 - beta * h).

    SLiC-HF: Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", arXiv:2305.10425;
    in the reference-normalised form of RSO: Liu et al., "Statistical Rejection Sampling Improves Preference
    Optimization", arXiv:2309.06657. 1/``beta`` is the margin.
    """
    cr, rr = lp.ratios()
    return torch.relu(1 - beta * (cr - rr))


@objective("sppo_hard")
def sppo_hard(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """SPPO with hard win probabilities: (r_w - 1/(2 beta))^2 + (r_l + 1/(2 beta))^2, r = log pi/pi_ref.

    Wu et al., "Self-Play Preference Optimization for Language Model Alignment", arXiv:2405.00675 (Eq. 4.7 of
    Algorithm 1 with P(y_w wins) = 1 and P(y_l wins) = 0). ``beta`` is the paper's 1/eta.
    """
    cr, rr = lp.ratios()
    return (cr - 0.5 / beta) ** 2 + (rr + 0.5 / beta) ** 2


@objective("nca_pair")
def nca_pair(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """NCA (pairwise): -log sigmoid(r_w) - 1/2 log sigmoid(-r_w) - 1/2 log sigmoid(-r_l), r = beta log pi/pi_ref.

    Chen et al., "Noise Contrastive Alignment of Language Models with Explicit Rewards", arXiv:2402.05369.
    Unlike DPO it optimises absolute likelihoods, so the chosen log-prob does not drift down.
    """
    cr, rr = lp.ratios()
    rw_c, rw_r = beta * cr, beta * rr
    return -F.logsigmoid(rw_c) - 0.5 * F.logsigmoid(-rw_c) - 0.5 * F.logsigmoid(-rw_r)


@objective("bco_pair")
def bco_pair(lp: GroupLogps, *, beta=0.1, delta=0.0) -> Tensor:
    """BCO (pairwise): -log sigmoid(r_w - delta) - log sigmoid(-(r_l - delta)), r = beta log pi/pi_ref.

    Jung et al., "Binary Classifier Optimization for Large Language Model Alignment", arXiv:2404.04656.
    ``delta`` is the paper's reward shift: a running mean of the rewards of chosen and rejected responses,
    kept by the caller (e.g. an EMA of ``(rewards/chosen + rewards/rejected) / 2``); 0 disables it.
    """
    cr, rr = lp.ratios()
    rw_c, rw_r = beta * cr, beta * rr
    return -F.logsigmoid(rw_c - delta) - F.logsigmoid(-(rw_r - delta))


@objective("apo_zero")
def apo_zero(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """APO-zero: (1 - sigmoid(r_w)) + sigmoid(r_l), r = beta log pi/pi_ref.

    D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive Revisions: Addressing
    Underspecification in Alignment", arXiv:2408.06266 (Eq. 7). For chosen outputs better than the policy's
    own: raises the chosen likelihood and lowers the rejected one.
    """
    cr, rr = lp.ratios()
    return (1 - torch.sigmoid(beta * cr)) + torch.sigmoid(beta * rr)


@objective("apo_down")
def apo_down(lp: GroupLogps, *, beta=0.1) -> Tensor:
    """APO-down: sigmoid(r_w) + (1 - sigmoid(r_w - r_l)), r = beta log pi/pi_ref.

    D'Oosterlinck et al., arXiv:2408.06266 (Eq. 8; see :func:`apo_zero`). For chosen outputs worse than the
    policy's own: lowers both likelihoods, the rejected one more.
    """
    cr, rr = lp.ratios()
    return torch.sigmoid(beta * cr) + (1 - torch.sigmoid(beta * (cr - rr)))


@objective("simpo", needs_reference=False)
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


@objective("sft", needs_reference=False)
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
