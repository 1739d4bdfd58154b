"""The reward model as a judge (zoo.align.judges.reward_model), its training module (Bradley–Terry loss and
reward accuracy), the held-out split, and `recipe=reward` from the command line to a loadable folder."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.conftest import build_tiny_policy
from zoo.align.judges import JUDGES
from zoo.align.judges.reward_model import RewardModelJudge
from zoo.data.collate import ExampleEncoder
from zoo.data.formats import read_rows
from zoo.data.schema import DataError
from zoo.models.reward import RewardModel
from zoo.train.modules import RewardModule, bradley_terry


def module_for(policy, **kwargs) -> RewardModule:
    return RewardModule(policy, functools.partial(torch.optim.AdamW, lr=3e-3), **kwargs)


def pair_batch(module, world, n=8, split="pairs"):
    rows = read_rows(world, split)[:n]
    encoder = ExampleEncoder(module.policy.processor, 96, media_root=world)
    groups = [encoder.encode_group(r, f"{split}[{i}]") for i, r in enumerate(rows)]
    return module.pairs.collate(groups, module.policy.tokenizer.pad_token_id)


def test_the_loss_is_bradley_terry_and_accuracy_counts_chosen_above_rejected(tiny_world):
    chosen, rejected = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.5])
    expected = [-torch.log(torch.sigmoid(torch.tensor(d))) for d in (1.0, -1.0, 0.0)]
    torch.testing.assert_close(bradley_terry(chosen, rejected), torch.stack(expected))

    module = module_for(build_tiny_policy(), center=0.1).eval()
    batch = pair_batch(module, tiny_world)
    with torch.no_grad():
        loss, metrics = module.loss(batch)
        r = module.reward.group_rewards(batch)
    bt = -torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).mean()
    torch.testing.assert_close(loss, bt + 0.1 * ((r[:, 0] + r[:, 1]) ** 2).mean())
    assert float(metrics["rewards/accuracy"]) == float((r[:, 0] > r[:, 1]).float().mean())
    torch.testing.assert_close(metrics["rewards/margin"], (r[:, 0] - r[:, 1]).mean())
    # the module's parameters: the policy's and the head's, each once (the checkpoint holds policy.* and head.*)
    names = [n for n, _ in module.named_parameters()]
    assert "head.weight" in names and all(n.startswith(("policy.", "head.")) for n in names)
    assert len(names) == len(set(names)) and sum(n.startswith("head.") for n in names) == 2


def test_the_module_refuses_bad_settings():
    from zoo.align.pairs.online import OnlineDPOPairs
    from zoo.align.judges import VerifierJudge

    policy = build_tiny_policy()
    with pytest.raises(ValueError, match="center must be"):
        module_for(policy, center=-1)
    with pytest.raises(ValueError, match="head_lr must be"):
        module_for(policy, head_lr=0)
    with pytest.raises(ValueError, match="annotated pairs"):
        module_for(policy, pairs=OnlineDPOPairs(VerifierJudge(), source="x"))


def test_the_held_out_pairs_share_no_image_with_training(tiny_world, tmp_path):
    from zoo.train.data import PairDataModule, held_out

    data = PairDataModule(str(tiny_world), holdout=0.3)
    train, val = data.rows("pairs"), data.rows(data.val_split)
    assert data.val_split == "pairs:heldout" and train and val
    assert len(train) + len(val) == len(read_rows(tiny_world, "pairs"))
    assert not {tuple(r["images"]) for r in train} & {tuple(r["images"]) for r in val}
    assert {r["example_index"] for r in val} <= {f"pairs[{i}]" for i in range(len(train) + len(val))}
    # the side of a row is a function of its media alone
    row = read_rows(tiny_world, "pairs")[0]
    assert held_out(row, 0.3) == held_out({**row, "chosen": "other", "id": "x"}, 0.3)
    share = sum(held_out({"images": [f"images/{i}.png"]}, 0.2) for i in range(4000)) / 4000
    assert abs(share - 0.2) < 4 * (0.16 / 4000) ** 0.5
    with pytest.raises(ValueError, match="holdout must be a number in"):
        PairDataModule(str(tiny_world), holdout=1.0)
    with pytest.raises(ValueError, match="set val_split=null"):
        PairDataModule(str(tiny_world), holdout=0.1, val_split="test")


def caption_pairs(world, n=12):
    """(row, true caption, the true caption + one sentence about a shape the image lacks) for n pair rows."""
    from modalities.synthetic.shapes import SHAPES, caption

    out = []
    for row in read_rows(world, "pairs")[:n]:
        present = {o["shape"] for o in row["objects"]}
        absent = next(s for s in SHAPES if s not in present)
        truth = caption(row["objects"])
        out.append((row, truth, f"{truth} The {absent} is red and at the top left."))
    return out


def test_the_judge_is_the_models_score_grouped_by_reference(tiny_world, tmp_path):
    torch.manual_seed(0)
    model = RewardModel(build_tiny_policy()).eval()
    folder = model.save_pretrained(tmp_path / "rm")
    judge = JUDGES.get("reward_model")(str(folder), source=str(tiny_world), batch_size=2)
    assert isinstance(judge, RewardModelJudge) and judge._model is None  # loaded on first use
    pairs = caption_pairs(tiny_world, 3)
    # prompt-major like the online sources (K = 2 copies of each reference), then interleaved
    texts = [t for _, truth, wrong in pairs for t in (truth, wrong)]
    refs = [row for row, _, _ in pairs for _ in range(2)]
    scores = judge(texts, refs)
    expected = model.score([r for r, _, _ in pairs], [[t, w] for _, t, w in pairs], media_root=tiny_world)
    torch.testing.assert_close(torch.tensor(scores), torch.tensor(expected).flatten(), atol=1e-5, rtol=0)
    order = [1, 4, 0, 3, 5, 2]
    shuffled = judge([texts[i] for i in order], [refs[i] for i in order])
    torch.testing.assert_close(torch.tensor(shuffled), torch.tensor([scores[i] for i in order]), atol=1e-5, rtol=0)
    assert judge(texts, refs) == scores and not judge.model.training  # deterministic, eval mode
    assert not any(p.requires_grad for p in judge.model.parameters())

    # each reference's image is encoded once per call: 3 references, batch_size 2 → 2 media encodings of 2 + 1
    calls = []
    encode = judge.model.policy.model.encode_media
    judge.model.policy.model.encode_media = lambda inputs: calls.append(len(inputs["pixel_values"])) or encode(inputs)
    judge(texts, refs)
    assert sorted(calls) == [1, 2]


def test_the_judge_names_a_bad_reference(tiny_world, tmp_path):
    torch.manual_seed(0)
    folder = RewardModel(build_tiny_policy()).save_pretrained(tmp_path / "rm")
    judge = RewardModelJudge(str(folder), source=str(tiny_world))
    row = read_rows(tiny_world, "pairs")[0]
    with pytest.raises(DataError, match=r"example pairs\[7\], field 'prompt': missing"):
        judge(["x"], [{"images": row["images"], "example_index": "pairs[7]"}])
    with pytest.raises(DataError, match=rf"example {row['id']}, field 'images'"):
        judge(["x"], [{**row, "images": []}])
    with pytest.raises(ValueError, match="no reward model folder"):
        RewardModelJudge(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="not a reward model folder"):
        RewardModelJudge(str(tiny_world))


def test_a_briefly_trained_judge_prefers_the_true_caption(tiny_world, tmp_path):
    """Twenty Bradley–Terry steps on 16 images' pairs (the true caption vs the true caption + a sentence about a
    shape the image lacks): the judge then ranks the true caption first on the 8 other images, which the
    untrained model does not. Nothing is truncated (max_length None): a cut response would lose the sentence
    that makes the difference."""
    torch.manual_seed(0)
    module = module_for(build_tiny_policy())
    pairs = caption_pairs(tiny_world, 24)
    train, test = pairs[:16], pairs[16:]

    def preferred(folder):
        judge = RewardModelJudge(str(folder), source=str(tiny_world))
        scores = judge([t for _, a, b in test for t in (a, b)], [r for r, _, _ in test for _ in range(2)])
        return sum(scores[2 * i] > scores[2 * i + 1] for i in range(len(test)))

    def say(text):
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]

    encoder = ExampleEncoder(module.policy.processor, None, media_root=tiny_world)
    groups = [encoder.encode_group({**row, "chosen": say(a), "rejected": say(b)}, i)
              for i, (row, a, b) in enumerate(train)]
    batch = module.pairs.collate(groups, module.policy.tokenizer.pad_token_id)
    before = preferred(module.reward.save_pretrained(tmp_path / "before"))
    optimizer = torch.optim.AdamW([{"params": [p for n, p in module.named_parameters() if not n.startswith("head.")]},
                                   {"params": list(module.head.parameters()), "lr": 1e-2}], lr=3e-3)
    module.train()
    for _ in range(20):
        loss, _ = module.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = preferred(module.reward.save_pretrained(tmp_path / "after"))
    assert after == len(test) and before < len(test), (before, after)


def test_recipe_reward_trains_from_the_cli_to_a_loadable_folder(tmp_path, tiny_world):
    from tests.train.test_sft import tiny_overrides
    from zoo.models.reward import is_reward_folder
    from zoo.train.run import compose_config, train
    from zoo.zoo_model import load

    cfg = compose_config(["recipe=reward", *tiny_overrides(tmp_path, steps=2), "data.world_config.n_pairs=40",
                          "data.holdout=0.25", "logger=csv"])
    assert cfg.module._target_ == "zoo.train.modules.RewardModule" and cfg.data.val_split is None
    metrics = train(cfg)
    assert metrics["global_step"] == 2
    for key in ("train/loss", "train/rewards/accuracy", "val/loss", "val/rewards/accuracy", "val/rewards/margin"):
        assert key in metrics, key
    assert 0 <= metrics["val/rewards/accuracy"] <= 1 and set(metrics["data"]) == {"pairs", "pairs:heldout"}
    folder = tmp_path / "run" / "model"
    assert is_reward_folder(folder)
    loaded = load(folder)
    rows = read_rows(tmp_path / "data" / "shapes-0", "pairs")[:2]
    world = tmp_path / "data" / "shapes-0"
    scores = loaded.score_rows(rows, [["The circle is red.", "The star is blue."]] * 2, media_root=world)
    assert len(scores) == 2 and all(len(s) == 2 for s in scores)
    # one user turn, as generate takes it: the same prompt (the world's caption prompt) and image as the row's
    assert rows[0]["prompt"][0]["content"][-1]["text"] == "Describe the image."
    direct = loaded.score("Describe the image.", ["The circle is red.", "The star is blue."],
                          images=[world / rows[0]["images"][0]])
    assert direct == pytest.approx(scores[0], abs=1e-5)
    judge = RewardModelJudge(str(folder), source=str(world))
    assert judge(["The circle is red.", "The star is blue."], [rows[0], rows[0]]) == pytest.approx(scores[0], abs=1e-5)

    # pushed like any run: the local hub keeps the head and the marker, load() gives back a scoring model with its card
    from zoo.hub import LocalHub, push_run

    hub = LocalHub(tmp_path / "hub")
    push_run(tmp_path / "run", "zoo/rm-test", hub)
    pushed = load("zoo/rm-test", hub=hub)
    assert pushed.source == "local-hub" and "reward model" in repr(pushed)
    assert pushed.score_rows(rows, [["The circle is red.", "The star is blue."]] * 2, media_root=world) == scores
    assert "reward-model" in pushed.card and "model.score(" in pushed.card and "held out by image" in pushed.card

    # zoo export of its last checkpoint: the same reward-model folder (head included), the same scores
    from zoo.models import load_reward_model
    from zoo.train.export import export_checkpoint

    exported = export_checkpoint(tmp_path / "run", tmp_path / "exported", "last")
    again = load_reward_model(exported).score(rows, [["The circle is red.", "The star is blue."]] * 2, media_root=world)
    assert [x for s in again for x in s] == pytest.approx([x for s in scores for x in s], abs=1e-6)

    # online DPO judged by it: the documented pairs option, built at validation (a wrong folder is one line)
    from zoo.train.validate import ConfigError, validate_config

    online = ["recipe=online_dpo", "pairs=online_dpo_rm", *tiny_overrides(tmp_path / "online", steps=1),
              f"data_root={tmp_path / 'data'}", "data.world_config.n_pairs=40", "module.pairs.k=3",
              "module.pairs.max_new_tokens=6", "data.batch_size=4", "logger=csv"]
    with pytest.raises(ConfigError, match="module.pairs: reward_model judge: no reward model folder"):
        validate_config(compose_config([*online, f"module.pairs.judge.path={tmp_path / 'nothing'}"]))
    cfg = compose_config([*online, f"module.pairs.judge.path={folder}"])
    assert cfg.module.pairs.judge.source == str(world)
    metrics = train(cfg)
    assert metrics["global_step"] == 1 and 0 <= metrics["train/online/ties"] <= 1


def test_recipe_reward_validates():
    from zoo.train.run import compose_config
    from zoo.train.validate import ConfigError, validate_config

    validate_config(compose_config(["recipe=reward", "model=pretrained", "model.path=unused"]))
    with pytest.raises(ConfigError, match="data.holdout must be a number"):
        validate_config(compose_config(["recipe=reward", "model=pretrained", "model.path=unused", "data.holdout=some"]))
