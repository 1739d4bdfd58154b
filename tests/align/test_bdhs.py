"""BDHS: sentence handling on token ids, masked generation, the similarity filter's retries, determinism,
and the online source's ids end to end."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from zoo.align.pairs import bdhs
from zoo.align.pairs.bdhs import (
    BDHSConfig,
    BDHSItem,
    BDHSSampler,
    OnlineBDHSPairs,
    TokenText,
    example_rng,
    noisy_pixels,
)
from zoo.data.batches import ExampleBatch
from zoo.data.collate import ExampleEncoder
from zoo.data.formats import read_rows
from zoo.models.native import TINY_ARCHS


def never_similar(a, b):
    return [0.0] * len(a)


@pytest.fixture(scope="module")
def items(tiny_policy, tiny_world):
    rows = read_rows(tiny_world, "pairs")[:6]
    encoder = ExampleEncoder(tiny_policy.processor, media_root=tiny_world)
    return [BDHSItem.encode(encoder, r, f"pairs[{i}]") for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def tokens(tiny_policy):
    return TokenText(tiny_policy.tokenizer)


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class CountingEncodes:
    """Counts the encode calls one tokenizer gets (``tok(...)`` or ``tok.encode(...)``) while active."""

    def __init__(self, monkeypatch, tokenizer):
        self.calls = 0
        cls = type(tokenizer)
        for name in ("__call__", "encode"):
            original = getattr(cls, name)

            def counted(this, *args, _original=original, **kwargs):
                self.calls += this is tokenizer
                return _original(this, *args, **kwargs)

            monkeypatch.setattr(cls, name, counted)


# ---------------------------------------------------------------- token ids as text


def test_sentences_end_after_sentence_end_tokens(tiny_policy, tokens):
    tok = tiny_policy.tokenizer
    ids = ids_of(tok, "The circle is red. The square is blue!  Is it?! yes ")
    sentences = tokens.sentences(ids)
    assert [tok.decode(s) for s in sentences] == ["The circle is red.", " The square is blue!", "  Is it?!", " yes "]
    assert [t for s in sentences for t in s] == ids  # the ids themselves, in order
    assert [tok.decode(s) for s in tokens.sentences(ids_of(tok, "Red. "))] == ["Red."]  # whitespace alone is none
    assert tokens.sentences([]) == [] and len(tokens.sentences(ids_of(tok, "One sentence"))) == 1


def test_stop_tokens(tiny_policy, tokens):
    tok = tiny_policy.tokenizer
    assert tok.eos_token_id in tokens.stops
    assert ids_of(tok, "red.")[-1] in tokens.stops and ids_of(tok, "red?")[-1] in tokens.stops
    assert ids_of(tok, "red")[-1] not in tokens.stops


def test_cut_keeps_a_strict_prefix_of_words(tiny_policy, tokens):
    tok = tiny_policy.tokenizer
    rng = np.random.default_rng(0)
    for text in ("The circle is red and at the top left.", " The  circle is red."):  # also mid-response
        sentence = ids_of(tok, text)
        words = text.split()
        lengths = set()
        for _ in range(300):
            cut, flipped = tokens.cut(sentence, rng)
            k = len(tok.decode(cut).split())
            assert not flipped and cut == sentence[: len(cut)]  # the chosen's own ids
            assert tok.decode(cut).split() == words[:k] and k < len(words)
            assert not cut or tokens.texts[sentence[len(cut)]][:1].isspace()  # the next word starts there
            lengths.add(k)
        assert lengths == set(range(len(words)))  # every cut point is drawn, never the whole sentence


def test_cut_flips_yes_no_half_the_time(monkeypatch, tiny_policy, tokens):
    tok = tiny_policy.tokenizer
    rng, sentence = np.random.default_rng(1), ids_of(tok, "Yes, there is a red circle.")
    counter = CountingEncodes(monkeypatch, tok)
    cuts = [(tok.decode(c), f) for c, f in (tokens.cut(sentence, rng) for _ in range(400))]
    assert all(c.split()[0] in ("Yes,", "No,") for c, _ in cuts)  # the answer word is always kept
    assert all(c.startswith("No,") == flipped for c, flipped in cuts)
    assert 0.4 < np.mean([f for _, f in cuts]) < 0.6
    assert counter.calls == 0  # the flipped word's ids are looked up once, when the TokenText is made
    cut, flipped = tokens.cut(ids_of(tok, " No, it is not."), np.random.default_rng(0), flip_yes_no=1.0)
    assert flipped and tok.decode(cut).startswith(" Yes,") and cut[: len(ids_of(tok, " Yes"))] == ids_of(tok, " Yes")
    assert tok.decode(tokens.cut(ids_of(tok, "no."), np.random.default_rng(0), flip_yes_no=1.0)[0]) == "yes."
    kept, _ = tokens.cut(ids_of(tok, "No there is not."), np.random.default_rng(0), flip_yes_no=0.0)
    assert tok.decode(kept).startswith("No")


def test_max_keep_bounds_the_cut(tiny_policy, tokens):
    tok = tiny_policy.tokenizer
    sentence = ids_of(tok, "The circle is red and at the top left.")  # 9 words
    for _ in range(50):  # max_keep 0: the model writes every word, the object's name included
        assert tokens.cut(sentence, np.random.default_rng(_), max_keep=0.0) == ([], False)
    kept = {len(tok.decode(tokens.cut(sentence, np.random.default_rng(s), max_keep=0.5)[0]).split()) for s in range(300)}
    assert kept == set(range(5))  # k ≤ ⌊0.5·8⌋, every such cut drawn
    answer, _ = tokens.cut(ids_of(tok, "Yes, there is a red circle."), np.random.default_rng(0), 0.0, max_keep=0.0)
    assert tok.decode(answer) == "Yes,"  # a yes/no keeps its answer word whatever max_keep
    one, two = np.random.default_rng(3), np.random.default_rng(3)  # the default is the paper's (any cut)
    assert all(tokens.cut(sentence, one) == tokens.cut(sentence, two, max_keep=1.0) for _ in range(100))
    with pytest.raises(ValueError, match="max_keep"):
        BDHSConfig(max_keep=1.5)


def test_repetition_marks_degenerate_generations():
    assert bdhs.repeats([5, 7, 7, 7, 7, 2]) and not bdhs.repeats([7, 7, 7, 2, 7, 7, 7])
    assert not bdhs.repeats([]) and bdhs.repeats([1, 1], run=2)


def test_a_degenerate_dataset_is_flagged(monkeypatch, tmp_path, tiny_policy, tiny_world):
    """Rejected responses that repeat one token (a model that falls apart with its input corrupted) are counted
    in the pair file's summary, marked per row, and warned about: such pairs contrast gibberish."""
    import json

    def gibberish(self, items):
        ids = [9] * 8
        return [bdhs.BDHSSample(i.index, "top " * 8, ids, 1, 0.0, True, 1.0, "mask", [], bdhs.repeats(ids))
                for i in items]

    monkeypatch.setattr(bdhs.BDHSSampler, "sample", gibberish)
    with pytest.warns(UserWarning, match="degenerates"):
        summary = bdhs.generate_dataset(tiny_policy, tiny_world, tmp_path / "out", limit=4, similarity=never_similar,
                                        progress=False)
    assert summary["repetitive_fraction"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "out" / "bdhs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["bdhs"]["repetitive"] for r in rows)


def sentencepiece_style_tokenizer():
    """A tiny Metaspace BPE: single tokens decode without their leading space and merge words with punctuation."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(["No, the circle is red. Yes, the square is blue! Is it? no."] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def test_sentencepiece_style_words_and_flips(monkeypatch):
    tok = sentencepiece_style_tokenizer()
    tokens = TokenText(tok)
    ids = ids_of(tok, "No, the circle is red. Yes, the square is blue!")
    assert tok.decode(ids[1:2]) == "the"  # alone, a token loses its space; in running text it keeps it
    sentences = tokens.sentences(ids)
    assert [tok.decode(s) for s in sentences] == ["No, the circle is red.", "Yes, the square is blue!"]
    assert [len(tokens.word_starts(s)) for s in sentences] == [5, 5]
    counter = CountingEncodes(monkeypatch, tok)
    for seed in range(20):
        cut, flipped = tokens.cut(sentences[1], np.random.default_rng(seed), flip_yes_no=1.0)
        assert flipped and tok.decode(cut).split()[0] == "No,"
    assert counter.calls == 1  # "No," is one token here, unlike the words looked up beforehand: encoded once
    assert cut[0] == ids_of(tok, " No,")[0]


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


def test_guided_samples_keep_the_cuts_and_ground_truth_structure(tiny_policy, items, tokens):
    tok = tiny_policy.tokenizer
    sampler = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2), similarity=never_similar)
    longest = 0
    for item, sample in zip(items, sampler.sample(items)):
        assert sample.guided and sample.tries == 1 and sample.similarity == 0.0
        chosen = [tok.decode(s).strip() for s in tokens.sentences(item.chosen)]
        assert len(sample.sentences) == len(chosen) >= 1
        longest = max(longest, len(chosen))
        for plan, truth in zip(sample.sentences, chosen):
            assert truth.startswith(plan["cut"]) and plan["written"].startswith(plan["cut"])
        assert sample.rejected == tok.decode(sample.rejected_ids, skip_special_tokens=True).strip()
        assert tok.eos_token_id not in sample.rejected_ids
        written = "".join(p["written"] for p in sample.sentences)  # sentences are joined as written
        assert re.sub(r"\s+", "", sample.rejected) == re.sub(r"\s+", "", written)
    assert longest > 1  # multi-sentence responses were among them


def test_insert_adds_sentences_of_the_models_own_and_changes_nothing_else(tiny_policy, items, tokens):
    """``insert``: after each chosen sentence the model may write one more (hallucination by addition); the
    rewrites are exactly those of the run without insertion, and each kept insertion sits after its sentence."""
    tok = tiny_policy.tokenizer
    plain = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2), similarity=never_similar).sample(items)
    added = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2, insert=1.0), similarity=never_similar).sample(items)
    kept_any = False
    for item, before, after in zip(items, plain, added):
        n = len(tokens.sentences(item.chosen))
        assert after.tries == 1 and len(after.sentences) == 2 * n  # insert 1: a try after every sentence
        rewrites, inserts = after.sentences[0::2], after.sentences[1::2]
        assert rewrites == before.sentences  # the same cuts and the same completions
        assert all(set(p) == {"inserted", "kept"} and p["kept"] == bool(p["inserted"]) for p in inserts)
        in_order = [p["written"] if "written" in p else p["inserted"] for p in after.sentences
                    if p.get("kept", True)]
        assert re.sub(r"\s+", "", after.rejected) == re.sub(r"\s+", "", "".join(in_order))
        assert after.rejected == tok.decode(after.rejected_ids, skip_special_tokens=True).strip()
        kept_any |= any(p["kept"] for p in inserts)
    assert kept_any  # the tiny model did write sentences of its own
    some = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2, insert=0.5), similarity=never_similar).sample(items)
    counts = [sum("inserted" in p for p in s.sentences) for s in some]
    assert 0 < sum(counts) < sum(len(tokens.sentences(i.chosen)) for i in items)
    with pytest.raises(ValueError, match="insert"):
        BDHSConfig(insert=2.0)
    with pytest.raises(ValueError, match="needs insert"):
        BDHSConfig(rewrite=False)
    # rewrite=False: the chosen sentences verbatim, the model's own sentences between them
    only = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2, insert=1.0, rewrite=False),
                       similarity=never_similar).sample(items)
    for item, before, after in zip(items, added, only):
        truth = [tok.decode(s, skip_special_tokens=True).strip() for s in tokens.sentences(item.chosen)]
        assert [p["written"] for p in after.sentences[0::2]] == truth and [p["cut"] for p in after.sentences[0::2]] == truth
        assert after.sentences[1::2] == before.sentences[1::2]  # the same insertions: rewrites don't feed them


def test_an_inserted_sentence_that_restates_a_chosen_one_is_dropped(tiny_policy, items, tokens):
    """The filter compares each inserted sentence with every chosen sentence; one as similar as ε_s says
    nothing new and is left out, so the rejected response is the plain rewrite."""
    tok = tiny_policy.tokenizer
    truth = {tok.decode(s, skip_special_tokens=True).strip() for i in items for s in tokens.sentences(i.chosen)}
    seen = []

    def restates(a, b):  # the insertion check: b holds chosen sentences; the whole-response check: responses
        seen.extend(x for x in b if x in truth)
        return [0.99 if x in truth else 0.0 for x in b]

    plain = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2), similarity=never_similar).sample(items)
    added = BDHSSampler(tiny_policy, BDHSConfig(max_tries=2, insert=1.0), similarity=restates).sample(items)
    assert seen and all(not p["kept"] for s in added for p in s.sentences if "inserted" in p)
    assert [s.rejected_ids for s in added] == [s.rejected_ids for s in plain]


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
    chosen = [tiny_policy.tokenizer.decode(i.chosen) for i in items[:3]]  # the filter compares texts
    sim = ScriptedSimilarity({chosen[0]: 0, chosen[1]: 2, chosen[2]: 10})
    out = BDHSSampler(tiny_policy, BDHSConfig(max_tries=4), similarity=sim).sample(items[:3])
    assert [s.tries for s in out] == [1, 3, 4]
    assert [s.guided for s in out] == [True, True, False]  # the last try writes a whole response
    assert [s.similarity for s in out] == [0.5, 0.5, 0.99]  # accepted although still too similar
    assert out[2].sentences == [] and out[2].rejected and out[2].rejected_ids
    assert sim.calls == {chosen[0]: 1, chosen[1]: 3, chosen[2]: 4}


def test_online_source_trains_on_the_ids_it_wrote(monkeypatch, tiny_policy, tiny_world):
    """A bdhs_online training step calls no tokenizer: prompts are extended by ids, and the rejected
    response is exactly the sampled ids + EOS (no decode and re-tokenise)."""
    encoder = ExampleEncoder(tiny_policy.processor, media_root=tiny_world)
    groups = [encoder.encode_group(r, i) for i, r in enumerate(read_rows(tiny_world, "pairs")[:4])]
    monkeypatch.setattr(bdhs, "SentenceSimilarity", lambda name, device=None: never_similar)
    samples, sample = [], BDHSSampler.sample

    def recorded(self, items):
        samples.extend(sample(self, items))
        return samples

    monkeypatch.setattr(BDHSSampler, "sample", recorded)
    source = OnlineBDHSPairs({"max_tries": 2})
    source.prepare(tiny_policy)  # before training: the vocabulary is read here
    counter = CountingEncodes(monkeypatch, tiny_policy.tokenizer)
    out = source(tiny_policy, ExampleBatch(groups))
    assert counter.calls == 0
    assert len(samples) == len(groups) and all(s.guided and s.rejected_ids for s in samples)
    eos, b = tiny_policy.tokenizer.eos_token_id, len(groups)
    ids, mask = out.responses.input_ids, out.responses.attention_mask.bool()
    for i, (group, s) in enumerate(zip(groups, samples)):
        assert ids[i][mask[i]].tolist() == group.chosen.tolist()  # slot 0: the chosen response
        assert ids[b + i][mask[b + i]].tolist() == s.rejected_ids + [eos]  # slot 1: what the policy wrote


@pytest.mark.parametrize("corruption", ["mask", "noise"])
def test_deterministic_and_independent_of_batching(tiny_policy, items, corruption):
    """Samples depend on (seed, example, try) only: not on the batch an example lands in, its order, or a
    resumed run that generates only the missing examples."""
    config = BDHSConfig(max_tries=2, seed=3, corruption=corruption, noise_step=300)
    a = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items)
    b = BDHSSampler(tiny_policy, dataclasses.replace(config, batch_size=2), similarity=never_similar).sample(items[::-1])
    assert [s.record() for s in a] == [s.record() for s in b[::-1]]
    assert [s.rejected_ids for s in a] == [s.rejected_ids for s in b[::-1]]
    c = BDHSSampler(tiny_policy, dataclasses.replace(config, seed=4), similarity=never_similar).sample(items)
    assert [s.sentences for s in a] != [s.sentences for s in c]  # another seed, other masks and cuts


@pytest.mark.parametrize("corruption", ["mask", "noise"])
def test_each_image_is_encoded_once_and_the_samples_are_those_of_encoding_per_row(monkeypatch, tiny_policy, items,
                                                                                   corruption):
    """BDHS rows of one example (its sentence and insertion rows) share its image: the sampler encodes it once
    per generation batch and picks the encoding for each row (`Backbone.select_media`). Same samples as encoding
    the image again for every row (the backbone made unable to select)."""
    # the first of two tries is guided (a row per sentence and per insertion); never_similar accepts it
    config = BDHSConfig(max_tries=2, seed=3, corruption=corruption, noise_step=300, insert=1.0, batch_size=16)
    encoded = []
    original = type(tiny_policy).encode_media
    monkeypatch.setattr(type(tiny_policy), "encode_media",
                        lambda self, batch: encoded.append(len(batch["pixel_values"])) or original(self, batch))
    once = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items)
    images_once = sum(encoded)
    rows = sum(len(s.sentences) for s in once)  # every sentence and insertion row of every example
    assert rows > len(items) and images_once <= len(items) * 2  # an example's rows may straddle two batches
    encoded.clear()
    monkeypatch.setattr(type(tiny_policy.backbone), "can_select_media", False)
    per_row = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items)
    assert sum(encoded) == rows > images_once
    assert [s.rejected_ids for s in once] == [s.rejected_ids for s in per_row]
    assert [s.record() for s in once] == [s.record() for s in per_row]


def test_select_media_picks_each_examples_items(tiny_policy, items):
    sources = [items[0].prompt.media_inputs, items[1].prompt.media_inputs]
    batch = {"pixel_values": torch.cat([s["pixel_values"] for s in sources])}
    media = tiny_policy.encode_media(batch)
    picked = tiny_policy.backbone.select_media(media, sources, [1, 0, 1])
    for name, tensor in picked.items():
        assert torch.equal(tensor, media[name][[1, 0, 1]])


def test_noise_variant(tiny_policy, items):
    config = BDHSConfig(corruption="noise", noise_step=999, max_tries=1)
    out = BDHSSampler(tiny_policy, config, similarity=never_similar).sample(items[:2])
    assert all(s.corruption == "noise" and s.hidden == 0.0 and not s.guided for s in out)
    assert [s.rejected for s in out] == [s.rejected for s in BDHSSampler(tiny_policy, config, never_similar).sample(items[:2])]
    with pytest.raises(ValueError, match="corruption must be 'mask' or 'noise', not 'blur'"):
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
             "images": [image(i, (32, 32))], "chosen": t} for i, t in enumerate(texts)]
    items = [BDHSItem.encode(encoder, r, i) for i, r in enumerate(rows)]
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
