"""The "shapes" world: coloured shapes in a 2x2 grid, with captions and questions.

Why it exists: a model small enough to train in minutes can learn it, the ground truth
of every image is known exactly (so CHAIR/POPE-style hallucination metrics are exact),
and the train split plants a spurious co-occurrence (each anchor shape nearly always
comes with its partner) that a preference-aligned model should learn not to trust.
The ``trigger`` split shows anchors *without* their partners to expose that bias.

Training captions describe part of the scene (each object named with probability ``mention_prob``),
as human captions do, so the number of objects to name cannot be read off the image and a model can
hallucinate by *addition* (name an absent object beside all the present ones): CHAIR and recall then
measure different things.

For DPO the world also writes ``pairs.jsonl`` on its own images (``images/pairs/``), drawn without
the co-occurrence bias, so lone anchors — where the bias prior hallucinates — are common. Two regimes
(``pairs_regime``):

* ``relative`` (default), how real preference data differs from demonstrations: both responses are
  captions of a *biased describer* — a model that learned the train split's prior, naming the absent
  partner of a named lone anchor with probability ``describer_bias`` (by misnaming another named object,
  ``describer_swap``, else as an extra object) and making another error with probability
  ``describer_noise`` — and the annotator prefers the one with fewer false sentences (ties are no
  preference and are drawn again). The chosen caption is better, not right: it still names the absent
  partner in most pairs where the prior fires, so imitating it keeps the bias and only the contrast
  with the rejected teaches the model to drop it. Misnaming rather than adding keeps the two captions
  the same length in most pairs, so the contrast cannot be read as "say less".
* ``gold`` (the easy case, version 1): ``chosen`` is the true caption and ``rejected`` the same
  caption with one injected plausible hallucination (:func:`hallucinate`,
  :data:`HALLUCINATION_WEIGHTS`). Imitating the chosen captions alone fixes the bias here.

Everything is deterministic: the same :class:`ShapesConfig` gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from modalities.synthetic.worlds import WORLDS, World

# --- world definition -----------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")  # caption order
BIAS_PAIRS = (("circle", "square"), ("triangle", "star"), ("diamond", "cross"))  # (anchor, partner)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (150, 60, 190),
}
POSITIONS = ("top left", "top right", "bottom left", "bottom right")  # 2x2 quadrants
SYNONYMS = {
    "circle": ("circle", "circles", "disc", "ball"),
    "square": ("square", "squares", "box"),
    "triangle": ("triangle", "triangles"),
    "star": ("star", "stars"),
    "diamond": ("diamond", "diamonds", "rhombus"),
    "cross": ("cross", "crosses", "plus"),
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four")

SPLITS = ("train", "test", "trigger")
PAIRS_SPLIT = "pairs"  # optional extra split: annotated preference pairs on their own images
RANKED_SPLIT = "ranked"  # optional extra split: K ranked captions per image (ranked objectives: LiPO, PRO)
HALLUCINATION_KINDS = ("partner", "co_occurrence", "colour", "count")
# Probability of each injected-hallucination family in a rejected caption. "bias" is
# "partner" when the image has an anchor without its partner, else "co_occurrence".
HALLUCINATION_WEIGHTS = {"bias": 0.5, "colour": 0.25, "count": 0.25}
POPE_KINDS = ("random", "popular", "adversarial")
PAIR_REGIMES = ("relative", "gold")  # see ShapesConfig.pairs_regime
VERSION = "2"
# Settings added after version-2 folders were first written, at the value that reproduces those folders.
ADDED_SETTINGS = {"describer_swap": 0.0}

_PARTNER = dict(BIAS_PAIRS)  # anchor -> partner
_MATE = {**_PARTNER, **{p: a for a, p in BIAS_PAIRS}}  # either member -> the other
_SAMPLING = {"train": "biased", "test": "unbiased", "trigger": "trigger", PAIRS_SPLIT: "unbiased",
             RANKED_SPLIT: "unbiased"}
_SPLIT_SEED = {"train": 0, "test": 1, "trigger": 2, PAIRS_SPLIT: 3, RANKED_SPLIT: 4}  # independent streams
_BACKGROUND = 245
_NOISE = 10
_TRAIN_QUESTIONS = ("existence-yes", "existence-no", "colour", "count", "position")
_DESCRIBE = "Describe the image."
_COUNT_QUESTION = "How many objects are in the image?"


@dataclasses.dataclass
class ShapesConfig:
    seed: int = 0  # master seed; each split derives its own stream from (seed, split)
    image_size: int = 48  # square image side in pixels (each quadrant is half of it)
    n_train: int = 12000  # images in the biased train split
    n_test: int = 500  # images in the unbiased test split
    n_trigger: int = 300  # images where an anchor appears without its partner
    bias: float = 0.95  # train: probability an anchor brings its partner along
    questions_per_image: int = 2  # train: distinct question rows per image (0..5)
    caption_order: str = "shape"  # objects in captions: "shape" (SHAPES order, partners follow anchors) or "position"
    mention_prob: float = 0.75  # training captions name each object with this probability (at least one): like
    # human captions they describe part of the scene, so a model cannot read how many objects to name off the
    # image and can hallucinate by *addition*; 1.0: exhaustive captions (version-1 worlds)
    n_pairs: int = 4000  # images of the pairs split (unbiased, own stream; 0: no pairs file)
    pairs_per_image: int = 1  # annotated preference pairs per pairs image
    pairs_regime: str = "relative"  # "relative": two captions of a biased describer, the one with fewer false
    # sentences chosen (it may be wrong too); "gold": chosen = the true caption, rejected = it + one injected error
    describer_bias: float = 0.8  # relative: P(the describer names the absent partner of a named lone anchor)
    describer_noise: float = 0.3  # relative: P(one other error per caption: a wrong colour or an extra object)
    describer_addition: float = 0.0  # relative: P(the other error is an extra object, not a wrong colour)
    describer_swap: float = 1.0  # relative: P(a partner error misnames another named object as the partner rather
    # than adding it; added when only the anchor is named). With swaps and no extra objects a wrong caption is
    # rarely longer than a right one, so the contrast is what is said, not how much (0 and 0.5: the older regime)
    n_ranked: int = 1000  # images of the ranked split (unbiased, own stream; 0: no ranked file)
    ranked_responses: int = 4  # K captions per ranked image: the truth, then 1, 2, … injected hallucinations


# --- scenes and rendering -------------------------------------------------------------


def _draw_shapes(rng: np.random.Generator, mode: str, bias: float) -> list[str]:
    """Pick the distinct shapes of one image according to the split's sampling mode."""
    n = int(rng.integers(1, 5))
    if mode == "unbiased":
        return [SHAPES[i] for i in rng.choice(len(SHAPES), size=n, replace=False)]
    if mode == "trigger":
        # An anchor without its partner; no other pair may be complete either, so at
        # most one shape per pair: n is capped at len(BIAS_PAIRS).
        anchor = BIAS_PAIRS[int(rng.integers(len(BIAS_PAIRS)))][0]
        chosen, pool = [anchor], [s for s in SHAPES if s not in (anchor, _PARTNER[anchor])]
        while len(chosen) < n and pool:
            shape = pool.pop(int(rng.integers(len(pool))))
            chosen.append(shape)
            pool.remove(_MATE[shape])
        return chosen
    if mode != "biased":
        raise ValueError(f"unknown sampling mode {mode!r}")
    chosen, pool = [], list(SHAPES)
    while len(chosen) < n:
        candidates = list(pool)
        while True:
            shape = candidates.pop(int(rng.integers(len(candidates))))
            lonely = shape in _PARTNER and _PARTNER[shape] not in chosen
            last = len(chosen) + 1 == n
            # An anchor drawn into the last slot has no room for its partner; it is
            # kept only with probability 1 - bias, else another shape is drawn.
            # Without this, P(partner | anchor) tops out near 0.7 whatever the bias.
            if not (lonely and last and candidates and rng.random() < bias):
                break
        pool.remove(shape)
        chosen.append(shape)
        if lonely and not last and rng.random() < bias:
            pool.remove(_PARTNER[shape])
            chosen.append(_PARTNER[shape])
    return chosen


