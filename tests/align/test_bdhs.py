"""BDHS: sentence handling, masked generation, the similarity filter's retries, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from zoo.align.pairs.bdhs import (
    BDHSConfig,
    BDHSItem,
    BDHSSampler,
    cut_sentence,
    example_rng,
    first_sentence,
    noisy_pixels,
    split_sentences,
    stop_token_ids,
)
from zoo.data.collate import ExampleEncoder
from zoo.data.formats import read_rows
from zoo.data.schema import response_text
from zoo.models.native import TINY_ARCHS


def never_similar(a, b):
    return [0.0] * len(a)


@pytest.fixture(scope="module")
def items(tiny_policy, tiny_world):
    rows = read_rows(tiny_world, "pairs")[:6]
    encoder = ExampleEncoder(tiny_policy.processor, media_root=tiny_world)
    return [BDHSItem(f"pairs[{i}]", encoder.encode(r, i, None), response_text(r["chosen"])) for i, r in enumerate(rows)]


# ---------------------------------------------------------------- text


def test_split_sentences():
    assert split_sentences("The circle is red. The square is blue!  Is it? yes") == [
        "The circle is red.", "The square is blue!", "Is it?", "yes"]
    assert split_sentences("") == [] and split_sentences("One sentence") == ["One sentence"]


def test_cut_sentence_keeps_a_strict_prefix_of_words():
    rng = np.random.default_rng(0)
    sentence = "The circle is red and at the top left."
    words = sentence.split()
    lengths = set()
    for _ in range(300):
        cut, flipped = cut_sentence(sentence, rng)
        k = len(cut.split())
        assert not flipped and cut.split() == words[:k] and k < len(words)
        lengths.add(k)
    assert lengths == set(range(len(words)))  # every cut point is drawn, never the whole sentence


def test_cut_sentence_flips_yes_no_half_the_time():
    rng = np.random.default_rng(1)
    cuts = [cut_sentence("Yes, there is a red circle.", rng) for _ in range(400)]
    assert all(c.split()[0] in ("Yes,", "No,") for c, _ in cuts)  # the answer word is always kept
    assert all((c.startswith("No,")) == flipped for c, flipped in cuts)
    assert 0.4 < np.mean([f for _, f in cuts]) < 0.6
    assert cut_sentence("no.", np.random.default_rng(0), flip_yes_no=1.0)[0] == "yes."
    assert cut_sentence("No there is not.", np.random.default_rng(0), flip_yes_no=0.0)[0].startswith("No")


def test_first_sentence_and_stop_tokens(tiny_policy):
    assert first_sentence(" blue and at the top. The square") == " blue and at the top."
    assert first_sentence("no end") == "no end"
    tok = tiny_policy.tokenizer
    stops = stop_token_ids(tok)
    assert tok.eos_token_id in stops
    assert tok("red.", add_special_tokens=False)["input_ids"][-1] in stops
    assert tok("red", add_special_tokens=False)["input_ids"][-1] not in stops


def test_example_rng_depends_on_seed_index_and_try_only():
    draw = [example_rng(0, "pairs[3]", 1).random() for _ in range(2)]
    assert draw[0] == draw[1]
    assert example_rng(0, "pairs[3]", 2).random() != draw[0]
    assert example_rng(1, "pairs[3]", 1).random() != draw[0]
    assert example_rng(0, "pairs[4]", 1).random() != draw[0]


def test_noisy_pixels_follow_the_schedule():
    x = torch.ones(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(noisy_pixels(x, 0, g), x, atol=0.05)  # t = 0: almost clean
    far = noisy_pixels(x, 999, torch.Generator().manual_seed(0))
    assert abs(float(far.mean())) < 0.2 and 0.8 < float(far.std()) < 1.2  # t = T: almost pure noise
    again = noisy_pixels(x, 500, torch.Generator().manual_seed(3))
    assert torch.equal(again, noisy_pixels(x, 500, torch.Generator().manual_seed(3)))


# ---------------------------------------------------------------- sampler


def test_masked_generation_ignores_the_masked_image(tiny_policy, items):
    """With every media token hidden (ρ_th = 1), changing the image changes nothing."""
    sampler = BDHSSampler(tiny_policy, BDHSConfig(mask_threshold=1.0, max_tries=2), similarity=never_similar)
    out = sampler.sample(items)
    assert all(s.hidden == 1.0 for s in out)
    scrambled = [dataclasses.replace(i, prompt=dataclasses.replace(
        i.prompt, media_inputs={k: torch.randn_like(v) * 3 for k, v in i.prompt.media_inputs.items()})) for i in items]
    again = sampler.sample(scrambled)
    assert [s.rejected for s in again] == [s.rejected for s in out]
    # sanity: with the image visible (ρ_th = 0) the image matters to the model
    visible = BDHSSampler(tiny_policy, BDHSConfig(mask_threshold=0.0, max_tries=1), similarity=never_similar)
    assert [s.hidden for s in visible.sample(items)] == [0.0] * len(items)
    batch = {"input_ids": items[0].prompt.input_ids[None], "attention_mask": torch.ones_like(items[0].prompt.input_ids)[None],
             **items[0].prompt.media_inputs}
    other = dict(batch, **scrambled[0].prompt.media_inputs)
    with torch.no_grad():
        assert not torch.allclose(tiny_policy.logits(batch)[0, -1], tiny_policy.logits(other)[0, -1])


def test_guided_samples_keep_the_cuts_and_ground_truth_structure(tiny_policy, items):
    sampler = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2), similarity=never_similar)
    for item, sample in zip(items, sampler.sample(items)):
        assert sample.guided and sample.tries == 1 and sample.similarity == 0.0
        chosen = split_sentences(item.chosen)
        assert len(sample.sentences) == len(chosen)
        for plan, truth in zip(sample.sentences, chosen):
            assert truth.startswith(plan["cut"]) and plan["written"].startswith(plan["cut"])
        assert sample.rejected == " ".join(p["written"] for p in sample.sentences).strip()


class ScriptedSimilarity:
    """Stub filter: item k (by chosen text) is 'too similar' on its first ``fails[k]`` tries."""

    def __init__(self, fails: dict[str, int]):
        self.fails, self.calls = fails, {}

    def __call__(self, a, b):
        out = []
        for chosen in a:
            n = self.calls[chosen] = self.calls.get(chosen, 0) + 1
            out.append(0.99 if n <= self.fails.get(chosen, 0) else 0.5)
        return out


def test_filter_retries_then_accepts_an_unguided_last_try(tiny_policy, items):
    fails = {items[0].chosen: 0, items[1].chosen: 2, items[2].chosen: 10}
    sim = ScriptedSimilarity(fails)
    out = BDHSSampler(tiny_policy, BDHSConfig(max_tries=4), similarity=sim).sample(items[:3])
    assert [s.tries for s in out] == [1, 3, 4]
    assert [s.guided for s in out] == [True, True, False]  # the last try writes a whole response
    assert [s.similarity for s in out] == [0.5, 0.5, 0.99]  # accepted although still too similar
    assert out[2].sentences == [] and out[2].rejected
    assert sim.calls == {items[0].chosen: 1, items[1].chosen: 3, items[2].chosen: 4}


def test_deterministic_and_independent_of_batching(tiny_policy, items):
    config = BDHSConfig(max_tries=2, seed=3)
    a = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items)
    b = BDHSSampler(tiny_policy, dataclasses.replace(config, batch_size=2), similarity=never_similar).sample(items[::-1])
    assert [s.record() for s in a] == [s.record() for s in b[::-1]]
    c = BDHSSampler(tiny_policy, dataclasses.replace(config, seed=4), similarity=never_similar).sample(items)
    assert [s.sentences for s in a] != [s.sentences for s in c]  # another seed, other masks and cuts


def test_noise_variant(tiny_policy, items):
    config = BDHSConfig(corruption="noise", noise_step=999, max_tries=1)
    out = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items[:2])
    assert all(s.corruption == "noise" and s.hidden == 0.0 and not s.guided for s in out)
    assert [s.rejected for s in out] == [s.rejected for s in BDHSSampler(tiny_policy, config, never_similar).sample(items[:2])]
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        BDHSSampler(tiny_policy, BDHSConfig(corruption="blur"), similarity=never_similar)


def test_default_similarity_is_the_offline_minilm():
    from zoo.align.pairs.bdhs import SentenceSimilarity

    sim = SentenceSimilarity()
    same, swapped, other = sim(["The circle is red and at the top left."] * 3,
                               ["The circle is red and at the top left.", "The circle is blue and at the top left.",
                                "A dog runs in the park."])
    assert same > 0.999 and other < swapped < 0.97


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sampler_on_hf_native_backbones(arch):
    """The same sampler drives HF-native models: hidden images do not matter, visible ones do."""
    from tests.models.test_native import image
    from zoo.models.native import NativeBackbone, make_tiny_native
    from zoo.models.policy import Policy

    model, processor = make_tiny_native(arch)
    policy = Policy(NativeBackbone(model, processor))
    texts = ["A red square sits on a blue background. The answer is yes.", "No, the image is dark."]
    encoder = ExampleEncoder(processor)
    rows = [{"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}],
             "images": [image(i, (32, 32))]} for i in range(2)]
    items = [BDHSItem(i, encoder.encode(r, i, None), t) for i, (r, t) in enumerate(zip(rows, texts))]
    config = BDHSConfig(mask_threshold=1.0, max_tries=2, max_sentence_tokens=4, max_response_tokens=6)
    out = BDHSSampler(policy, config, similarity=never_similar).sample(items)
    assert [len(s.sentences) for s in out] == [2, 1] and all(s.hidden == 1.0 for s in out)
    assert out[1].sentences[0]["cut"].split()[0] in ("No,", "Yes,")  # the answer word is kept (maybe flipped)
    other = [dataclasses.replace(i, prompt=dataclasses.replace(i.prompt, media_inputs={
        k: (torch.randn_like(v) * 3 if v.is_floating_point() else v) for k, v in i.prompt.media_inputs.items()}))
        for i in items]
    assert [s.rejected for s in BDHSSampler(policy, config, similarity=never_similar).sample(other)] == \
        [s.rejected for s in out]
    noise = BDHSSampler(policy, dataclasses.replace(config, corruption="noise"), similarity=never_similar).sample(items)
    assert all(s.corruption == "noise" and s.rejected for s in noise)
