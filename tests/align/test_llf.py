"""LLF (zoo/align/pairs/llf.py): the refine loop, its media reuse, the judge filter, the audit records, resume,
the fraction of prompts, and the recipes end to end."""

from __future__ import annotations

import json

import pytest

from zoo.align.pairs.llf import LLFConfig, LLFPairs, LLFSampler, generate_dataset, summarize, verdict
from zoo.data.critique import REFINE_INSTRUCTION, refine_row


class ScriptedCritic:
    """Writes "critique of <response>" and remembers what it was asked."""

    def __init__(self):
        self.calls = []

    def __call__(self, references, responses):
        self.calls.append((list(references), list(responses)))
        return [f"Remove the extra shape from: {r}" for r in responses]


class LengthJudge:
    """Scores a response by minus its length: shorter is better (a filter whose verdicts are known)."""

    def __call__(self, texts, references):
        return [-float(len(t)) for t in texts]


@pytest.fixture()
def rows(tiny_world):
    from zoo.data.formats import read_rows

    return read_rows(tiny_world, "pairs")


def test_verdicts():
    assert verdict("a", "b", (True, True), None) == "kept"
    assert verdict("a", "", (True, True), None) == "empty" and verdict(" ", "b", (True, True), None) == "empty"
    assert verdict("a", "b", (True, False), None) == "unfinished"
    assert verdict("a b", " a b ", (True, True), None) == "unchanged"
    assert verdict("a", "b", (True, True), (-1.0, -1.0)) == "not_better"
    assert verdict("a", "b", (True, True), (-2.0, -1.0)) == "kept"


def test_the_refine_turn_shows_the_answer_and_the_critique(rows):
    row = refine_row(rows[0], "The star is red.", "There is no star: remove it.")
    assert row["prompt"][:1] == rows[0]["prompt"] and row["images"] == rows[0]["images"]
    assert row["prompt"][1] == {"role": "assistant", "content": [{"type": "text", "text": "The star is red."}]}
    assert row["prompt"][2]["role"] == "user"
    assert row["prompt"][2]["content"][0]["text"] == f"There is no star: remove it.\n{REFINE_INSTRUCTION}"


def test_refinement_reuses_the_media_of_the_first_answer_exactly(tiny_policy, tiny_world, rows):
    """The speed trick: the refine generation takes the media encoded for the first answer; proven equal to
    encoding them again (greedy, so the texts must match token for token)."""
    sampler = LLFSampler(tiny_policy, ScriptedCritic(), config=LLFConfig(temperature=0, max_new_tokens=8),
                         media_root=tiny_world)
    ids = [f"r{i}" for i in range(3)]
    first, media = sampler._generate(rows[:3], ids, None, 0.0, 0)
    refine = [refine_row(r, t or "x", "Fix it.") for r, t in zip(rows[:3], first.texts)]
    reused, _ = sampler._generate(refine, ids, media, 0.0, 1)
    fresh, _ = sampler._generate(refine, ids, None, 0.0, 1)
    assert reused.token_ids == fresh.token_ids
    # the refine prompt holds the instruction after the first answer (the critique reaches the policy)
    encoded = [sampler.encoder.encode(r, i, None) for r, i in zip(refine, ids)]
    assert all(REFINE_INSTRUCTION in tiny_policy.tokenizer.decode(e.input_ids) for e in encoded)


def test_the_loop_asks_the_critic_about_the_policys_answers(tiny_policy, tiny_world, rows):
    critic = ScriptedCritic()
    sampler = LLFSampler(tiny_policy, critic, config=LLFConfig(max_new_tokens=6), media_root=tiny_world)
    records = sampler.sample(rows[:4], [f"r{i}" for i in range(4)], chunk=0)
    (asked_rows, asked_answers), = critic.calls  # one critic call for the whole chunk
    assert asked_rows == rows[:4]
    assert asked_answers == [r["answer"] or "(no answer)" for r in records]
    assert [r["critique"] for r in records] == [f"Remove the extra shape from: {a}" for a in asked_answers]
    for record in records:
        assert set(record) == {"answer", "critique", "refinement", "finished", "scores", "reason"}
        assert record["scores"] is None  # no judge
    # deterministic: the same chunk gives the same answers; another chunk number other samples
    again = LLFSampler(tiny_policy, ScriptedCritic(), config=LLFConfig(max_new_tokens=6), media_root=tiny_world)
    assert [r["answer"] for r in again.sample(rows[:4], [f"r{i}" for i in range(4)], chunk=0)] == \
        [r["answer"] for r in records]