def sample_scene(
    rng: np.random.Generator, mode: str = "unbiased", image_size: int = 48, bias: float = 0.95
) -> list[dict[str, Any]]:
    """Sample the objects of one image (``mode``: "biased", "unbiased" or "trigger").

    Objects come back sorted in SHAPES order, each in its own random quadrant.
    """
    shapes = _draw_shapes(rng, mode, bias)
    quadrants = rng.permutation(len(POSITIONS))[: len(shapes)]
    side = image_size // 2
    colour_names = list(COLOURS)
    objects = []
    for shape, q in zip(shapes, quadrants):
        colour = colour_names[int(rng.integers(len(colour_names)))]
        size = int(round(rng.uniform(0.55, 0.8) * side))
        jitter = max(0, min(3, (side - size) // 2))  # stay inside the quadrant
        cx = int((q % 2) * side + side // 2 + rng.integers(-jitter, jitter + 1))
        cy = int((q // 2) * side + side // 2 + rng.integers(-jitter, jitter + 1))
        objects.append(
            {"shape": shape, "colour": colour, "position": POSITIONS[q], "cx": cx, "cy": cy, "size": size}
        )
    return sorted(objects, key=lambda o: SHAPES.index(o["shape"]))


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii)]


def render(
    objects: Sequence[dict[str, Any]], image_size: int = 48, rng: np.random.Generator | None = None
) -> Image.Image:
    """Draw objects on a light, slightly noisy background (noise keeps images from being trivially flat)."""
    rng = np.random.default_rng(0) if rng is None else rng
    noise = rng.integers(-_NOISE, _NOISE + 1, size=(image_size, image_size, 3))
    pixels = np.clip(_BACKGROUND + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    for obj in objects:
        cx, cy, h, fill = obj["cx"], obj["cy"], obj["size"] / 2, COLOURS[obj["colour"]]
        box = (cx - h, cy - h, cx + h, cy + h)
        shape = obj["shape"]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        elif shape == "triangle":
            draw.polygon([(cx, cy - h), (cx - h, cy + h), (cx + h, cy + h)], fill=fill)
        elif shape == "star":
            draw.polygon(_star(cx, cy, h), fill=fill)
        elif shape == "diamond":
            draw.polygon([(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)], fill=fill)
        elif shape == "cross":
            w = max(1.0, obj["size"] / 3) / 2
            draw.rectangle((cx - h, cy - w, cx + h, cy + w), fill=fill)
            draw.rectangle((cx - w, cy - h, cx + w, cy + h), fill=fill)
        else:
            raise ValueError(f"unknown shape {shape!r}")
    return image


def trigger_absent(objects: Iterable[dict[str, Any]]) -> list[str]:
    """Partners that are missing although their anchor is present (the bias triggers)."""
    present = {o["shape"] for o in objects}
    return [p for a, p in BIAS_PAIRS if a in present and p not in present]


# --- text ------------------------------------------------------------------------------


def _sentence(obj: dict[str, Any]) -> str:
    # The object first: its name is what the next words (colour, position) are looked up by.
    return f"The {obj['shape']} is {obj['colour']} and at the {obj['position']}."


def caption(objects: Sequence[dict[str, Any]], order: str = "shape") -> str:
    """One sentence per object, in reading order (POSITIONS) or in SHAPES order."""
    if not objects:
        raise ValueError("a scene has at least one object")
    if order not in ("position", "shape"):
        raise ValueError(f"caption order must be 'position' or 'shape', not {order!r}")
    table, key = (POSITIONS, "position") if order == "position" else (SHAPES, "shape")
    return " ".join(_sentence(o) for o in sorted(objects, key=lambda o: table.index(o[key])))


def existence_question(shape: str) -> str:
    return f"Is there a {shape} in the image?"


def _colour_q(shape: str) -> str:
    return f"What colour is the {shape}?"


def _position_q(shape: str) -> str:
    return f"Where is the {shape}?"


def corpus() -> list[str]:
    """Every string the world can produce (pieces of captions, all questions and answers).

    Meant for training a tokenizer: any caption is a concatenation of these pieces.
    """
    texts = [_DESCRIBE, _COUNT_QUESTION, "Yes.", "No.", "yes", "no"]
    for shape in SHAPES:
        texts += [existence_question(shape), _colour_q(shape), _position_q(shape)]
    for colour in COLOURS:
        texts += [f"{colour.capitalize()}.", colour]
    for word in NUMBER_WORDS:
        texts += [f"{word.capitalize()}.", word]
    for position in POSITIONS:
        texts += [f"At the {position}.", position]
    for shape in SHAPES:
        for colour in COLOURS:
            for position in POSITIONS:
                sentence = _sentence({"shape": shape, "colour": colour, "position": position})
                texts += [sentence, " " + sentence]
    return list(dict.fromkeys(texts))


_SYNONYM_TO_SHAPE = {word: shape for shape, words in SYNONYMS.items() for word in words}
_SHAPE_RE = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _SYNONYM_TO_SHAPE), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def mentioned_shapes(text: str) -> list[str]:
    """Canonical shapes named in free text (synonyms allowed), in order of first mention."""
    found = (_SYNONYM_TO_SHAPE[m.group(1).lower()] for m in _SHAPE_RE.finditer(text))
    return list(dict.fromkeys(found))


def parse_yes_no(text: str) -> str | None:
    """POPE convention: any "no"/"not" means no, else any "yes" means yes, else undecided."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    if words & {"no", "not"}:
        return "no"
    return "yes" if "yes" in words else None


# --- rows -----------------------------------------------------------------------------


def _row(image_id: str, split: str, task: str, question: str, reply: str, answer: str,
         objects: list[dict], suffix: str, pope: str | None = None) -> dict[str, Any]:
    return {
        "id": f"{image_id}-{suffix}",
        "image_id": image_id,
        "split": split,
        "task": task,
        "pope": pope,
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": reply}]}],
        "answer": answer,
        "images": [f"images/{split}/{image_id.rsplit('-', 1)[1]}.png"],
        "objects": objects,
        "trigger_absent": trigger_absent(objects),
    }


def _question(kind: str, shape: str | None, objects: list[dict]) -> tuple[str, str, str, str]:
    """(task, question, reply, short answer) for one question kind about ``shape``."""
    by_shape = {o["shape"]: o for o in objects}
    if kind.startswith("existence"):
        answer = "yes" if shape in by_shape else "no"
        return "existence", existence_question(shape), f"{answer.capitalize()}.", answer
    if kind == "count":
        word = NUMBER_WORDS[len(objects)]
        return "count", _COUNT_QUESTION, f"{word.capitalize()}.", word
    obj = by_shape[shape]
    if kind == "colour":
        return "colour", _colour_q(shape), f"{obj['colour'].capitalize()}.", obj["colour"]
    return "position", _position_q(shape), f"At the {obj['position']}.", obj["position"]


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _image_rows(rng: np.random.Generator, image_id: str, split: str, objects: list[dict],
                config: ShapesConfig, stats: dict | None) -> list[dict[str, Any]]:
    present = [o["shape"] for o in objects]
    absent = [s for s in SHAPES if s not in present]
    # Training captions describe part of the scene; eval rows keep the exhaustive reference caption.
    described = mentioned_objects(rng, objects, config.mention_prob) if split == "train" else objects
    text = caption(described, config.caption_order)
    rows = [_row(image_id, split, "caption", _DESCRIBE, text, text, objects, "caption")]
    if split == "train":
        kinds = rng.choice(len(_TRAIN_QUESTIONS), size=config.questions_per_image, replace=False)
        for kind in (_TRAIN_QUESTIONS[k] for k in sorted(kinds)):
            shape = _pick(rng, absent) if kind == "existence-no" else _pick(rng, present)
            rows.append(_row(image_id, split, *_question(kind, shape, objects), objects, kind))
        return rows
    frequency, cooc = stats["train_shape_frequency"], stats["train_cooccurrence"]
    negatives = {
        "random": _pick(rng, absent),
        "popular": min(absent, key=lambda s: (-frequency[s], SHAPES.index(s))),
        "adversarial": min(
            absent, key=lambda s: (-sum(cooc[p][s] for p in present), SHAPES.index(s))
        ),
    }
    for pope in POPE_KINDS:
        for answer, shape in (("yes", _pick(rng, present)), ("no", negatives[pope])):
            q = _question("existence", shape, objects)
            rows.append(_row(image_id, split, *q, objects, f"existence-{pope}-{answer}", pope=pope))
    for kind in ("colour", "count", "position"):
        rows.append(_row(image_id, split, *_question(kind, _pick(rng, present), objects), objects, kind))
    return rows


def mentioned_objects(rng: np.random.Generator, objects: Sequence[dict[str, Any]], p: float) -> list[dict[str, Any]]:
    """The objects a partial caption names: each with probability ``p``, at least one (no draws when p >= 1)."""
    if p >= 1:
        return list(objects)
    keep = [o for o, draw in zip(objects, rng.random(len(objects))) if draw < p]
    return keep or [objects[int(rng.integers(len(objects)))]]


def _inserted_object(rng: np.random.Generator, shape: str, objects: list[dict]) -> dict[str, Any]:
    """A hallucinated object: random colour, a random free quadrant (else an occupied one's position)."""
    taken = {o["position"] for o in objects}
    free = [p for p in POSITIONS if p not in taken] or [o["position"] for o in objects]
    return {"shape": shape, "colour": _pick(rng, list(COLOURS)), "position": _pick(rng, free)}


def hallucinate(rng: np.random.Generator, objects: Sequence[dict[str, Any]], stats: dict[str, Any],
                order: str = "shape") -> tuple[str, dict[str, str]]:
    """A caption of ``objects`` with exactly one injected plausible hallucination.

    Returns ``(rejected caption, {"kind", "shape", "detail"})`` where ``detail`` is the
    false sentence of the caption. The kind is drawn with :data:`HALLUCINATION_WEIGHTS`:

    * bias (50 %): ``partner`` if an anchor is present without its partner (one such
      partner, picked at random): the sentence the bias prior predicts; else
      ``co_occurrence``: the absent shape that co-occurs most with the present ones in the
      train stats (ties broken by SHAPES order).
    * ``colour`` (25 %): one random object gets another (random) colour word.
    * ``count`` (25 %): an extra sentence for a random absent shape (so the number of
      objects is wrong too). With four objects there is no free quadrant: it shares an
      occupied one's position, as partner/co_occurrence sentences do then.

    Inserted objects get a random colour and a random free quadrant; their sentence lands
    where the caption order puts it (its SHAPES-order place by default). The inserted shape
    is always absent from the image, so CHAIR counts it.
    """
    changed, info = _hallucinated(rng, objects, stats)
    return caption(changed, order), info


def _hallucinated(rng: np.random.Generator, objects: Sequence[dict[str, Any]],
                  stats: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The objects of :func:`hallucinate`'s caption (one injected hallucination) and its record."""
    objects = [dict(o) for o in objects]
    present = [o["shape"] for o in objects]
    absent = [s for s in SHAPES if s not in present]
    names = list(HALLUCINATION_WEIGHTS)
    weights = np.array([HALLUCINATION_WEIGHTS[k] for k in names], dtype=float)
    edges = np.cumsum(weights / weights.sum())
    family = names[min(int(np.searchsorted(edges, rng.random(), side="right")), len(names) - 1)]
    if family == "colour" or not absent:  # every shape already named: only a colour can go wrong
        target = objects[int(rng.integers(len(objects)))]
        target["colour"] = _pick(rng, [c for c in COLOURS if c != target["colour"]])
        return objects, {"kind": "colour", "shape": target["shape"], "detail": _sentence(target)}
    if family == "count":
        kind, shape = "count", _pick(rng, absent)
    elif lonely := trigger_absent(objects):
        kind, shape = "partner", _pick(rng, lonely)
    else:
        cooc = stats["train_cooccurrence"]
        kind = "co_occurrence"
        shape = min(absent, key=lambda s: (-sum(cooc[p][s] for p in present), SHAPES.index(s)))
    extra = _inserted_object(rng, shape, objects)
    with_extra = sorted(objects + [extra], key=lambda o: SHAPES.index(o["shape"]))
    return with_extra, {"kind": kind, "shape": shape, "detail": _sentence(extra)}


def _ranked_rows(rng: np.random.Generator, image_id: str, objects: list[dict], config: ShapesConfig,
                 stats: dict) -> list[dict[str, Any]]:
    """One ranked row: the true caption and captions with 1, 2, … injected hallucinations (each adds one to
    the previous), scored by minus the number of false sentences (so the truth scores 0, best)."""
    truth = {(o["shape"], o["colour"], o["position"]) for o in objects}
    current, responses, scores, kinds = objects, [], [], []
    for k in range(config.ranked_responses):
        if k:
            current, info = _hallucinated(rng, current, stats)
            kinds.append(info["kind"])
        responses.append([{"role": "assistant", "content": [{"type": "text", "text": caption(current, config.caption_order)}]}])
        scores.append(-sum((o["shape"], o["colour"], o["position"]) not in truth for o in current))
    return [{
        "id": f"{image_id}-ranked",
        "image_id": image_id,
        "split": RANKED_SPLIT,
        "task": "caption_ranked",
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _DESCRIBE}]}],
        "responses": responses,
        "scores": scores,
        "images": [f"images/{RANKED_SPLIT}/{image_id.rsplit('-', 1)[1]}.png"],
        "objects": objects,
        "hallucinations": kinds,
    }]


def _describe(rng: np.random.Generator, objects: list[dict], named: list[dict],
              config: ShapesConfig) -> tuple[list[dict], list[dict[str, str]]]:
    """One caption of a *biased describer* (a model that learned the train split's prior) naming ``named``.

    It names the absent partner of each named lone anchor with probability ``describer_bias`` (the bias
    the train split teaches), and with probability ``describer_noise`` makes one other error: a wrong
    colour, or an extra absent object that is not a partner. Returns the described objects (SHAPES
    order) and the error records ``{"kind", "shape", "detail"}`` (one per false sentence).
    """
    described, errors = [dict(o) for o in named], []
    named_shapes = {o["shape"] for o in named}
    swapped: set[int] = set()  # indices into ``described`` misnamed as a partner
    for anchor, partner in BIAS_PAIRS:
        if anchor in named_shapes and partner in trigger_absent(objects) and rng.random() < config.describer_bias:
            # A swap misidentifies a named object that is neither an anchor nor already misnamed; the draw is
            # made only when swaps are on, so describer_swap=0 reproduces the worlds written before the knob.
            candidates = [i for i, o in enumerate(described[:len(named)])
                          if i not in swapped and o["shape"] not in _PARTNER]
            if config.describer_swap > 0 and rng.random() < config.describer_swap and candidates:
                i = candidates[int(rng.integers(len(candidates)))]
                described[i]["shape"] = partner
                swapped.add(i)
                extra = described[i]
            else:
                extra = _inserted_object(rng, partner, objects)
                described.append(extra)
            errors.append({"kind": "partner", "shape": partner, "detail": _sentence(extra)})
    if rng.random() < config.describer_noise:
        present = {o["shape"] for o in objects}
        others = [s for s in SHAPES if s not in present and s not in {o["shape"] for o in described}
                  and s not in _PARTNER.values()]
        if others and rng.random() < config.describer_addition:
            extra = _inserted_object(rng, _pick(rng, others), objects)
            described.append(extra)
            errors.append({"kind": "count", "shape": extra["shape"], "detail": _sentence(extra)})
        else:
            true = [o for i, o in enumerate(described[:len(named)]) if i not in swapped]
            target = true[int(rng.integers(len(true)))]  # a true object gets a wrong colour
            target["colour"] = _pick(rng, [c for c in COLOURS if c != target["colour"]])
            errors.append({"kind": "colour", "shape": target["shape"], "detail": _sentence(target)})
    return sorted(described, key=lambda o: SHAPES.index(o["shape"])), errors


_MAX_DRAWS = 20  # relative pairs: candidate pairs drawn until their error counts differ


def _relative_pair(rng: np.random.Generator, objects: list[dict], config: ShapesConfig,
                   stats: dict) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(chosen objects, chosen errors, rejected objects, rejected errors) of one relative-preference pair.

    Two describer captions of the same named objects; the one with fewer false sentences is chosen (ties
    are not preferences: drawn again). If ``_MAX_DRAWS`` draws all tie, the rejected is the first
    caption plus one injected hallucination (:func:`hallucinate`'s families).
    """
    # Both captions name the same objects: the contrast is in the errors only. (Captions naming their own
    # subsets, ties broken by naming more, were measured too: DPO then gained nothing over the control.)
    named = mentioned_objects(rng, objects, config.mention_prob)
    for _ in range(_MAX_DRAWS):
        a, b = _describe(rng, objects, named, config), _describe(rng, objects, named, config)
        if len(a[1]) != len(b[1]):
            (chosen, chosen_errors), (rejected, rejected_errors) = sorted((a, b), key=lambda c: len(c[1]))
            return chosen, chosen_errors, rejected, rejected_errors
    chosen, chosen_errors = a
    rejected, info = _hallucinated(rng, chosen, stats)
    return chosen, chosen_errors, rejected, chosen_errors + [info]


def _pair_rows(rng: np.random.Generator, image_id: str, objects: list[dict], config: ShapesConfig,
               stats: dict) -> list[dict[str, Any]]:
    """``config.pairs_per_image`` preference rows (TRL conversational schema) for one pairs image.

    ``chosen_errors`` / ``rejected_errors`` list the false sentences of each side; ``hallucination`` is the
    first error of the rejected that the chosen does not make (what the pair teaches to avoid).
    """
    rows = []
    for k in range(config.pairs_per_image):
        if config.pairs_regime == "gold":
            chosen_objects, chosen_errors = objects, []
            rejected_objects, info = _hallucinated(rng, objects, stats)
            rejected_errors = [info]
        else:
            chosen_objects, chosen_errors, rejected_objects, rejected_errors = _relative_pair(
                rng, objects, config, stats)
        chosen = caption(chosen_objects, config.caption_order)
        rejected = caption(rejected_objects, config.caption_order)
        made = {(e["kind"], e["shape"]) for e in chosen_errors}
        info = next((e for e in rejected_errors if (e["kind"], e["shape"]) not in made), rejected_errors[-1])
        rows.append({
            "id": f"{image_id}-pair{k}",
            "image_id": image_id,
            "split": PAIRS_SPLIT,
            "task": "caption_pair",
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _DESCRIBE}]}],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": chosen}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text", "text": rejected}]}],
            "images": [f"images/{PAIRS_SPLIT}/{image_id.rsplit('-', 1)[1]}.png"],
            "objects": objects,
            "hallucination": info,
            "chosen_errors": chosen_errors,
            "rejected_errors": rejected_errors,
            "regime": config.pairs_regime,
        })
    return rows


def _train_stats(scenes: list[list[dict]]) -> dict[str, Any]:
    """Shape frequencies and pairwise co-occurrence counts over train images (for POPE negatives)."""
    frequency = Counter({s: 0 for s in SHAPES})
    cooc = {a: {b: 0 for b in SHAPES if b != a} for a in SHAPES}
    for objects in scenes:
        shapes = [o["shape"] for o in objects]
        frequency.update(shapes)
        for a in shapes:
            for b in shapes:
                if a != b:
                    cooc[a][b] += 1
    return {"train_shape_frequency": dict(frequency), "train_cooccurrence": cooc}


# --- files ----------------------------------------------------------------------------


def _existing_config(path: Path) -> dict | None:
    try:
        meta = json.loads((path / "world.json").read_text())
    except (OSError, ValueError):
        return None
    return {**ADDED_SETTINGS, **meta["config"]} if meta.get("version") == VERSION and "config" in meta else None


def generate_world(out_dir: str | Path, config: ShapesConfig | None = None, progress: bool = True) -> Path:
    """Write images, JSONL rows and world.json under ``out_dir``; reuse it if the config matches.

    Files are built in a temp dir next to ``out_dir`` and swapped in at the end, so a
    crash never leaves a half-written world behind.
    """
    from rich.progress import Progress

    config = config or ShapesConfig()
    if not 0 <= config.questions_per_image <= len(_TRAIN_QUESTIONS):
        raise ValueError(f"questions_per_image must be in 0..{len(_TRAIN_QUESTIONS)}")
    if config.n_pairs < 0 or config.pairs_per_image < 1:
        raise ValueError("n_pairs must be >= 0 and pairs_per_image >= 1")
    if config.n_ranked < 0 or config.ranked_responses < 2:
        raise ValueError("n_ranked must be >= 0 and ranked_responses >= 2")
    if config.pairs_regime not in PAIR_REGIMES:
        raise ValueError(f"pairs_regime must be one of {', '.join(PAIR_REGIMES)}, not {config.pairs_regime!r}")
    for name in ("mention_prob", "describer_bias", "describer_noise", "describer_addition", "describer_swap"):
        value = getattr(config, name)
        if not 0 <= value <= 1 or (name == "mention_prob" and value == 0):
            raise ValueError(f"{name} must be a probability{' above 0' if name == 'mention_prob' else ''}, "
                             f"not {value!r}")
    out = Path(out_dir).resolve()
    if _existing_config(out) == dataclasses.asdict(config):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        stats: dict[str, Any] = {}
        sizes = {"train": config.n_train, "test": config.n_test, "trigger": config.n_trigger}
        if config.n_pairs:
            sizes[PAIRS_SPLIT] = config.n_pairs  # after train: it needs the train stats
        if config.n_ranked:
            sizes[RANKED_SPLIT] = config.n_ranked
        with Progress(disable=not progress) as bar:
            for split, size in sizes.items():
                task = bar.add_task(f"shapes world: {split}", total=size)
                rng = np.random.default_rng([config.seed, _SPLIT_SEED[split]])
                (tmp / "images" / split).mkdir(parents=True)
                scenes, rows = [], []
                for i in range(size):
                    objects = sample_scene(rng, _SAMPLING[split], config.image_size, config.bias)
                    render(objects, config.image_size, rng).save(tmp / "images" / split / f"{i:05d}.png")
                    if split == PAIRS_SPLIT:
                        rows += _pair_rows(rng, f"{split}-{i:05d}", objects, config, stats)
                    elif split == RANKED_SPLIT:
                        rows += _ranked_rows(rng, f"{split}-{i:05d}", objects, config, stats)
                    else:
                        rows += _image_rows(rng, f"{split}-{i:05d}", split, objects, config, stats)
                    scenes.append(objects)
                    bar.advance(task)
                if split == "train":
                    stats = _train_stats(scenes)
                with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        meta = {
            "version": VERSION,
            "config": dataclasses.asdict(config),
            "shapes": list(SHAPES),
            "colours": {k: list(v) for k, v in COLOURS.items()},
            "positions": list(POSITIONS),
            "bias_pairs": [list(p) for p in BIAS_PAIRS],
            **stats,
        }
        (tmp / "world.json").write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _features(split: str = "train"):
    from datasets import Features, Value

    text = Value("string")
    message = {"role": text, "content": [{"type": text, "text": text}]}
    obj = {"shape": text, "colour": text, "position": text,
           "cx": Value("int32"), "cy": Value("int32"), "size": Value("int32")}
    if split == PAIRS_SPLIT:
        return Features({
            "id": text, "image_id": text, "split": text, "task": text,
            "prompt": [message], "chosen": [message], "rejected": [message],
            "images": [text], "objects": [obj],
            "hallucination": {"kind": text, "shape": text, "detail": text},
            "chosen_errors": [{"kind": text, "shape": text, "detail": text}],
            "rejected_errors": [{"kind": text, "shape": text, "detail": text}],
            "regime": text,
        })
    return Features({
        "id": text, "image_id": text, "split": text, "task": text, "pope": text,
        "prompt": [message], "completion": [message], "answer": text,
        "images": [text], "objects": [obj], "trigger_absent": [text],
    })


def load_world(path: str | Path):
    """Load the splits as a ``datasets.DatasetDict`` (image paths stay relative to ``path``).

    The three SPLITS share one explicit schema, which keeps their columns identical even
    where a split has only nulls (train ``pope``) or only empty lists. A ``pairs`` split
    (preference schema: ``prompt``/``chosen``/``rejected``) is added when ``pairs.jsonl``
    exists.
    """
    from datasets import Dataset, DatasetDict

    path = Path(path)
    splits = {}
    for split in SPLITS + (PAIRS_SPLIT,):
        file = path / f"{split}.jsonl"
        if split == PAIRS_SPLIT and not file.exists():
            continue
        with open(file, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        splits[split] = Dataset.from_list(rows, features=_features(split))
    return DatasetDict(splits)


WORLDS.register("shapes", World(ShapesConfig, generate_world, version=VERSION, added=ADDED_SETTINGS))
