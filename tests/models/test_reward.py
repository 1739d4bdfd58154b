"""The reward model (zoo.models.reward): grouped scoring equals the naive per-response computation on every
backbone stand-in, scores do not depend on the batch, and a saved folder loads back with identical scores."""

from __future__ import annotations

import json

import pytest
import torch

from tests.models.test_pair_logps import ARCHS, encode_pairs, native_ranked_rows, native_rows, policy_for, shapes_rows
from zoo.data.collate import pad_groups
from zoo.models.reward import REWARD_CONFIG, REWARD_HEAD, RewardModel, is_reward_folder, last_positions


def reward_for(arch: str, dtype=torch.float64) -> RewardModel:
    torch.manual_seed(1)
    return RewardModel(policy_for(arch, dtype)).to(dtype)


def rows_for(arch, world, ranked=False):
    from zoo.data.formats import read_rows

    if arch == "composed":
        return (read_rows(world, "ranked")[:2] if ranked else shapes_rows(world)), world
    return (native_ranked_rows() if ranked else native_rows()), None


def naive_rewards(model: RewardModel, groups) -> torch.Tensor:
    """One full forward per response, each with its own media encoding: the definition of the reward."""
    out = torch.zeros(len(groups), groups[0].k, dtype=torch.float64)
    for b, g in enumerate(groups):
        for k in range(g.k):
            one = pad_groups([g.with_responses([g.responses[k]])], model.tokenizer.pad_token_id, "concat")
            out[b, k] = model.group_rewards(one)[0, 0]
    return out


@pytest.mark.parametrize("ranked", [False, True], ids=["pairs", "ranked"])
@pytest.mark.parametrize("arch", ARCHS)
def test_grouped_scoring_equals_one_forward_per_response(arch, ranked, tiny_world):
    model = reward_for(arch).eval()
    rows, root = rows_for(arch, tiny_world, ranked)
    groups = encode_pairs(model.policy, rows, root)
    pad = model.tokenizer.pad_token_id
    with torch.no_grad():
        fast = model.group_rewards(pad_groups(groups, pad, "shared_prefix"))
        concat = model.group_rewards(pad_groups(groups, pad, "concat"))
        naive = naive_rewards(model, groups)
    assert fast.shape == (len(groups), groups[0].k)
    assert naive.std() > 1e-3  # the responses get different rewards: the comparison can fail
    torch.testing.assert_close(fast.double(), naive, atol=1e-6, rtol=0)
    torch.testing.assert_close(concat.double(), naive, atol=1e-6, rtol=0)


def test_grouped_gradients_equal_the_naive_ones(tiny_world):
    """Training through the shared prefix gives every parameter (head, LM, media encoder) the naive gradient."""
    def grads(layout):
        model = reward_for("composed").train()
        groups = encode_pairs(model.policy, shapes_rows(tiny_world), tiny_world)
        r = model.group_rewards(pad_groups(groups, model.tokenizer.pad_token_id, layout))
        torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fast, naive = grads("shared_prefix"), grads("concat")
    assert fast.keys() == naive.keys() and "head.weight" in fast and any("encoders" in n for n in fast)
    for name in naive:
        torch.testing.assert_close(fast[name], naive[name], atol=1e-6, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_the_reward_reads_the_last_token_and_ignores_padding(tiny_world):
    assert last_positions(torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]])).tolist() == [2, 4, 0]
    model = reward_for("composed").eval()
    groups = encode_pairs(model.policy, shapes_rows(tiny_world), tiny_world)
    pad = model.tokenizer.pad_token_id
    with torch.no_grad():
        together = model.group_rewards(pad_groups(groups, pad))
        alone = torch.cat([model.group_rewards(pad_groups([g], pad)) for g in groups])
        # a different last token changes the reward: the head reads the response, not the prompt alone
        g = groups[0]
        cut = g.with_responses([g.responses[0][:-2], g.responses[1]])
        changed = model.group_rewards(pad_groups([cut], pad))
    torch.testing.assert_close(together, alone, atol=1e-9, rtol=0)
    assert abs(float(changed[0, 0] - together[0, 0])) > 1e-6


def test_save_and_load_give_identical_scores(tmp_path, tiny_world):
    from zoo.data.formats import read_rows
    from zoo.models import load_reward_model

    model = reward_for("composed", torch.float32).eval()
    rows = read_rows(tiny_world, "pairs")[:3]
    texts = [["The circle is red.", "The circle is red. The square is blue.", ""] for _ in rows]
    before = model.score(rows, texts, media_root=tiny_world)
    folder = model.save_pretrained(tmp_path / "rm")
    assert is_reward_folder(folder) and (folder / REWARD_HEAD).is_file() and (folder / "config.json").is_file()
    assert json.loads((folder / REWARD_CONFIG).read_text())["hidden_size"] == model.head.in_features
    loaded = load_reward_model(folder)
    assert not loaded.training
    assert loaded.score(rows, texts, media_root=tiny_world) == before
    assert len({round(s, 6) for s in before[0]}) == 3  # three texts, three different rewards
    with pytest.raises(FileNotFoundError, match="not a reward model folder"):
        load_reward_model(tiny_world)


def test_score_groups_by_prompt_and_names_a_bad_row(tiny_world):
    from zoo.data.formats import read_rows
    from zoo.data.schema import DataError

    model = reward_for("composed", torch.float32).eval()
    rows = read_rows(tiny_world, "pairs")[:3]
    texts = [["The star is green."], ["A.", "B.", "C."], ["The cross is red.", "The cross is blue."]]
    together = model.score(rows, texts, media_root=tiny_world, batch_size=2)
    assert [len(s) for s in together] == [1, 3, 2]
    alone = [model.score([r], [t], media_root=tiny_world)[0] for r, t in zip(rows, texts)]
    for a, b in zip(together, alone):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)
    no_image = {**rows[0], "images": [], "example_index": "pairs[0]"}
    with pytest.raises(DataError, match=r"example pairs\[0\], field 'images'"):
        model.score([no_image], [["x"]], media_root=tiny_world)
    no_prompt = {k: v for k, v in rows[1].items() if k != "prompt"} | {"example_index": "pairs[1]"}
    with pytest.raises(DataError, match=r"example pairs\[1\], field 'prompt': missing"):
        model.score([no_prompt], [["x"]], media_root=tiny_world)
