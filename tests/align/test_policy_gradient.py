"""GRPO, Dr. GRPO, DAPO and RLOO (zoo.align.objectives.policy_gradient) against the papers' formulas written
out token by token; the on-policy group source (zoo.align.pairs.online.OnlineGroups); TR-DPO's refresh."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.align.objectives import RANKED_OBJECTIVES, GroupLogps, Objective, TokenLogps
from zoo.align.objectives.policy_gradient import group_advantages, leave_one_out_advantages

PG = ("grpo", "dr_grpo", "dapo", "rloo")


def _group(b=3, k=4, t=6, seed=0, old_shift=0.3):
    """Token log-probs with ragged response lengths, an old policy off by up to ``old_shift`` (so that some
    ratios leave the clip range) and rewards with ties."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b, k), generator=g)
    mask = (torch.arange(t) < lengths.unsqueeze(-1)).double()
    policy = (-torch.rand(b, k, t, generator=g, dtype=torch.float64) * 3) * mask
    old = (policy + (torch.rand(b, k, t, generator=g, dtype=torch.float64) - 0.5) * 2 * old_shift) * mask
    ref = (-torch.rand(b, k, t, generator=g, dtype=torch.float64) * 3) * mask
    scores = torch.randint(-2, 1, (b, k), generator=g).double()
    return policy.requires_grad_(True), old, ref, mask, scores


def _lp(policy, old, ref, mask, scores):
    return GroupLogps(policy=policy.sum(-1), reference=None if ref is None else ref.sum(-1), lengths=mask.sum(-1), scores=scores,
                      tokens=TokenLogps(policy=policy, mask=mask, reference=ref, old=old))


def _mean(xs):
    return sum(xs) / len(xs)


def _std(xs):  # Bessel-corrected, as the group std of GRPO
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _token_term(p, o, r, a, beta, eps_low, eps_high):
    """−(min(ρA, clip(ρ)A) − β k3) for one token, from the formulas (plain floats)."""
    ratio = math.exp(p - o)
    surrogate = min(ratio * a, min(max(ratio, 1 - eps_low), 1 + eps_high) * a)
    q = r - p
    return -(surrogate - beta * (math.exp(q) - q - 1))


def _reference_loss(name, policy, old, ref, mask, scores, beta, eps_low, eps_high, max_tokens=None):
    """The loss per prompt, with loops over responses and tokens (DeepSeekMath Eq. 3, Dr. GRPO, DAPO Eq. 8,
    RLOO's leave-one-out REINFORCE)."""
    B, K, _ = policy.shape
    P, O, R, M, S = (x.detach().tolist() for x in (policy, old, ref, mask, scores))
    lengths = [[int(sum(M[b][i])) for i in range(K)] for b in range(B)]
    total_tokens = sum(sum(row) for row in lengths)
    out = []
    for b in range(B):
        rewards = S[b]
        if name == "rloo":
            kl = [sum(P[b][i][t] - R[b][i][t] for t in range(lengths[b][i])) for i in range(K)]
            penalised = [rewards[i] - beta * kl[i] for i in range(K)]
            adv = [penalised[i] - _mean([penalised[j] for j in range(K) if j != i]) for i in range(K)]
            seq = [-sum(-_token_term(P[b][i][t], O[b][i][t], R[b][i][t], adv[i], 0.0, eps_low, eps_high)
                        for t in range(lengths[b][i])) for i in range(K)]
            out.append(_mean(seq))
            continue
        if name == "dr_grpo":
            adv = [x - _mean(rewards) for x in rewards]
        else:
            adv = [(x - _mean(rewards)) / (_std(rewards) + 1e-4) for x in rewards]
        sums = [sum(_token_term(P[b][i][t], O[b][i][t], R[b][i][t], adv[i], beta, eps_low, eps_high)
                    for t in range(lengths[b][i])) for i in range(K)]
        if name == "grpo":
            out.append(_mean([sums[i] / lengths[b][i] for i in range(K)]))
        elif name == "dr_grpo":
            out.append(sum(sums) / (K * max_tokens))
        else:  # dapo: Σ over the batch's tokens / their count, per prompt times B
            out.append(sum(sums) / total_tokens * B)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("name", PG)
