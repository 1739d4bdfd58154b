"""The objective contract: the `GroupLogps` struct, the registries, the shared metrics and `Objective`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.registry import Registry

LossFn = Callable[..., Tensor]

OBJECTIVES: Registry[LossFn] = Registry("objective")
"""Pairwise preference objectives, by name (see the package docstring for the contract)."""

RANKED_OBJECTIVES: Registry[LossFn] = Registry("ranked objective")
"""Objectives over K ranked responses per prompt."""


def objective(name: str, ranked: bool = False, needs_reference: bool | Callable[[dict], bool] = True,
              tokens: bool = False, metrics: Callable[..., dict[str, Tensor]] | None = None
              ) -> Callable[[LossFn], LossFn]:
    """Register a loss: ``@objective("sigmoid")``; ``ranked`` puts it in RANKED_OBJECTIVES;
    ``needs_reference=False`` marks a loss that trains without a reference model (a function of the term's
    hyper-parameters when that depends on them, e.g. a KL weight of 0); ``tokens`` a loss that needs the
    per-token log-probs (``lp.tokens``); ``metrics(lp, **hparams)`` the term's own metrics, which replace the
    ranked ones."""

    def add(fn: LossFn) -> LossFn:
        fn.needs_reference, fn.needs_tokens, fn.metrics = needs_reference, tokens, metrics
        return (RANKED_OBJECTIVES if ranked else OBJECTIVES).register(name, fn)

    return add


@dataclass
class TokenLogps:
    """Per-token log-probs of K responses per prompt, ``[B, K, T]`` (0 outside the response): what
    policy-gradient objectives (GRPO, RLOO) need for per-token ratios and KL."""

    policy: Tensor  # with gradient
    mask: Tensor  # 1 on response tokens
    reference: Tensor | None = None  # without gradient
    old: Tensor | None = None  # the policy that sampled the responses (None: the current one, detached)


def stack_tokens(slots: Sequence[Tensor]) -> Tensor:
    """K per-slot ``[B, T_k]`` token tensors as one ``[B, K, T]``, right-padded with 0 (the shared-prefix layout
    gives every slot the same T; the concat layout does not). Positions stay aligned between the policy and
    the reference because both are computed on the same batch."""
    width = max(t.shape[-1] for t in slots)
    return torch.stack([torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in slots], 1)


@dataclass
class GroupLogps:
    """Summed response log-probs of K responses per prompt: what every objective receives."""

    policy: Tensor  # [B, K], with gradient
    reference: Tensor | None = None  # [B, K], without; None for reference-free training
    lengths: Tensor | None = None  # [B, K] response tokens
    scores: Tensor | None = None  # [B, K] ranked data (or a judge's rewards), higher is better
    tokens: TokenLogps | None = None  # per-token log-probs, for objectives registered with tokens=True

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


# --------------------------------------------------------------------------------------------- combination


# What a hyper-parameter may be: a value outside these ranges inverts or breaks the objective silently
# (β ≤ 0 flips the preference, label smoothing ≥ 0.5 prefers the rejected, IPO divides by β).
HPARAM_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "beta": (lambda v: v > 0, "> 0"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "in [0, 0.5)"),
    "gamma": (lambda v: v >= 0, ">= 0"),
    "rpo_alpha": (lambda v: v > 0, "> 0"),
    "epsilon": (lambda v: 0 < v < 1, "in (0, 1)"),  # PPO-style clip range of the importance ratio
    "epsilon_high": (lambda v: v > 0, "> 0"),
    "max_tokens": (lambda v: v >= 1, ">= 1"),
}


# In policy-gradient terms β weighs a KL penalty: 0 switches it off (DAPO's, Dr. GRPO's default).
KL_WEIGHT_RULES = {**HPARAM_RULES, "beta": (lambda v: v >= 0, ">= 0")}


def check_hparams(hparams: Mapping[str, object], where: str = "objective",
                  rules: Mapping[str, tuple[Callable[[float], bool], str]] = HPARAM_RULES) -> None:
    """Refuse hyper-parameter values that no objective is meant for, with one line naming the value."""
    for name, value in hparams.items():
        if name == "normalize":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: normalize must be true or false, not {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {name} must be a number, not {value!r}")
        rule = rules.get(name)
        if rule is not None and not rule[0](value):
            raise ValueError(f"{where}: {name} must be {rule[1]}, not {value!r}")


def _hparams_of(fn: Callable) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _defaults_of(fn: Callable) -> dict[str, object]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}


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
        if not isinstance(terms, str):
            bad = {k: v for k, v in terms.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
            if bad:
                name, value = next(iter(bad.items()))
                raise ValueError(f"objective: the weight of term '{name}' must be a number >= 0, not {value!r} "
                                 "(a negative weight inverts the term)")
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
            takes = sorted(set().union(*accepted.values()))
            raise TypeError(f"objective: no term among {sorted(self.fns)} takes {sorted(unknown)} "
                            f"(they take {', '.join(takes) or 'nothing'})")
        pg_only = all(fn.needs_tokens for fn in self.fns.values())
        check_hparams(self.hparams, rules=KL_WEIGHT_RULES if pg_only else HPARAM_RULES)
        self._kwargs = {name: {k: v for k, v in self.hparams.items() if k in accepted[name]} for name in self.fns}
        self.beta = float(self.hparams.get("beta", 0.1))

    @property
    def needs_reference(self) -> bool:
        """False when every term trains without a reference (then ``reference=none`` is allowed)."""
        return any(fn.needs_reference(_defaults_of(fn) | self._kwargs[name]) if callable(fn.needs_reference)
                   else fn.needs_reference for name, fn in self.fns.items())

    @property
    def needs_tokens(self) -> bool:
        """True when a term needs per-token log-probs (``GroupLogps.tokens``)."""
        return any(fn.needs_tokens for fn in self.fns.values())

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
        own = [name for name, fn in self.fns.items() if fn.metrics is not None]
        for name in own:
            metrics.update(self.fns[name].metrics(lp, **self._kwargs[name]))
        if self.ranked and not own:
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
