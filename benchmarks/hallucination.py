"""Hallucination benchmarks: POPE, CHAIR, MMHal-style QA and caption object quality.

Every task reads its items from one *source*, given to the constructor:

* ``world=PATH`` — a shapes world folder (generated with the default :class:`ShapesConfig` when it
  has no ``world.json`` yet) and ``split=`` (default ``"test"``; ``chair_trigger`` defaults to
  ``"trigger"``). Media resolve against the world folder unless ``media_root`` is given.
* ``file=PATH`` — a local file in the benchmark's public format (see :mod:`benchmarks.readers`);
  ``media_root`` is the benchmark's image folder (default: the file's folder).
* ``hub=REPO_ID`` — the same format from a Hugging Face ``datasets`` repo (online only; ``split``
  is the dataset split, default ``"test"``).

Items are deterministic (file order; ``limit`` keeps the first N) and carry a ``reference`` dict
with everything the scorer needs; ``score(items, replies)`` is pure and never looks at the source.

Task names (``TASKS``) and metrics:

* ``pope_random`` / ``pope_popular`` / ``pope_adversarial`` — :class:`POPETask`; ``pope_trigger`` (the bias-trigger
  split, the absent partner as negative) — :class:`POPETriggerTask`.
* ``chair`` (test split) / ``chair_trigger`` (trigger split) — :class:`CHAIRTask`.
* ``mmhal`` — :class:`MMHalTask`.
* ``caption_quality`` — :class:`CaptionQualityTask`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import readers
from benchmarks.task import TASKS, Task
from modalities.synthetic.shapes import (BIAS_PAIRS, SYNONYMS, ShapesConfig, existence_question, generate_world,
                                         parse_yes_no)
from zoo.data import read_rows

# --- object vocabularies ------------------------------------------------------------------

# A small COCO-like vocabulary for file sources: canonical object -> synonyms (naive plurals are added).
DEFAULT_VOCABULARY: dict[str, tuple[str, ...]] = {
    "person": ("people", "man", "men", "woman", "women", "boy", "girl", "child", "children", "kid", "player"),
    "dog": ("puppy",),
    "cat": ("kitten",),
    "horse": (),
    "bird": (),
    "car": (),
    "bus": (),
    "truck": (),
    "bicycle": ("bike",),
    "motorcycle": ("motorbike",),
    "train": (),
    "airplane": ("plane", "aircraft"),
    "boat": ("ship",),
    "chair": (),
    "couch": ("sofa",),
    "bed": (),
    "dining table": ("table", "desk"),
    "tv": ("television",),
    "laptop": (),
    "cell phone": ("phone", "cellphone", "smartphone"),
    "book": (),
    "cup": ("mug",),
    "bottle": (),
    "umbrella": (),
    "bench": (),
    "clock": (),
    "traffic light": (),
    "stop sign": (),
    "pizza": (),
    "cake": (),
    "banana": (),
    "tree": (),
}


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


class Vocabulary:
    """Maps words (synonyms, multi-word names) in free text to canonical object names.

    A mention is a whole-word, case-insensitive match; longer names win (``traffic light``
    before ``light``). ``plurals`` adds a naive plural of every word. With the shapes world's
    ``SYNONYMS`` and no plurals this is exactly :func:`modalities.synthetic.shapes.mentioned_shapes`.
    """

    def __init__(self, synonyms: Mapping[str, Iterable[str]], plurals: bool = False):
        self.plurals = plurals
        self.synonyms = {c.lower(): tuple(w.lower() for w in words) for c, words in synonyms.items()}
        self.to_canonical: dict[str, str] = {}
        for canonical, words in self.synonyms.items():
            for word in (canonical, *words):
                for form in (word, _plural(word)) if plurals else (word,):
                    self.to_canonical.setdefault(form, canonical)
        names = sorted(map(re.escape, self.to_canonical), key=len, reverse=True)
        self._re = re.compile(r"\b(" + "|".join(names) + r")\b", re.IGNORECASE) if names else None

    def canonical(self, word: str) -> str:
        """The canonical name of ``word`` (itself, lower-cased, when unknown)."""
        return self.to_canonical.get(word.lower(), word.lower())

    def mentions(self, text: str) -> list[str]:
        """Distinct canonical objects named in ``text``, in order of first mention."""
        if self._re is None:
            return []
        return list(dict.fromkeys(self.to_canonical[m.group(1).lower()] for m in self._re.finditer(text)))

    def extended(self, words: Iterable[str]) -> Vocabulary:
        """This vocabulary plus every unknown word of ``words`` as its own canonical object."""
        new = {w.lower() for w in words} - set(self.to_canonical)
        if not new:
            return self
        return Vocabulary({**self.synonyms, **{w: () for w in sorted(new)}}, self.plurals)


SHAPES_VOCABULARY = Vocabulary(SYNONYMS)
MAX_EMPTY_RATE = 0.5  # CHAIR is not applicable (None) when more captions than this name no object

# --- sources ------------------------------------------------------------------------------


class HallucinationTask(Task):
    """A task with a source: ``world=`` (+ ``split=``), ``file=`` or ``hub=``, plus ``media_root``."""

    fmt: str = ""  # the readers format of file/hub sources
    default_split: str = "test"

    def __init__(self, world: str | Path | None = None, split: str | None = None, file: str | Path | None = None,
                 hub: str | None = None, media_root: str | Path | None = None):
        given = [k for k, v in (("world", world), ("file", file), ("hub", hub)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"{self.name or type(self).__name__}: give exactly one source of world=, file=, hub= "
                             f"(got {', '.join(given) or 'none'})")
        self.source = given[0]
        self.world = Path(world) if world is not None else None
        self.file = Path(file) if file is not None else None
        self.hub = hub
        if self.world is not None:
            if not (self.world / "world.json").exists():
                generate_world(self.world, ShapesConfig(), progress=False)
            media_root = self.world if media_root is None else media_root
        elif self.file is not None and media_root is None:
            media_root = self.file.parent
        self.split = split or (self.default_split if self.world is not None else "test")
        super().__init__(media_root)

    def items(self, limit: int | None = None) -> list[dict[str, Any]]:
        if self.world is not None:
            items = self.world_items(read_rows(self.world, self.split))
        elif self.file is not None:
            items = self.file_items(self.file)
        else:
            items = self.hub_items(self.hub)
        return items if limit is None else items[:limit]

    def world_items(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def file_items(self, path: Path) -> list[dict[str, Any]]:
        return readers.read_items(self.fmt, path)

    def hub_items(self, repo_id: str) -> list[dict[str, Any]]:
        return readers.load_hub(repo_id, self.fmt, split=self.split)


def _world_item(row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "prompt": row["prompt"], "images": row["images"], "reference": reference}


def _check_lengths(items: Sequence, replies: Sequence) -> None:
    if len(items) != len(replies):
        raise ValueError(f"{len(replies)} replies for {len(items)} items")


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# --- POPE ---------------------------------------------------------------------------------


class POPETask(HallucinationTask):
    """POPE existence questions of one kind (random / popular / adversarial negatives).

    A reply is parsed like the public POPE scripts (:func:`parse_yes_no`): the word "no" or
    "not" means no, else "yes" means yes, else it is *unparseable*. Metrics, with yes as the
    positive class: ``accuracy`` (correct / n), ``precision``, ``recall``, ``f1``, ``yes_ratio``
    (replies parsed as yes / n), ``unparseable`` (a count) and ``n``. Unparseable replies are
    counted as wrong: they stay in ``n`` and in the accuracy denominator (a model cannot gain by
    dodging), and on a positive item they count as a false negative.
    """

    fmt = "pope"
    kind: str = ""
    max_new_tokens = 8

    def world_items(self, rows):
        return [
            _world_item(r, {"label": r["answer"], "kind": r["pope"], "objects": [o["shape"] for o in r["objects"]]})
            for r in rows
            if r["task"] == "existence" and r.get("pope") == self.kind
        ]

    def file_items(self, path):
        return readers.read_pope(path, self.kind)

    def hub_items(self, repo_id):
        return readers.load_hub(repo_id, "pope", split=self.split, kind=self.kind)

    def judge(self, items, replies):
        _check_lengths(items, replies)
        return [(parse_yes_no(r), it["reference"]["label"]) for it, r in zip(items, replies)]

    def aggregate(self, records):
        return _pope_aggregate(records)


def pope_metrics(labels: Sequence[str], replies: Sequence[str]) -> dict[str, Any]:
    """POPE metrics of ``replies`` against yes/no ``labels`` (see :class:`POPETask`)."""
    _check_lengths(labels, replies)
    return _pope_aggregate([(parse_yes_no(r), label) for r, label in zip(replies, labels)])


def _pope_aggregate(pairs: Sequence[tuple[str | None, str]]) -> dict[str, Any]:
    """POPE metrics of (parsed prediction, label) pairs."""
    preds = [p for p, _ in pairs]
    n = len(pairs)
    tp = sum(p == "yes" and a == "yes" for p, a in pairs)
    fp = sum(p == "yes" and a == "no" for p, a in pairs)
    fn = sum(p != "yes" and a == "yes" for p, a in pairs)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(sum(p == a for p, a in pairs), n),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "yes_ratio": _ratio(sum(p == "yes" for p in preds), n),
        "unparseable": sum(p is None for p in preds),
        "n": n,
    }


@TASKS.register("pope_random")
class POPERandomTask(POPETask):
    name, kind = "pope_random", "random"


@TASKS.register("pope_popular")
class POPEPopularTask(POPETask):
    name, kind = "pope_popular", "popular"


@TASKS.register("pope_adversarial")
class POPEAdversarialTask(POPETask):
    name, kind = "pope_adversarial", "adversarial"


POPE_TASKS: tuple[type[POPETask], ...] = (POPERandomTask, POPEPopularTask, POPEAdversarialTask)


@TASKS.register("pope_trigger")
class POPETriggerTask(POPETask):
    """Yes/no on the bias-trigger split, the absent partner as the adversarial negative.

    Per image with a lone anchor: "Is there a <partner>?" (label no: the bias says yes) and "Is there a
    <anchor>?" (label yes), so the items are balanced. World source only (built from the split's caption
    rows); metrics as :class:`POPETask`.
    """

    name, kind, default_split = "pope_trigger", "trigger", "trigger"

    def world_items(self, rows):
        items = []
        for r in rows:
            if r["task"] != "caption" or not r.get("trigger_absent"):
                continue
            present = [o["shape"] for o in r["objects"]]
            partner = r["trigger_absent"][0]
            anchor = next(a for a, p in BIAS_PAIRS if p == partner and a in present)
            for label, shape in (("no", partner), ("yes", anchor)):
                prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": existence_question(shape)}]}]
                items.append({"id": f"{r['image_id']}-{label}", "prompt": prompt, "images": r["images"],
                              "reference": {"label": label, "kind": "trigger", "objects": present}})
        return items

    def file_items(self, path):
        raise ValueError("pope_trigger reads a shapes world (world=…); public POPE files have no bias-trigger split")

    hub_items = file_items


# --- CHAIR and caption quality --------------------------------------------------------------


@TASKS.register("chair")
class CHAIRTask(HallucinationTask):
    """CHAIR object hallucination of captions ("Describe the image.").

    Mentions are the distinct objects a caption names (synonyms map to one object; each object
    counts once per caption). Metrics: ``chair_i`` = hallucinated mentions / all mentions;
    ``chair_s`` = captions with at least one hallucinated mention / n; ``recall`` = present
    objects named / present objects (micro over captions); ``partner_hallucination`` = among
    items whose image shows a bias anchor without its partner (reference ``trigger_absent``), the
    fraction of captions naming a missing partner — None when no item has one (always for file
    sources); ``addition_rate`` = captions that name every present object *and* an absent one (hallucination by
    addition, where the other hallucinated captions swap or drop objects) / n; ``empty_rate`` = captions
    naming no object / n; ``n_mentions``; ``n``. A caption that names
    nothing hallucinates nothing, so when ``empty_rate`` exceeds :data:`MAX_EMPTY_RATE` the model fails
    the task: ``chair_i``, ``chair_s`` and ``partner_hallucination`` are None (not applicable), never
    a perfect 0.

    Vocabulary: the shapes world's ``SYNONYMS`` for a world source; for file/hub sources
    ``vocabulary`` (canonical -> synonyms) or :data:`DEFAULT_VOCABULARY`, with naive plurals.
    Either way every object named in the references (``objects``, ``hallu``) that the vocabulary
    does not know is added as its own word, so AMBER-style annotation vocabularies just work.
    """

    name, fmt = "chair", "captions"

    def __init__(self, world=None, split=None, file=None, hub=None, media_root=None,
                 annotations: str | Path | None = None, vocabulary: Mapping[str, Iterable[str]] | None = None):
        super().__init__(world=world, split=split, file=file, hub=hub, media_root=media_root)
        self.annotations = annotations
        if vocabulary is not None:
            self.vocabulary = Vocabulary(vocabulary, plurals=self.world is None)
        else:
            self.vocabulary = SHAPES_VOCABULARY if self.world is not None else Vocabulary(DEFAULT_VOCABULARY, True)

    def world_items(self, rows):
        return [
            _world_item(r, {"objects": [o["shape"] for o in r["objects"]], "answer": r["answer"],
                            "trigger_absent": r.get("trigger_absent", [])})
            for r in rows
            if r["task"] == "caption"
        ]

    def file_items(self, path):
        return readers.read_caption_set(path, self.annotations)

    def mentions(self, items, replies) -> list[tuple[list[str], set[str]]]:
        """(named objects, present objects) per item, in canonical names."""
        _check_lengths(items, replies)
        refs = [it["reference"] for it in items]
        vocab = self.vocabulary.extended(w for ref in refs for w in (*ref["objects"], *ref.get("hallu", ())))
        return [(vocab.mentions(text), {vocab.canonical(o) for o in ref["objects"]}) for text, ref in zip(replies, refs)]

    def judge(self, items, replies):
        """Per caption: (objects named, objects present, absent partners of lone anchors)."""
        return [(named, present, frozenset(item["reference"].get("trigger_absent") or ()))
                for (named, present), item in zip(self.mentions(items, replies), items)]

    def aggregate(self, records):
        mentions = hallucinated = bad = hits = n_present = triggered = partner_hits = empty = added = 0
        for named, present, absent_partners in records:
            wrong = [o for o in named if o not in present]
            mentions += len(named)
            hallucinated += len(wrong)
            bad += bool(wrong)
            added += bool(wrong) and present <= set(named)  # every present object named, and more
            empty += not named
            hits += len(present & set(named))
            n_present += len(present)
            if absent_partners:
                triggered += 1
                partner_hits += bool(absent_partners & set(named))
        n = len(records)
        empty_rate = _ratio(empty, n)
        # Naming nothing hallucinates nothing: with most captions empty, CHAIR says nothing about the model.
        applicable = n > 0 and empty_rate <= MAX_EMPTY_RATE
        return {
            "chair_i": _ratio(hallucinated, mentions) if applicable else None,
            "chair_s": _ratio(bad, n) if applicable else None,
            "recall": _ratio(hits, n_present),
            "partner_hallucination": partner_hits / triggered if triggered and applicable else None,
            "addition_rate": _ratio(added, n) if applicable else None,
            "empty_rate": empty_rate,
            "n_mentions": mentions,
            "n": n,
        }


@TASKS.register("chair_trigger")
class CHAIRTriggerTask(CHAIRTask):
    """CHAIR on the bias-trigger split (anchors without their partners) by default."""

    name, default_split = "chair_trigger", "trigger"


@TASKS.register("caption_quality")
class CaptionQualityTask(CHAIRTask):
    """Object-level caption quality: ``precision`` = named objects that are present / named objects,
    ``recall`` = present objects named / present objects, ``f1`` — all micro-averaged over captions
    (distinct objects per caption) — plus ``n_mentions`` and ``n``. Same items and vocabulary as
    :class:`CHAIRTask` (so precision = 1 - chair_i when anything is named)."""

    name = "caption_quality"

    def aggregate(self, records):
        mentions = sum(len(named) for named, _, _ in records)
        correct = sum(len(set(named) & present) for named, present, _ in records)
        n_present = sum(len(present) for _, present, _ in records)
        precision, recall = _ratio(correct, mentions), _ratio(correct, n_present)
        return {"precision": precision, "recall": recall, "f1": _f1(precision, recall),
                "n_mentions": mentions, "n": len(records)}


# --- MMHal-style QA -------------------------------------------------------------------------

_WORLD_KINDS = {"colour": "attribute", "count": "count", "position": "position", "existence": "existence"}
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_STOPWORDS = frozenset(
    "a an the is are was were be been there it its this that these those of in on at to and or with "
    "image picture photo".split()
)


def _tokens(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w for w in words]


def answer_correct(reply: str, answer: str, kind: str | None = None) -> bool:
    """The programmatic MMHal rule: is ``reply`` consistent with the ground-truth ``answer``?

    Yes/no questions (``kind == "existence"`` or an answer starting with yes/no) compare
    :func:`parse_yes_no` of both. Otherwise every content word of the answer (lower-cased, digits
    as number words, minus a few stopwords) must appear in the reply: "red" in "It is red.",
    "top left" in "At the top left.", "3" matches "three". Limitation: a reply that names the
    right word among wrong ones, or negates it, still passes.
    """
    answer_words = _tokens(answer)
    if kind == "existence" or (answer_words and answer_words[0] in ("yes", "no")):
        truth = parse_yes_no(answer)
        return truth is not None and parse_yes_no(reply) == truth
    content = [w for w in answer_words if w not in _STOPWORDS] or answer_words
    reply_words = set(_tokens(reply))
    return bool(content) and all(w in reply_words for w in content)


@TASKS.register("mmhal")
class MMHalTask(HallucinationTask):
    """MMHal-Bench-style QA, judged by a programmatic rule instead of a GPT judge.

    World source: the split's colour (kind ``attribute``), count (``count``), position
    (``position``) and existence (``existence``; POPE kind ``random`` only) questions. File source:
    an MMHal-Bench JSON; its ``question_type`` is the kind and its ``gt_answer`` is checked with the
    same rule (:func:`answer_correct`) — real MMHal-Bench scores free-form answers with GPT-4
    against the image content, so scores on the public file are only a rough proxy.

    Metrics: ``score`` on MMHal's 0–6 scale with the binary mapping correct -> 6, wrong -> 0
    (averaged), ``hallucination_rate`` = fraction of wrong replies (MMHal counts a score below 3 as
    a hallucination, so the two agree: rate = 1 - score / 6), ``accuracy``, ``accuracy_<kind>``
    per kind, and ``n``.
    """

    name, fmt = "mmhal", "mmhal"
    max_new_tokens = 16

    def world_items(self, rows):
        return [
            _world_item(r, {"answer": r["answer"], "kind": _WORLD_KINDS[r["task"]],
                            "objects": [o["shape"] for o in r["objects"]]})
            for r in rows
            if r["task"] in ("colour", "count", "position") or (r["task"] == "existence" and r.get("pope") == "random")
        ]

    def judge(self, items, replies):
        _check_lengths(items, replies)
        return [(str(it["reference"].get("kind")), answer_correct(r, it["reference"]["answer"], it["reference"].get("kind")))
                for it, r in zip(items, replies)]

    def aggregate(self, records):
        by_kind: dict[str, list[bool]] = defaultdict(list)
        correct = []
        for kind, ok in records:
            correct.append(ok)
            by_kind[kind].append(ok)
        n = len(correct)
        metrics: dict[str, Any] = {
            "score": _ratio(6 * sum(correct), n),
            "hallucination_rate": _ratio(n - sum(correct), n),
            "accuracy": _ratio(sum(correct), n),
        }
        for kind in sorted(by_kind):
            metrics[f"accuracy_{kind}"] = sum(by_kind[kind]) / len(by_kind[kind])
        metrics["n"] = n
        return metrics