def test_the_judge_filter_keeps_only_better_refinements(tiny_policy, tiny_world, tmp_path, monkeypatch):
    """Answers and refinements scripted: the length judge prefers the shorter; kept rows are pairs, the rest are
    dropped with their reason, and every row carries its audit."""
    from zoo.models.policy import Generation

    answers = ["The circle is red.", "The star is blue and big.", "The cross.", "A"]
    refinements = ["The circle.", "The star is blue and big and more.", "The cross.", "B"]
    finished = [[True, True, True, True], [True, True, True, False]]
    calls = iter([(answers, finished[0]), (refinements, finished[1])])

    def scripted(self, batch, media=None, **kw):
        texts, done = next(calls)
        return Generation([[5]] * len(texts), texts, done)

    monkeypatch.setattr(type(tiny_policy), "generate", scripted)
    summary = generate_dataset(tiny_policy, tiny_world, tmp_path / "out", ScriptedCritic(), judge=LengthJudge(),
                               limit=4, config={"batch_size": 4}, progress=False)
    kept = [json.loads(line) for line in (tmp_path / "out" / "llf.jsonl").read_text().splitlines()]
    dropped = [json.loads(line) for line in (tmp_path / "out" / "llf.dropped.jsonl").read_text().splitlines()]
    assert len(kept) == 1 and kept[0]["llf"]["reason"] == "kept" and kept[0]["llf"]["kept"]
    assert kept[0]["chosen"][0]["content"][0]["text"] == "The circle."
    assert kept[0]["rejected"][0]["content"][0]["text"] == "The circle is red."
    assert kept[0]["llf"]["scores"] == [-18.0, -11.0]
    assert kept[0]["llf"]["critique"] == "Remove the extra shape from: The circle is red."
    assert {d["llf"]["reason"] for d in dropped} == {"not_better", "unchanged", "unfinished"}
    assert all("chosen" not in d and "rejected" not in d for d in dropped)
    assert all("hallucination" not in r and "chosen_errors" not in r for r in kept + dropped)  # no annotation kept
    assert summary["pairs"] == 1 and summary["dropped"] == {"not_better": 1, "unchanged": 1, "unfinished": 1}
    assert summary["judge"]["refinement_better"] == 0.25 and summary["judge"]["judged"] == 4
    assert json.loads((tmp_path / "out" / "llf.json").read_text())["pairs"] == 1


def test_resume_fraction_and_settings(tiny_policy, tiny_world, tmp_path, rows):
    out = tmp_path / "llf"
    config = {"max_new_tokens": 4, "batch_size": 3}
    first = generate_dataset(tiny_policy, tiny_world, out, ScriptedCritic(), limit=4, config=config, progress=False)
    assert first["prompts"] == 4 and first["generated_now"] == 4
    # the same settings but a larger limit are refused (another dataset), as is another critic
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(tiny_policy, tiny_world, out, ScriptedCritic(), limit=6, config=config, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(tiny_policy, tiny_world, out, ScriptedCritic(), limit=4, config=config, progress=False,
                         critic_name="another")
    # a crash after two rows: the rest is made on resume, the rows written stay
    lines = (out / "llf.jsonl").read_text().splitlines(keepends=True) + \
        (out / "llf.dropped.jsonl").read_text().splitlines(keepends=True)
    kept_ids = {json.loads(line)["id"] for line in lines[:2]}
    for name in ("llf.jsonl", "llf.dropped.jsonl"):
        path = out / name
        path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                                if json.loads(line)["id"] in kept_ids) + '{"torn')
    again = generate_dataset(tiny_policy, tiny_world, out, ScriptedCritic(), limit=4, config=config, progress=False)
    assert again["generated_now"] == 2 and again["prompts"] == 4
    ids = [json.loads(line)["id"] for name in ("llf.jsonl", "llf.dropped.jsonl")
           for line in (out / name).read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in rows[:4])
    # fraction: the first quarter of the prompts
    quarter = generate_dataset(tiny_policy, tiny_world, tmp_path / "q", ScriptedCritic(), fraction=0.25,
                               config=config, progress=False)
    assert quarter["prompts"] == round(len(rows) / 4)