def test_policy_gradient_losses_equal_the_papers_formulas(name):
    policy, old, ref, mask, scores = _group()
    hp = {"beta": 0.07, "epsilon": 0.1, "epsilon_high": 0.15}
    if name == "dr_grpo":
        hp["max_tokens"] = 9
    loss = RANKED_OBJECTIVES.get(name)(_lp(policy, old, ref, mask, scores), **hp)
    expected = _reference_loss(name, policy, old, ref, mask, scores, hp["beta"], hp["epsilon"], hp["epsilon_high"],
                               hp.get("max_tokens"))
    assert loss.shape == (3,)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-10, atol=1e-10)
    # the clip acts in this batch: some ratios are outside [1 − ε, 1 + ε_high]
    ratio = torch.exp(policy.detach() - old)[mask.bool()]
    assert ((ratio < 0.9) | (ratio > 1.15)).any()


def test_one_update_per_sample_is_reinforce_with_the_group_advantage():
    """With ``old`` None (μ = 1) the ratio is 1: GRPO's gradient on token t of response i is −A_i / (K |y_i|)
    (β = 0), and the loss value is −mean A = 0."""
    policy, _, ref, mask, scores = _group(old_shift=0)
    lp = _lp(policy, None, ref, mask, scores)
    loss = RANKED_OBJECTIVES.get("grpo")(lp, beta=0.0)
    loss.sum().backward()
    adv = group_advantages(scores)
    expected = -(adv / (4 * mask.sum(-1))).unsqueeze(-1) * mask
    torch.testing.assert_close(policy.grad, expected)
    assert loss.detach().abs().max() < 1e-12


