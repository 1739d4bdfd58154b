"""Tests of zoo.align.objectives: shapes and gradients for every objective, hand-checked values, and equality
with TRL's own loss code.

TRL version used for the equivalence tests: trl==1.16.0 (pinned in constraints.txt, in the ``test`` extra).
TRL 1.16 has no ``DPOTrainer.dpo_loss`` method any more: the losses are computed inline in
``DPOTrainer._compute_loss(model, inputs, return_outputs)``. We call that method on a bare
``object.__new__(DPOTrainer)`` with exactly the attributes it reads, a stub model that returns chosen per-token
log-probs, and precomputed reference log-probs in ``inputs`` (``precompute_ref_logps=True``), so TRL runs its real
code path from per-token log-probs to the loss. SimPO is compared with ``trl.experimental.cpo.CPOTrainer.cpo_loss``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from zoo.align.objectives import (
    OBJECTIVES,
    RANKED_OBJECTIVES,
    GroupLogps,
    Objective,
    curriculum_pairs,
    preference_metrics,
    ranked_metrics,
)

TRL_VERSION = "1.16.0"

EXPECTED = {
    "sigmoid", "cdpo", "robust", "ipo", "hinge", "sppo_hard", "nca_pair", "bco_pair",
    "apo_zero", "apo_down", "simpo", "sft",
}
EXPECTED_RANKED = {"lipo_lambda", "pro", "grpo", "dr_grpo", "dapo", "rloo"}  # the last four: test_policy_gradient.py
METRIC_KEYS = {
    "rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy", "logps/chosen", "logps/rejected", "kl",
}


def _batch(b=6, seed=0, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-(torch.rand(b, generator=g, dtype=dtype) * 30 + 1) for _ in range(4))
    lc = torch.randint(1, 20, (b,), generator=g)
    lr = torch.randint(1, 20, (b,), generator=g)
    if requires_grad:
        pc.requires_grad_(True)
        pr.requires_grad_(True)
    return pc, pr, rc, rr, lc, lr


def call(name, pc, pr, rc=None, rr=None, *, chosen_lengths=None, rejected_lengths=None, **hparams):
    """A pairwise objective on ``[B]`` tensors, through the struct every objective receives."""
    return OBJECTIVES.get(name)(GroupLogps.pair(pc, pr, rc, rr, chosen_lengths, rejected_lengths), **hparams)


def ranked(name, policy, ref, scores, lengths=None, **hparams):
    return RANKED_OBJECTIVES.get(name)(GroupLogps(policy, ref, lengths, scores), **hparams)


# ---------------------------------------------------------------------------------------------- registry


def test_registered_names_are_exactly_the_tested_ones():
    assert set(OBJECTIVES.names()) == EXPECTED
    assert set(RANKED_OBJECTIVES.names()) == EXPECTED_RANKED


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_shape_finite_grad_metrics(name):
    fn = OBJECTIVES.get(name)
    assert fn.__doc__ and "arXiv" in fn.__doc__ or name == "cdpo", f"{name}: docstring must name its paper"
    pc, pr, rc, rr, lc, lr = _batch(requires_grad=True, dtype=torch.float32)
    loss, metrics = Objective(name, {"beta": 0.1})(GroupLogps.pair(pc, pr, rc, rr, lc, lr))
    assert loss.shape == (6,) and loss.dtype == torch.float32
    assert torch.isfinite(loss).all()
    loss.mean().backward()
    assert torch.isfinite(pc.grad).all()
    assert pc.grad.abs().sum() > 0  # every objective moves the chosen log-prob
    assert torch.isfinite(pr.grad).all()
    assert bool(pr.grad.abs().sum() == 0) == (name == "sft")  # sft is the only one that ignores the rejected response
    assert set(metrics) == METRIC_KEYS
    for value in metrics.values():
        assert value.shape == () and not value.requires_grad and torch.isfinite(value)


def test_metrics_values():
    pc, pr, rc, rr = (torch.tensor(v) for v in ([-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.0], [-2.0, -2.0]))
    m = preference_metrics(GroupLogps.pair(pc, pr, rc, rr), beta=0.5)
    assert m["rewards/chosen"].item() == pytest.approx(0.5 * (1 + 0) / 2)
    assert m["rewards/rejected"].item() == pytest.approx(0.5 * (-1 + 1) / 2)
    assert m["rewards/margin"].item() == pytest.approx(0.25)
    assert m["rewards/accuracy"].item() == pytest.approx(0.5)  # pair 0 right, pair 1 wrong
    assert m["logps/chosen"].item() == pytest.approx(-1.5)
    assert m["logps/rejected"].item() == pytest.approx(-2.0)
    assert m["kl"].item() == pytest.approx((1 + 0 - 1 + 1) / 4)


def test_length_and_reference_requirements():
    pc, pr, rc, rr, lc, lr = _batch()
    with pytest.raises(ValueError, match="lengths"):
        call("simpo", pc, pr, rc, rr)
    with pytest.raises(ValueError, match="lengths"):
        call("sft", pc, pr, rc, rr)
    with pytest.raises(ValueError, match="label_smoothing"):
        call("robust", pc, pr, rc, rr, label_smoothing=0.5)
    with pytest.raises(ValueError, match="reference"):
        call("sigmoid", pc, pr, chosen_lengths=lc, rejected_lengths=lr)
    # reference-free objectives run without a reference
    call("simpo", pc, pr, chosen_lengths=lc, rejected_lengths=lr)
    call("sft", pc, pr, chosen_lengths=lc, rejected_lengths=lr)
    assert not Objective({"simpo": 1.0, "sft": 1.0}).needs_reference and Objective("sigmoid").needs_reference


# ------------------------------------------------------------------------------------------- hand checks


def test_sigmoid_closed_form():
    # h = (pc - rc) - (pr - rr); loss = -log sigmoid(beta h) = log(1 + exp(-beta h))
    pc, pr, rc, rr = (torch.tensor(v) for v in ([-1.0, -5.0, -2.0], [-3.0, -1.0, -2.0], [-2.0] * 3, [-2.0] * 3))
    loss = call("sigmoid", pc, pr, rc, rr, beta=0.5)
    # h = 2, -4, 0
    expected = [math.log1p(math.exp(-1.0)), math.log1p(math.exp(2.0)), math.log(2.0)]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] == pytest.approx(0.31326169, abs=1e-7)


def test_hinge_values():
    pc, pr, rc, rr = (torch.tensor(v) for v in ([0.0, 0.0, 0.0], [-2.0, -0.5, 1.0], [0.0] * 3, [0.0] * 3))
    loss = call("hinge", pc, pr, rc, rr, beta=0.5)  # h = 2, 0.5, -1 -> relu(1 - h/2)
    assert loss.tolist() == pytest.approx([0.0, 0.75, 1.5])


def test_ipo_values():
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-1.0, -3.0, -2.0, -2.0))  # chosen ratio 1, rejected ratio -1
    loss = call("ipo", pc, pr, rc, rr, beta=0.5)  # (2 - 1)^2
    assert loss.item() == pytest.approx(1.0)
    loss = call("ipo", pc, pr, rc, rr, beta=0.5, chosen_lengths=[2], rejected_lengths=[4])
    assert loss.item() == pytest.approx((1 / 2 + 1 / 4 - 1) ** 2)  # 0.0625


def test_simpo_values():
    pc, pr = torch.tensor([-4.0]), torch.tensor([-9.0])  # per token -2 and -3
    loss = call("simpo", pc, pr, None, None, beta=2.0, gamma=0.5, chosen_lengths=[2], rejected_lengths=[3])
    assert loss.item() == pytest.approx(math.log1p(math.exp(-(2.0 * 1.0 - 0.5))))  # 0.20141328
    assert loss.item() == pytest.approx(0.20141328, abs=1e-7)


def test_cdpo_reduces_to_dpo_and_bco_delta_shift():
    pc, pr, rc, rr, _, _ = _batch()
    dpo = call("sigmoid", pc, pr, rc, rr, beta=0.1)
    c0 = call("cdpo", pc, pr, rc, rr, beta=0.1, label_smoothing=0.0)
    r0 = call("robust", pc, pr, rc, rr, beta=0.1, label_smoothing=0.0)
    torch.testing.assert_close(c0, dpo)
    torch.testing.assert_close(r0, dpo)
    b = call("bco_pair", pc, pr, rc, rr, beta=0.1, delta=0.3)
    rw_c, rw_r = 0.1 * (pc - rc), 0.1 * (pr - rr)
    torch.testing.assert_close(b, -F.logsigmoid(rw_c - 0.3) - F.logsigmoid(0.3 - rw_r))


# ------------------------------------------------------------------------------------------- combination


def test_objective_weighted_sum_and_metrics():
    pc, pr, rc, rr, lc, lr = _batch()
    lp = GroupLogps.pair(pc, pr, rc, rr, lc, lr)
    fn = Objective({"sigmoid": 1.0, "sft": 0.2, "simpo": 0.5, "ipo": 0.0}, {"beta": 0.2, "gamma": 0.3})
    assert set(fn.weights) == {"sigmoid", "sft", "simpo"}  # a zero weight drops the term
    loss, metrics = fn(lp)
    s = call("sigmoid", pc, pr, rc, rr, beta=0.2)
    t = call("sft", pc, pr, rc, rr, chosen_lengths=lc, rejected_lengths=lr, beta=0.2)
    p = call("simpo", pc, pr, rc, rr, beta=0.2, gamma=0.3, chosen_lengths=lc, rejected_lengths=lr)
    torch.testing.assert_close(loss, s + 0.2 * t + 0.5 * p)
    assert set(metrics) == METRIC_KEYS | {"sigmoid/loss", "sft/loss", "simpo/loss"}
    torch.testing.assert_close(metrics["sft/loss"], t.mean())
    for key, value in preference_metrics(lp, 0.2).items():  # the metrics are computed once, by the caller
        torch.testing.assert_close(metrics[key], value)
    with pytest.raises(TypeError):
        Objective("sigmoid", {"gamma": 0.5})
    with pytest.raises(KeyError, match="known"):
        Objective("nope")


def test_objective_weighted_pairs_of_a_group():
    # K = 3 (chosen, rejected a, rejected b) with two weighted pairs: the online-BDHS gamma mix
    g = torch.Generator().manual_seed(4)
    pol, ref = -torch.rand(5, 3, generator=g) * 10, -torch.rand(5, 3, generator=g) * 10
    lp = GroupLogps(pol, ref, torch.full((5, 3), 4))
    loss, metrics = Objective("sigmoid", {"beta": 0.3})(lp, pairs=((0, 1, 0.25), (0, 2, 0.75)), pair_names=("b",))
    want = 0.25 * call("sigmoid", pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], beta=0.3) + 0.75 * call(
        "sigmoid", pol[:, 0], pol[:, 2], ref[:, 0], ref[:, 2], beta=0.3)
    torch.testing.assert_close(loss, want)
    assert "rewards/margin" in metrics and "b/rewards/margin" in metrics
    with pytest.raises(ValueError, match="pairs"):
        Objective("sigmoid")(lp, pairs=())


def test_objective_ranked_terms_need_scores_and_mix_with_pairwise():
    g = torch.Generator().manual_seed(5)
    pol, ref = -torch.rand(3, 4, generator=g) * 10, -torch.rand(3, 4, generator=g) * 10
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]] * 3)
    lengths = torch.full((3, 4), 5)
    fn = Objective({"lipo_lambda": 1.0, "sft": 0.5}, {"beta": 0.5})
    with pytest.raises(ValueError, match="scored"):
        fn(GroupLogps(pol, ref, lengths))
    loss, metrics = fn(GroupLogps(pol, ref, lengths, scores), pairs=((0, 3, 1.0),))
    want = ranked("lipo_lambda", pol, ref, scores, beta=0.5) + 0.5 * call(
        "sft", pol[:, 0], pol[:, 3], chosen_lengths=lengths[:, 0], rejected_lengths=lengths[:, 3])
    torch.testing.assert_close(loss, want)
    assert {"ranked/accuracy", "ranked/margin", "lipo_lambda/loss", "sft/loss"} <= set(metrics)


# ------------------------------------------------------------------------------------------------ ranked


def test_lipo_lambda_two_responses_by_hand():
    # psi = [1, 0]; s = beta*(pi - ref) = [0, 1] -> tau = [2, 1]; G = [1, 0]
    # Delta_01 = |1 - 0| * |1/log2(3) - 1/log2(2)|; loss = Delta_01 * -log sigmoid(0 - 1)
    policy, ref, scores = torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    loss = ranked("lipo_lambda", policy, ref, scores, beta=1.0)
    delta = 1.0 - 1.0 / math.log2(3.0)
    assert loss.item() == pytest.approx(delta * math.log1p(math.e), abs=1e-6)  # 0.4846...
    assert ranked_metrics(policy - ref, scores)["rewards/accuracy"].item() == 0.0


def test_lipo_lambda_three_responses_by_hand():
    # s = [2, 0, 1] -> tau = [1, 3, 2]; psi = [2, 1, 0] -> G = [3, 1, 0]
    policy, scores = torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    loss = ranked("lipo_lambda", policy, None, scores, beta=1.0)
    inv_d = {1: 1.0, 2: 1 / math.log2(3), 3: 1 / math.log2(4)}
    nll = lambda x: math.log1p(math.exp(-x))  # noqa: E731  -log sigmoid(x)
    expected = (
        (3 - 1) * abs(inv_d[1] - inv_d[3]) * nll(2 - 0)  # (0, 1)
        + (3 - 0) * abs(inv_d[1] - inv_d[2]) * nll(2 - 1)  # (0, 2)
        + (1 - 0) * abs(inv_d[3] - inv_d[2]) * nll(0 - 1)  # (1, 2)
    )
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_pro_by_hand_and_grad():
    # scores [1, 3, 2] -> ranking (1, 2, 0); r = [0, 1, 2] -> sorted r = [1, 2, 0]
    policy = torch.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    loss = ranked("pro", policy, None, torch.tensor([[1.0, 3.0, 2.0]]), beta=1.0, normalize=False)
    e = math.exp
    expected = -(1 - math.log(e(1) + e(2) + e(0))) - (2 - math.log(e(2) + e(0)))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.sum().backward()
    assert torch.isfinite(policy.grad).all()
    # with a reference and lengths: r = beta * (pi - ref) / len
    loss2 = ranked(
        "pro", torch.tensor([[0.0, 2.0, 10.0]]), torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[1.0, 3.0, 2.0]]),
        lengths=torch.tensor([[1, 4, 8]]), beta=2.0,
    )
    assert loss2.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", [n for n in RANKED_OBJECTIVES.names() if not RANKED_OBJECTIVES.get(n).needs_tokens])
def test_ranked_shapes(name):
    g = torch.Generator().manual_seed(1)
    policy = (-torch.rand(4, 5, generator=g) * 20).requires_grad_(True)
    ref, scores = -torch.rand(4, 5, generator=g) * 20, torch.randint(0, 4, (4, 5), generator=g).float()
    loss, metrics = Objective(name, {"beta": 0.1})(GroupLogps(policy, ref, torch.full((4, 5), 7), scores), pairs=())
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(policy.grad).all() and policy.grad.abs().sum() > 0
    assert {"ranked/best", "ranked/worst", "ranked/margin", "ranked/accuracy"} == set(metrics)


def test_curriculum_pairs():
    assert curriculum_pairs([1, 9, 5, 3]) == [(1, 0), (1, 3), (1, 2), (2, 0), (2, 3), (3, 0)]
    assert curriculum_pairs(torch.tensor([1, 9, 5, 3]), top_only=True) == [(1, 0), (1, 3), (1, 2)]
    assert curriculum_pairs([2, 2, 1]) == [(0, 2), (1, 2)]  # ties are never paired
    assert curriculum_pairs([[3, 1], [1, 3]]) == [[(0, 1)], [(1, 0)]]


# ------------------------------------------------------------------------------------------ TRL equality

TRL_DPO_LOSSES = {
    # our name -> (TRL loss_type, extra hparams for both sides)
    "sigmoid": ("sigmoid", {}),
    "hinge": ("hinge", {}),
    "ipo": ("ipo", {}),
    "robust": ("robust", {"label_smoothing": 0.2}),
    "sppo_hard": ("sppo_hard", {}),
    "nca_pair": ("nca_pair", {}),
    "bco_pair": ("bco_pair", {}),  # TRL 1.16 has no running-mean shift: delta = 0
    "apo_zero": ("apo_zero", {}),
    "apo_down": ("apo_down", {}),
    "sft": ("sft", {}),
    # TRL 1.16's "sigmoid" lost its label smoothing; "aot" is -(1-eps) log sig(beta d) - eps log sig(-beta d) over
    # batch-sorted log-ratios, which for a single pair (B = 1, sorting is the identity) is exactly cDPO.
    "cdpo": ("aot", {"label_smoothing": 0.2}),
}
PER_ROW_ONLY = {"cdpo"}  # aot sorts across the batch
BATCH_EQUAL_LENGTHS = {"sft"}  # TRL averages sft over all chosen tokens of the batch


@pytest.fixture(scope="module")
def trl_dpo():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trl = pytest.importorskip("trl", reason="TRL (test extra) is not installed; TRL-equivalence tests skipped")
    if trl.__version__ != TRL_VERSION:
        pytest.skip(f"TRL-equivalence tests are written against trl=={TRL_VERSION}, found {trl.__version__}")
    from trl.trainer.dpo_trainer import DPOTrainer

    return DPOTrainer


def _trl_dpo_loss(DPOTrainer, loss_type, beta, label_smoothing, pc_tok, pr_tok, lc, lr, rc, rr):
    """Run TRL's DPOTrainer._compute_loss on per-token policy log-probs ``[B, T]`` (zero past each length)."""
    b, t = pc_tok.shape
    trainer = object.__new__(DPOTrainer)
    trainer.model = SimpleNamespace(training=True)
    trainer.accelerator = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x)
    trainer.aux_loss_enabled = False
    trainer.ld_alpha = None
    trainer.precompute_ref_logps = True
    trainer.f_divergence_type = "reverse_kl"
    trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
    trainer.beta, trainer.label_smoothing = beta, label_smoothing
    trainer.use_weighting = False
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._total_train_tokens, trainer._tp_size = 0, 1
    # input_ids: one prompt token then the completion; completion_mask marks completion tokens
    lengths = torch.cat([lc, lr])
    completion_mask = torch.zeros(2 * b, t + 1, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        completion_mask[row, 1 : 1 + n] = 1
    log_probs = torch.cat([pc_tok, pr_tok])

    def model(**kwargs):
        assert kwargs["fused_lm_head"] is True
        return SimpleNamespace(
            log_probs=log_probs,
            entropy=torch.zeros(2 * b, t),
            mean_logits=torch.zeros(2 * b, t),
            is_top1=torch.zeros(2 * b, t, dtype=torch.bool),
        )

    inputs = {
        "input_ids": torch.ones(2 * b, t + 1, dtype=torch.long),
        "attention_mask": torch.ones(2 * b, t + 1, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }
    return trainer._compute_loss(model, inputs, return_outputs=False)


def _token_batch(b, seed, equal_lengths=False, t=12):
    g = torch.Generator().manual_seed(seed)
    if equal_lengths:
        lc = lr = torch.full((b,), 7)
    else:
        lc, lr = torch.randint(1, t + 1, (b,), generator=g), torch.randint(1, t + 1, (b,), generator=g)
    pos = torch.arange(t)
    pc_tok = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3 * (pos < lc[:, None])
    pr_tok = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3 * (pos < lr[:, None])
    rc = pc_tok.sum(1) + torch.randn(b, generator=g, dtype=torch.float64) * 4
    rr = pr_tok.sum(1) + torch.randn(b, generator=g, dtype=torch.float64) * 4
    return pc_tok, pr_tok, lc, lr, rc, rr


@pytest.mark.parametrize("name", sorted(TRL_DPO_LOSSES))
@pytest.mark.parametrize("beta", [0.1, 0.7])
def test_equal_to_trl_dpo_trainer(trl_dpo, name, beta):
    loss_type, extra = TRL_DPO_LOSSES[name]
    smoothing = extra.get("label_smoothing", 0.0)
    for seed in range(3):
        pc_tok, pr_tok, lc, lr, rc, rr = _token_batch(8, seed, equal_lengths=name in BATCH_EQUAL_LENGTHS)
        pc, pr = pc_tok.sum(1), pr_tok.sum(1)
        loss = call(name, pc, pr, rc, rr, beta=beta, chosen_lengths=lc, rejected_lengths=lr, **extra)
        # per pair (B = 1): TRL's per-sequence loss equals ours exactly
        for i in range(8):
            sl = slice(i, i + 1)
            ref = _trl_dpo_loss(trl_dpo, loss_type, beta, smoothing, pc_tok[sl], pr_tok[sl], lc[sl], lr[sl], rc[sl], rr[sl])
            assert abs(ref.item() - loss[i].item()) <= 1e-6, (name, seed, i, ref.item(), loss[i].item())
        # whole batch: TRL's reduced loss is the mean of ours
        if name not in PER_ROW_ONLY:
            ref = _trl_dpo_loss(trl_dpo, loss_type, beta, smoothing, pc_tok, pr_tok, lc, lr, rc, rr)
            assert abs(ref.item() - loss.mean().item()) <= 1e-6, (name, seed, ref.item(), loss.mean().item())


@pytest.mark.parametrize("beta,gamma", [(2.0, 0.5), (0.1, 1.4)])
def test_simpo_equal_to_trl_cpo_trainer(trl_dpo, beta, gamma):
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    trainer = object.__new__(CPOTrainer)
    trainer.alpha, trainer.loss_type, trainer.label_smoothing = 0.0, "simpo", 0.0
    trainer.beta, trainer.simpo_gamma = beta, gamma
    trainer.accelerator = SimpleNamespace(device=torch.device("cpu"))
    pc, pr, _, _, lc, lr = _batch(16, seed=3)
    loss = call("simpo", pc, pr, None, None, beta=beta, gamma=gamma, chosen_lengths=lc, rejected_lengths=lr)
    # CPOTrainer feeds simpo with length-averaged log-probs (average_log_prob=True)
    ref, _, _ = trainer.cpo_loss(pc / lc, pr / lr)
    assert (ref - loss).abs().max().item() <= 1e-6