def test_bad_settings_are_refused():
    for kwargs, message in [({"critic": 3}, "critic must be"), ({"judge": "x"}, "judge must be"),
                            ({"fraction": 0}, "fraction"), ({"fraction": 1.5}, "fraction"),
                            ({"config": {"temperature": -1}}, "temperature"),
                            ({"config": {"batch_size": 0}}, "batch_size")]:
        with pytest.raises(ValueError, match=message):
            LLFPairs(**{"critic": ScriptedCritic(), "source": "x", "output": "y", **kwargs})


def test_summarize_counts_reasons():
    audit = [{"llf": {"reason": r, "scores": s}} for r, s in
             [("kept", [-2, -1]), ("not_better", [-1, -1]), ("not_better", [-1, -3]), ("empty", None)]]
    out = summarize(audit)
    assert out["prompts"] == 4 and out["pairs"] == 1 and out["dropped"] == {"empty": 1, "not_better": 2}
    assert out["judge"]["refinement_better"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["judge"]["refinement_worse"] == pytest.approx(1 / 3, abs=1e-4)


def test_a_separate_refiner_writes_the_refinements(tiny_policy, tiny_world, tmp_path, rows):
    """``refiner``: another model refines (the policy still answers); its refinement is what that model writes
    on the refine turn, greedily, with its own media encoding."""
    from tests.conftest import build_tiny_policy

    refiner = build_tiny_policy(seed=1)
    config = LLFConfig(max_new_tokens=6)
    ids = [f"r{i}" for i in range(3)]
    records = LLFSampler(tiny_policy, ScriptedCritic(), config=config, media_root=tiny_world,
                         refiner=refiner).sample(rows[:3], ids)
    alone = LLFSampler(refiner, ScriptedCritic(), config=config, media_root=tiny_world)
    refine = [refine_row(r, rec["answer"] or "(no answer)", rec["critique"], i)
              for r, rec, i in zip(rows[:3], records, ids)]
    direct, _ = alone._generate(refine, ids, None, 0.0, 0)
    assert [r["refinement"] for r in records] == [t.strip() for t in direct.texts]
    own = LLFSampler(tiny_policy, ScriptedCritic(), config=config, media_root=tiny_world).sample(rows[:3], ids)
    assert [r["answer"] for r in own] == [r["answer"] for r in records]  # the policy still answers
    # by path, through generate_dataset; the refiner is part of the settings
    folder = tmp_path / "refiner"
    refiner.backbone.save_pretrained(folder)
    summary = generate_dataset(tiny_policy, tiny_world, tmp_path / "out", ScriptedCritic(), limit=3,
                               config={"max_new_tokens": 6}, refiner=folder, progress=False)
    assert summary["refiner"] == str(folder)
    written = [json.loads(line) for name in ("llf.jsonl", "llf.dropped.jsonl")
               for line in (tmp_path / "out" / name).read_text().splitlines()]
    assert sorted(r["llf"]["refinement"] for r in written) == sorted(r["refinement"] for r in records)


def test_the_llf_recipes_run_end_to_end(tmp_path, monkeypatch):
    """critique triples → a trained critic and a trained refiner (SFT on the critique / refine formats) → DPO+LLF
    with them, and the LLF reward model; every stage through the recipes a user runs. The models are tiny and
    random, so once they are trained their generations are scripted (answer, critique, refinement in turn)."""
    from tests.train.test_sft import tiny_overrides
    from zoo.align.critics.__main__ import main as critics_main
    from zoo.models.policy import Generation, Policy
    from zoo.train.run import compose_config, train

    base_run = tmp_path / "base"
    train(compose_config(["recipe=sft", *tiny_overrides(base_run, steps=2)]))
    base, world = base_run / "run" / "model", base_run / "data" / "shapes-0"
    assert critics_main(["triples", str(world), "--out", str(tmp_path / "critiques")]) == 0
    tiny = [o for o in tiny_overrides(tmp_path, steps=2) if o.startswith(("trainer.", "data.world_config", "checkpoint",
                                                                       "data.batch_size", "module.warmup"))]
    helpers = {}
    for recipe in ("critic_sft", "refiner_sft"):
        out = tmp_path / recipe
        cfg = compose_config([f"recipe={recipe}", "model=pretrained", f"model.path={base}",
                              f"data.path={tmp_path / 'critiques'}", f"data.media_root={world}", f"output_dir={out}",
                              *tiny, "trainer.val_check_interval=null"])
        assert cfg.data.format == ("critique" if recipe == "critic_sft" else "refine")
        assert train(cfg)["global_step"] == 2
        helpers[recipe] = out / "model"

    script = ["The circle is red.", "There is no circle: remove it.", "The square is blue."]
    calls = []

    def scripted(self, batch, media=None, **kw):
        text = script[len(calls) % 3]
        calls.append(text)
        n = batch["input_ids"].shape[0]
        return Generation([[5, 6]] * n, [text] * n, [True] * n)

    monkeypatch.setattr(Policy, "generate", scripted)
    llf = ["recipe=llf", "model=pretrained", f"model.path={base}", f"data_root={base_run / 'data'}", "critic=prompted",
           f"module.pairs.critic.path={helpers['critic_sft']}", f"module.pairs.refiner={helpers['refiner_sft']}",
           "module.pairs.limit=6", "module.pairs.config.batch_size=8", *tiny]
    assert train(compose_config([*llf, f"output_dir={tmp_path / 'llf'}"]))["global_step"] == 2
    assert calls == script  # one generation per stage for the whole chunk: answer, critique (the critic), refinement
    summary = json.loads((tmp_path / "llf" / "llf_pairs" / "llf.json").read_text())
    assert summary["prompts"] == 6 and summary["pairs"] == 6
    assert summary["critic"] == f"PromptedCritic({helpers['critic_sft']})" and summary["refiner"] == str(helpers["refiner_sft"])
    (row, *_) = [json.loads(line) for line in (tmp_path / "llf" / "llf_pairs" / "llf.jsonl").read_text().splitlines()]
    assert row["llf"]["critique"] == script[1] and row["chosen"][0]["content"][0]["text"] == script[2]
    # with the verifier as the filter, refinements it does not score higher are dropped; none left is a clear error.
    # Naming no shape costs 0.5 per object (1–4 objects); naming all six costs 1 per absent one: never better
    calls.clear()
    script[:] = ["It is an image.", "Name the shapes.", "The circle, square, triangle, star, diamond and cross."]
    with pytest.raises(ValueError, match=r"LLF made no pair from 6 prompts \(dropped: 6 not_better\)"):
        train(compose_config([*llf, f"output_dir={tmp_path / 'filtered'}", "+module.pairs.judge._target_="
                              "zoo.align.judges.VerifierJudge"]))
    # the LLF reward model on the world critic's pairs, the policy refining
    calls.clear()
    cfg = compose_config(["recipe=llf_reward", "model=pretrained", f"model.path={base}", f"data_root={base_run / 'data'}",
                          f"output_dir={tmp_path / 'rm'}", "module.pairs.limit=6", *tiny, "data.holdout=0.0",
                          "data.val_split=null"])
    assert cfg.module._target_ == "zoo.train.modules.RewardModule"
    assert cfg.module.pairs.critic._target_ == "zoo.align.critics.world.WorldCritic"
    train(cfg)
    assert (tmp_path / "rm" / "model" / "reward.json").exists()