def test_the_advantages():
    rewards = torch.tensor([[1.0, 0.0, 0.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    torch.testing.assert_close(leave_one_out_advantages(rewards)[0],
                               torch.tensor([1 - (-1 / 3), 0 - 0, 0 - 0, -1 - 1 / 3]))
    assert (leave_one_out_advantages(rewards)[1] == 0).all() and (group_advantages(rewards)[1] == 0).all()
    # RLOO's baseline is GRPO's centring scaled by K / (K − 1)
    torch.testing.assert_close(leave_one_out_advantages(rewards), group_advantages(rewards, scale=False) * 4 / 3)
    assert group_advantages(rewards)[0].std().item() == pytest.approx(1.0, abs=1e-3)


def test_the_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    policy, _, _, mask, scores = _group()
    same = _lp(policy, None, policy.detach(), mask, torch.zeros_like(scores))  # equal rewards: no advantage
    loss = RANKED_OBJECTIVES.get("grpo")(same, beta=1.0)
    assert loss.detach().abs().max() < 1e-12
    other = _lp(policy, None, policy.detach() - 0.5 * mask, mask, torch.zeros_like(scores))
    assert (RANKED_OBJECTIVES.get("grpo")(other, beta=1.0) > 0).all()


def test_objective_wiring_reference_tokens_and_metrics():
    assert Objective("grpo").needs_reference and Objective("grpo").needs_tokens
    assert not Objective("grpo", {"beta": 0}).needs_reference
    assert not Objective("dapo").needs_reference and Objective("dapo", {"beta": 0.1}).needs_reference
    assert not Objective("sigmoid").needs_tokens
    with pytest.raises(ValueError, match="epsilon must be in"):
        Objective("grpo", {"epsilon": 1.5})
    policy, old, ref, mask, scores = _group()
    loss, metrics = Objective("grpo")(_lp(policy, old, ref, mask, scores), pairs=())
    assert loss.shape == (3,)
    assert {"pg/reward", "pg/reward_std", "pg/uniform_groups", "pg/advantage_abs", "pg/clipped", "pg/kl"} == set(metrics)
    assert 0 < metrics["pg/clipped"] < 1 and metrics["pg/kl"] > 0
    with pytest.raises(ValueError, match="per-token log-probs"):
        Objective("grpo")(GroupLogps(policy.sum(-1), ref.sum(-1), mask.sum(-1), scores), pairs=())
    with pytest.raises(ValueError, match="reference=frozen or lora_disabled"):
        RANKED_OBJECTIVES.get("grpo")(_lp(policy, old, None, mask, scores), beta=0.1)


# ------------------------------------------------------------------------------------- the group source


def _encoded(tiny_policy, tiny_world, n=2):
    from zoo.data.batches import ExampleBatch
    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows

    rows = read_rows(tiny_world, "pairs")[:n]
    encoder = ExampleEncoder(tiny_policy.processor, max_length=128, media_root=tiny_world)
    return rows, ExampleBatch([encoder.encode_group(r, f"pairs[{i}]") for i, r in enumerate(rows)])


def test_the_group_source_keeps_all_k_with_rewards_and_the_eos_penalty(tiny_policy, tiny_world, monkeypatch):
    from zoo.align.judges import VerifierJudge
    from zoo.align.pairs.online import OnlineGroups
    from zoo.models.policy import Generation

    from modalities.synthetic.shapes import SHAPES

    rows, batch = _encoded(tiny_policy, tiny_world)
    eos = tiny_policy.tokenizer.eos_token_id
    present = [o["shape"] for o in rows[0]["objects"]]
    absent = next(s for s in SHAPES if s not in present)
    exact = " ".join(f"The {s} is red." for s in present)
    texts = [exact, f"{exact} The {absent} is red.", exact] + ["The x."] * 3  # prompt 1: all equal
    ids = [[10 + r, 20 + r, eos] for r in range(6)]
    ids[2] = [12, 22]  # cut off: no EOS
    finished = [True, True, False, True, True, True]
    monkeypatch.setattr(type(tiny_policy), "generate_group",
                        lambda self, b, k, **kw: Generation(ids, texts, finished), raising=True)
    source = OnlineGroups(VerifierJudge(), source=str(tiny_world), split="pairs", k=3, eos_penalty=2.0)
    out = source(tiny_policy, batch, step=0)
    omitted = len(set(rows[1]["objects"][i]["shape"] for i in range(len(rows[1]["objects"]))))
    assert out.k == 3 and out.pairs == ()
    torch.testing.assert_close(out.scores, torch.tensor([[0.0, -1.0, -2.0], [-0.5 * omitted] * 3]))
    row = lambda k, b: out.responses.input_ids[k * 2 + b][out.responses.attention_mask[k * 2 + b].bool()].tolist()  # noqa: E731
    assert row(0, 0) == ids[0] and row(2, 0) == [12, 22, eos]  # EOS appended to the cut-off response
    assert source.metrics["online/uniform"] == 0.5 and source.metrics["online/kept"] == 1.0


    class CountingJudge(VerifierJudge):  # a judge with metrics of its own (as the prompted judge's ties)
        def __call__(self, texts, references):
            self.metrics = {"judge/asked": float(len(texts))}
            return super().__call__(texts, references)

    dropping = OnlineGroups(CountingJudge(), source=str(tiny_world), split="pairs", k=3, drop_uniform=True)
    kept = dropping(tiny_policy, batch, step=0)
    assert kept.example_index == ["pairs[0]"] and dropping.metrics["online/kept"] == 0.5
    assert dropping.metrics["judge/asked"] == 6.0  # the judge's metrics are logged with the source's


def test_mu_updates_reuse_one_sample_with_its_behaviour_log_probs(tiny_policy, tiny_world):
    from zoo.align.judges import VerifierJudge
    from zoo.align.objectives import stack_tokens
    from zoo.align.pairs.online import OnlineGroups
    from zoo.models.policy import eval_mode

    _, batch = _encoded(tiny_policy, tiny_world)
    source = OnlineGroups(VerifierJudge(), source=str(tiny_world), split="pairs", k=2, max_new_tokens=4, iterations=2)
    first = source(tiny_policy, batch, step=4)
    assert source(tiny_policy, batch, step=5) is first and source.metrics["online/reused"] == 1.0
    with eval_mode(tiny_policy), torch.no_grad():
        expected = stack_tokens([s.token_logps for s in tiny_policy.group_logps(first)])
    torch.testing.assert_close(first.behaviour, expected)
    assert source(tiny_policy, batch, step=6) is not first  # a new sample after μ steps
    with pytest.raises(ValueError, match="iterations"):
        OnlineGroups(VerifierJudge(), source="x", iterations=0)


def test_the_grpo_loss_is_the_same_in_both_layouts(tiny_policy, tiny_world):
    """Token log-probs of the shared-prefix layout (one [B, K, R] block) and the concat layout (K sides padded
    to one width) line up: the module's GRPO loss is the same."""
    from zoo.align.judges import VerifierJudge
    from zoo.align.pairs.online import OnlineGroups
    from zoo.align.reference import FrozenReference
    from zoo.train.modules import PreferenceModule

    _, batch = _encoded(tiny_policy, tiny_world)
    losses = []
    for layout in ("shared_prefix", "concat"):
        source = OnlineGroups(VerifierJudge(), source=str(tiny_world), split="pairs", k=3, max_new_tokens=6,
                              layout=layout, seed=3)
        module = PreferenceModule(tiny_policy, torch.optim.SGD, Objective("grpo", {"beta": 0.1}),
                                  FrozenReference(), source)
        # perturb the reference so that the KL term is not zero
        with torch.no_grad():
            for p in module.reference.policy.model.parameters():
                p.mul_(0.9)
        loss, metrics = module.loss(batch)
        losses.append((loss.detach(), metrics["pg/kl"]))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses[0][1], losses[1][1], rtol=1e-5, atol=1e-6)
    assert losses[0][1] > 0


def test_grpo_and_rloo_train_from_the_cli(tmp_path):
    from tests.train.test_sft import tiny_overrides
    from zoo.train.run import compose_config, train

    small = ["module.pairs.k=3", "module.pairs.max_new_tokens=6", "data.batch_size=2"]
    metrics = train(compose_config(["recipe=grpo", *tiny_overrides(tmp_path, steps=2), *small]))
    assert metrics["global_step"] == 2 and math.isfinite(metrics["train/loss"])
    assert 0 <= metrics["train/pg/uniform_groups"] <= 1 and metrics["train/pg/kl"] >= 0
    cfg = compose_config(["recipe=rloo", *tiny_overrides(tmp_path / "rloo", steps=2), *small])
    assert list(cfg.module.objective.terms) == ["rloo"]
    assert train(cfg)["global_step"] == 2


# ------------------------------------------------------------------------------------------ TR-DPO refresh


def test_the_reference_refresh_arithmetic(tiny_policy):
    import copy

    from zoo.align.reference import FrozenReference

    policy = copy.deepcopy(tiny_policy)
    ref = FrozenReference(refresh_every=3, refresh_alpha=0.25).attach(policy)
    start = {n: p.detach().clone() for n, p in ref.policy.model.named_parameters()}
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(1.0)
    for step in (1, 2):
        ref.on_step(policy, step)  # not a multiple of τ: unchanged
    assert all(torch.equal(p, start[n]) for n, p in ref.policy.model.named_parameters())
    ref.on_step(policy, 3)
    for name, p in ref.policy.model.named_parameters():
        torch.testing.assert_close(p, 0.25 * (start[name] + 1.0) + 0.75 * start[name])
        assert not p.requires_grad
    hard = FrozenReference(refresh_every=1).attach(tiny_policy)
    hard.on_step(policy, 1)
    assert all(torch.equal(p, q) for p, q in zip(hard.policy.model.parameters(), policy.model.parameters()))
    for kwargs, message in [({"refresh_every": -1}, "refresh_every"), ({"refresh_alpha": 0}, "refresh_alpha"),
                            ({"refresh_alpha": 1.5}, "refresh_alpha")]:
        with pytest.raises(ValueError, match=message):
            FrozenReference(**kwargs)
