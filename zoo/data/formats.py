"""Reading data into the one schema: local files (JSONL, Parquet, saved DatasetDicts), and adapters
for public preference formats (RLAIF-V, VLFeedback, POVID, align-anything with its language-feedback
data): `FORMATS`, `convert`, `load_format`.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.data.critique import critic_row
from zoo.data.schema import MEDIA_COLUMNS, DataError, validate_row
from zoo.registry import Registry

logger = logging.getLogger(__name__)


def split_source(path: str | Path, split: str) -> Path | str:
    """What `read_rows` reads ``split`` from: ``{split}.jsonl``, ``{split}.parquet``, a saved DatasetDict's
    folder, or — for a folder in the Hub's layout (``data/{split}-*.parquet`` …) or a Hub dataset name
    (``org/name``) — ``"hub:<path>[<split>]"``, read with ``datasets.load_dataset``."""
    path = Path(path)
    for candidate in (path / f"{split}.jsonl", path / f"{split}.parquet"):
        if candidate.exists():
            return candidate
    if (path / "dataset_dict.json").exists():
        return path
    if path.is_dir() and not any(path.glob("data/*")) and not (path / "README.md").exists():
        raise FileNotFoundError(f"no split '{split}' under {path} (expected {split}.jsonl, {split}.parquet, a saved "
                                "DatasetDict, or a dataset in the Hub's layout: data/{split}-*.parquet)")
    if not path.exists() and not _hub_name(str(path)):
        raise FileNotFoundError(f"no dataset at {path}: neither a local folder nor a Hub dataset name (org/name)")
    return f"hub:{path}[{split}]"


def _hub_name(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def read_rows(path: str | Path, split: str, skip_bad: bool = False, report: Counter | None = None) -> list[dict]:
    """Rows of one split from a folder holding ``{split}.jsonl`` / ``{split}.parquet`` or a saved DatasetDict,
    or from a dataset on the Hub (its name, or a folder in its layout) via ``datasets.load_dataset``;
    images stay undecoded (``{"bytes", "path"}``: the encoder decodes them, with its size check).

    A JSONL line that is not one JSON object (malformed JSON, not UTF-8, an array …) raises `DataError`
    naming the file and the line (1-based); with ``skip_bad`` it is skipped, logged and counted by
    reason into ``report``.
    """
    source = split_source(path, split)
    if isinstance(source, str):
        return _load_hub_split(str(path), split)
    if source.suffix == ".jsonl":
        return _read_jsonl(source, skip_bad, Counter() if report is None else report)
    import datasets

    if source.suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(source)).to_list()
    return datasets.load_from_disk(str(source))[split].to_list()


def _load_hub_split(name: str, split: str, subset: str | None = None) -> list[dict]:
    """One split of a Hub dataset (a name, or a local folder in the Hub's layout), images undecoded."""
    import datasets

    try:
        ds = datasets.load_dataset(name, subset, split=split)
    except ValueError as e:  # an unknown split: datasets lists the ones there are
        raise FileNotFoundError(f"{name}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # not found / offline / no access: say which dataset and how it failed
        if type(e).__name__ in ("DatasetNotFoundError", "ConnectionError", "OfflineModeIsEnabled", "HfHubHTTPError",
                                "LocalEntryNotFoundError", "FileNotFoundError"):
            raise FileNotFoundError(f"cannot load the dataset {name!r} with datasets.load_dataset "
                                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        raise
    return _undecoded(ds).to_list()


def _read_jsonl(file: Path, skip_bad: bool, report: Counter) -> list[dict]:
    rows, bad = [], []
    with file.open("rb") as f:  # bytes: a line that is not UTF-8 fails alone, with its number
        for n, raw in enumerate(f, 1):
            try:
                row = _parse_line(raw, n, file)
            except DataError as e:
                if not skip_bad:
                    raise
                report[f"line: {e.kind}"] += 1
                bad.append(e)
                continue
            if row is not None:
                rows.append(row)
    if bad:
        logger.warning("%s: skipped %d unreadable line(s), e.g. %s", file, len(bad), "; ".join(map(str, bad[:3])))
    return rows


def _parse_line(raw: bytes, n: int, file: Path) -> dict | None:
    """One JSONL line as a row (None for a blank line), or a DataError naming ``file`` and line ``n``."""
    try:
        text = raw.decode("utf-8-sig" if n == 1 else "utf-8")  # a byte-order mark may open the file
    except UnicodeDecodeError as e:
        raise DataError(None, "", f"not UTF-8 text (byte 0x{raw[e.start]:02x} at byte {e.start + 1}); save the "
                        "file as UTF-8", kind="not UTF-8", source=file, line=n) from None
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(None, "", f"malformed JSON ({e.msg} at column {e.colno})", kind="malformed JSON",
                        source=file, line=n) from None
    if not isinstance(row, dict):
        what = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(row), "a number")
        raise DataError(None, "", f"expected one JSON object per line, got {what} ({text.strip()[:40]})",
                        kind="not an object", source=file, line=n)
    return row


# ---------------------------------------------------------------------------------------------
# Adapters for public preference datasets.
#
# Each adapter is ``fn(row, index=None, **options) -> row`` turning one source record into the one
# schema (see `zoo.data.schema`): ``prompt`` (user message with ``{"type": "image"|"audio"}`` placeholders),
# ``chosen`` / ``rejected`` (one assistant message each), ``responses`` / ``scores`` (ranked) or ``completion`` (SFT),
# ``images`` / ``audios`` (paths / bytes / ``{"bytes", "path"}`` dicts in placeholder order) and ``meta``
# (provenance). Bad input raises `DataError` naming the example and the source field; a record
# that is well-formed but carries no preference (a rating tie) raises `SkipExample`, which
# `convert` counts instead of failing.
# ---------------------------------------------------------------------------------------------


IMAGE_TOKEN = "<image>"
FORMATS: Registry[Callable[..., dict]] = Registry("data format")


class SkipExample(Exception):
    """A well-formed record that yields no training example (e.g. a rating tie); `convert` counts it."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _field(row: dict, key: str, index: Any) -> Any:
    if not isinstance(row, dict):
        raise DataError(index, key, f"expected a record (dict), got {type(row).__name__}")
    value = row.get(key)
    if _missing(value):
        raise DataError(index, key, "missing" if value is None or key not in row else "empty")
    return value


def _text(row: dict, key: str, index: Any) -> str:
    value = _field(row, key, index)
    if not isinstance(value, str):
        raise DataError(index, key, f"expected a string, got {type(value).__name__}")
    return value.strip()


def _media(row: dict, index: Any, keys: tuple[str, ...], kind: str = "image",
           required: bool = True) -> tuple[Any, str | None]:
    """The record's one ``kind`` (image or audio) as a schema media item, from the first of ``keys`` that holds one.

    HF ``Image`` / ``Audio`` dicts keep their bytes (``{"bytes", "path"}``) or collapse to the path; a decoded
    HF ``Audio`` dict (``{"array", "sampling_rate"}``, datasets < 4) keeps its samples and rate; PIL images
    become PNG bytes; strings stay paths. Returns the item and the field it came from, or ``(None, None)``
    when no field holds one and ``required`` is false.
    """
    for key in keys:
        value = row.get(key) if isinstance(row, dict) else None
        if _missing(value):
            continue
        if isinstance(value, dict):
            if value.get("bytes") is not None:
                return {"bytes": value["bytes"], "path": value.get("path")}, key
            if kind == "audio" and value.get("array") is not None:
                if value.get("sampling_rate") is None:
                    raise DataError(index, key, "an audio 'array' without its 'sampling_rate'")
                return {"array": value["array"], "sampling_rate": value["sampling_rate"]}, key
            if not _missing(value.get("path")):
                return value["path"], key
            continue
        if isinstance(value, (bytes, bytearray)):
            return bytes(value), key
        if isinstance(value, (str, Path)):
            return str(value), key
        if kind == "image" and hasattr(value, "save"):  # a PIL image (the decoded HF Image feature)
            buf = io.BytesIO()
            value.save(buf, format="PNG")
            return {"bytes": buf.getvalue(), "path": getattr(value, "filename", None) or None}, key
        hint = "; cast the column with datasets.Audio(decode=False)" if hasattr(value, "get_all_samples") else ""
        raise DataError(index, key, f"cannot read {'an' if kind[0] in 'aeiou' else 'a'} {kind} from a "
                                    f"{type(value).__name__}{hint}")
    if required:
        raise DataError(index, keys[0], f"no {kind} (" + " / ".join(keys) + " missing)")
    return None, None


def _image(row: dict, index: Any, keys: tuple[str, ...] = ("image", "image_path")) -> tuple[Any, str]:
    """The record's one image (see `_media`)."""
    return _media(row, index, keys, "image")


def _user_prompt(text: str, n_media: int, index: Any, field: str, kind: str = "image") -> list[dict]:
    """One user message: ``<image>`` (``<audio>`` for ``kind="audio"``) tokens become placeholders where they
    stand (at the start if absent)."""
    token = f"<{kind}>"
    pieces = text.split(token)
    n_tokens = len(pieces) - 1
    if n_tokens == 0:
        pieces = [""] * n_media + [text]
    elif n_tokens != n_media:
        raise DataError(index, field, f"the text has {n_tokens} '{token}' token(s) but {n_media} {kind}(s) are given")
    content: list[dict] = []
    for i, piece in enumerate(pieces):
        if i:
            content.append({"type": kind})
        piece = piece.strip()
        if piece:
            content.append({"type": "text", "text": piece})
    if not any(p["type"] == "text" for p in content):
        raise DataError(index, field, "the prompt has no text")
    return [{"role": "user", "content": content}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _pair(prompt: list[dict], media: dict[str, list], chosen: str, rejected: str, index: Any, meta: dict,
          fields=("chosen", "rejected")) -> dict:
    """A preference row; ``media`` holds its media columns (``{"images": [...]}``, ``{}`` for text only)."""
    if chosen == rejected:
        raise DataError(index, fields[1], f"identical to '{fields[0]}': the pair carries no preference")
    return {"prompt": prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected), **media, "meta": meta}


def _scalar_fields(row: dict, exclude: Iterable[str]) -> dict:
    """The record's scalar fields (None, str, int, float, bool) outside ``exclude``: provenance for ``meta``."""
    exclude = set(exclude)
    return {k: v for k, v in row.items() if k not in exclude and (v is None or isinstance(v, (str, int, float, bool)))}


def _first_present(row: dict, keys: tuple[str, ...]) -> str:
    """The first of ``keys`` the record fills (errors name ``keys[0]`` when none is)."""
    return next((k for k in keys if not _missing(row.get(k))), keys[0]) if isinstance(row, dict) else keys[0]


@FORMATS.register("rlaif_v")
def rlaif_v(row: dict, index: Any = None) -> dict:
    """RLAIF-V-Dataset (openbmb/RLAIF-V-Dataset; Yu et al., "RLAIF-V", arXiv:2405.17220).

    Source fields: ``image`` (HF Image), ``question``, ``chosen``, ``rejected``, and provenance
    ``ds_name``, ``origin_dataset``, ``origin_split``, ``idx``, ``image_path`` (kept in ``meta``).
    The image comes from ``image``, else from ``image_path``.
    """
    question = _text(row, "question", index)
    chosen, rejected = _text(row, "chosen", index), _text(row, "rejected", index)
    image, _ = _image(row, index)
    meta = {"source": "rlaif_v"}
    meta.update({k: row.get(k) for k in ("ds_name", "origin_dataset", "origin_split", "idx", "image_path")})
    return _pair(_user_prompt(question, 1, index, "question"), {"images": [image]}, chosen, rejected, index, meta)


VLFEEDBACK_ASPECTS = ("Helpfulness", "Ethical Considerations", "Visual Faithfulness")


def _vlfeedback_scored(row: dict, index: Any, aspects: tuple[str, ...]) -> list[tuple[float, str, Any, int]]:
    """(average rating, response, model, position) of every completion rated on all ``aspects``."""
    completions = _field(row, "completions", index)
    if not isinstance(completions, list):
        raise DataError(index, "completions", f"expected a list, got {type(completions).__name__}")
    scored = []
    for c, completion in enumerate(completions):
        where = f"completions[{c}]"
        if not isinstance(completion, dict):
            raise DataError(index, where, f"expected a dict, got {type(completion).__name__}")
        response = completion.get("response")
        if _missing(response) or not isinstance(response, str):
            raise DataError(index, f"{where}.response", "missing" if response is None else "empty or not a string")
        annotations = completion.get("annotations")
        if not isinstance(annotations, dict):
            raise DataError(index, f"{where}.annotations", "missing")
        ratings = []
        for aspect in aspects:
            rating = annotations.get(aspect)
            rating = rating.get("Rating") if isinstance(rating, dict) else rating
            try:
                ratings.append(float(rating))
            except (TypeError, ValueError):
                ratings = None  # unrated on this aspect (missing / "N/A"): left out of the comparison
                break
        if ratings is not None:
            scored.append((sum(ratings) / len(ratings), response.strip(), completion.get("model"), c))
    return scored


@FORMATS.register("vlfeedback")
def vlfeedback(row: dict, index: Any = None, aspects: Iterable[str] = VLFEEDBACK_ASPECTS, ranked: bool = False) -> dict:
    """VLFeedback (MMInstruction/VLFeedback; Li et al., "Silkie", arXiv:2312.10665).

    Source fields: ``id``, ``prompt``, ``models``, ``completions`` (each ``{"annotations": {aspect:
    {"Rating": "4", "Rationale": …}}, "model", "response"}``) and ``image`` / ``image_path``.
    A completion's score is its average rating over ``aspects`` (default: all three, as Silkie);
    completions not rated on every aspect are left out. Pair: chosen = the highest average,
    rejected = the lowest (first in order among equals); all scores equal → `SkipExample`.
    ``ranked=True`` returns ``responses`` + ``scores`` (source order) instead of a pair.
    """
    aspects = tuple(aspects)
    if not aspects:
        raise ValueError("vlfeedback: at least one rating aspect is needed")
    prompt_text = _text(row, "prompt", index)
    image, _ = _image(row, index)
    scored = _vlfeedback_scored(row, index, aspects)
    if len(scored) < 2:
        raise SkipExample("fewer than 2 rated completions")
    if len({s for s, *_ in scored}) == 1:
        raise SkipExample("tie: all completions have the same average rating")
    prompt = _user_prompt(prompt_text, 1, index, "prompt")
    meta = {"source": "vlfeedback", "id": row.get("id"), "aspects": list(aspects)}
    if ranked:
        meta["models"] = [m for _, _, m, _ in scored]
        return {
            "prompt": prompt,
            "responses": [_assistant(r) for _, r, _, _ in scored],
            "scores": [s for s, *_ in scored],
            "images": [image],
            "meta": meta,
        }
    best = max(scored, key=lambda s: s[0])  # max/min keep the first of equals
    worst = min(scored, key=lambda s: s[0])
    meta.update(chosen_model=best[2], rejected_model=worst[2], chosen_score=best[0], rejected_score=worst[0])
    fields = (f"completions[{best[3]}].response", f"completions[{worst[3]}].response")
    return _pair(prompt, {"images": [image]}, best[1], worst[1], index, meta, fields)


FORMATS.register("vlfeedback_ranked", partial(vlfeedback, ranked=True))


@FORMATS.register("povid")
def povid(row: dict, index: Any = None) -> dict:
    """POVID preference data (YiyangZhou/POVID_preference_data_for_VLLMs; Zhou et al., "Aligning
    Modalities in Vision Large Language Models via Preference Fine-tuning", arXiv:2402.11411).

    Source fields: ``id``, ``image`` (a COCO file name, resolved against ``media_root``),
    ``conversations`` (``{"from": "human"|"gpt", "value"}`` turns) and ``rejected``. The last gpt
    turn is chosen; earlier turns form the prompt, with ``<image>`` turned into a placeholder where
    it stands (at the start of the first human turn if absent).
    """
    turns = _field(row, "conversations", index)
    if not isinstance(turns, list) or not turns:
        raise DataError(index, "conversations", "expected a non-empty list of turns")
    rejected = _text(row, "rejected", index)
    image, _ = _image(row, index, ("image",))
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or not isinstance(turn.get("value"), str):
            raise DataError(index, f"conversations[{t}]", "each turn needs 'from' (human/gpt) and a string 'value'")
    if turns[-1]["from"] != "gpt" or len(turns) < 2:
        raise DataError(index, "conversations", "expected human turn(s) followed by a final gpt turn (the chosen)")
    chosen = turns[-1]["value"].strip()
    if not chosen:
        raise DataError(index, f"conversations[{len(turns) - 1}].value", "empty")
    n_tokens = sum(t["value"].count(IMAGE_TOKEN) for t in turns[:-1])
    if n_tokens > 1:
        raise DataError(index, "conversations", f"{n_tokens} '{IMAGE_TOKEN}' tokens but one image")
    prompt = []
    for t, turn in enumerate(turns[:-1]):
        field = f"conversations[{t}].value"
        if turn["from"] == "human":
            n = 1 if IMAGE_TOKEN in turn["value"] or (n_tokens == 0 and t == 0) else 0
            if n == 0 and not turn["value"].strip():
                raise DataError(index, field, "empty")
            prompt += _user_prompt(turn["value"], n, index, field)
        else:
            if IMAGE_TOKEN in turn["value"]:
                raise DataError(index, field, f"'{IMAGE_TOKEN}' in an assistant turn")
            prompt.append({"role": "assistant", "content": [{"type": "text", "text": turn["value"].strip()}]})
    if prompt[0]["role"] != "user":
        raise DataError(index, "conversations[0].from", "the conversation must start with a human turn")
    meta = {"source": "povid", "id": row.get("id"), "image": row.get("image") if isinstance(row.get("image"), str) else None}
    return _pair(prompt, {"images": [image]}, chosen, rejected, index, meta, ("conversations", "rejected"))


# ---------------------------------------------------------------------------------------------
# Align-Anything (PKU-Alignment/align-anything; Ji et al., "Align Anything", arXiv:2412.15838).
#
# Field names as align-anything's own loaders read them: align_anything/configs/format_dataset.py in
# github.com/PKU-Alignment/align-anything (commit 3f9decc, 2025-11-27), templates ``AA_TI2T``, ``AA_TA2T``,
# ``AA_TI2T_LLF`` and ``AA_TA2T_LLF``; the LLF ``critique`` field from projects/lang_feedback/refine_gen.py
# there (which reads ``prompt``, ``image``, ``critique`` of each record).
# ---------------------------------------------------------------------------------------------

_AA_RESPONSES = ("response_1", "response_2", "overall_response")


def _aa_preference(row: dict, index: Any, *, text_keys: tuple[str, ...], media_keys: tuple[str, ...], kind: str,
                   source: str) -> dict:
    """An align-anything preference record (two responses, ``overall_response`` 1 or 2 naming the preferred
    one) with one ``kind`` medium as a pair: chosen = the preferred response. The question comes from the first
    of ``text_keys`` that is filled, the medium from the first of ``media_keys``; every other scalar field is
    kept in ``meta``."""
    text_key = _first_present(row, text_keys)
    question = _text(row, text_key, index)
    responses = {1: _text(row, "response_1", index), 2: _text(row, "response_2", index)}
    preferred = _field(row, "overall_response", index)
    try:
        preferred = int(preferred)
    except (TypeError, ValueError):
        preferred = None
    if preferred not in (1, 2):
        raise DataError(index, "overall_response", f"expected 1 or 2, got {row.get('overall_response')!r}")
    item, _ = _media(row, index, media_keys, kind)
    other = 3 - preferred
    meta = {**_scalar_fields(row, (*text_keys, *media_keys, *_AA_RESPONSES)), "source": source,
            "overall_response": preferred}
    fields = (f"response_{preferred}", f"response_{other}")
    return _pair(_user_prompt(question, 1, index, text_key, kind), {MEDIA_COLUMNS[kind]: [item]},
                 responses[preferred], responses[other], index, meta, fields)


@FORMATS.register("aa_ti2t")
def aa_ti2t(row: dict, index: Any = None) -> dict:
    """Align-Anything text-image-to-text (hub subset ``text-image-to-text``; template ``AA_TI2T``).

    Source fields: ``question``, ``image`` (HF Image; else ``image_path``), ``response_1``, ``response_2`` and
    ``overall_response`` (1 or 2: the preferred one, which becomes chosen). Every other scalar field
    (``p_response``, ``prompt_following_rate_1``, ``objective_rules_rate_2`` …) is kept in ``meta``.
    """
    return _aa_preference(row, index, text_keys=("question",), media_keys=("image", "image_path"), kind="image",
                          source="align_anything_ti2t")


@FORMATS.register("aa_ta2t")
def aa_ta2t(row: dict, index: Any = None) -> dict:
    """Align-Anything text-audio-to-text (hub subset ``text-audio-to-text``; template ``AA_TA2T``).

    Source fields as ``AA_TA2T`` reads them: ``prompt`` (the question; ``question`` is read when ``prompt``
    is absent), ``audio_path`` (an HF ``Audio`` column — ``AA_TA2T`` takes its ``array`` and
    ``sampling_rate``; ``audio`` is read when ``audio_path`` is absent), ``response_1``, ``response_2`` and
    ``overall_response`` (1 or 2). The audio goes to ``audios`` (bytes/path dict, decoded array + rate, or a
    path) behind one ``{"type": "audio"}`` placeholder; other scalar fields are kept in ``meta``.
    """
    return _aa_preference(row, index, text_keys=("prompt", "question"), media_keys=("audio_path", "audio"),
                          kind="audio", source="align_anything_ta2t")


_LLF_IMAGE = ("image", "image_path")
_LLF_AUDIO = ("audio", "audio_path")
_LLF_TEXT = ("prompt", "response", "critique", "refinement")


def _aa_llf_prompt(row: dict, index: Any) -> tuple[list[dict], dict[str, list]]:
    """An LLF record's user prompt (``prompt``, with the placeholder of its image or audio, if any) and its
    media columns (``{}`` for a text-only record)."""
    text = _text(row, "prompt", index)
    image, image_key = _media(row, index, _LLF_IMAGE, "image", required=False)
    audio, audio_key = _media(row, index, _LLF_AUDIO, "audio", required=False)
    if image is not None and audio is not None:
        raise DataError(index, audio_key, f"both an image ('{image_key}') and an audio: an LLF record holds one or "
                                          "the other")
    for kind, item in (("image", image), ("audio", audio)):
        if item is not None:
            return _user_prompt(text, 1, index, "prompt", kind), {MEDIA_COLUMNS[kind]: [item]}
    return _user_prompt(text, 0, index, "prompt"), {}


@FORMATS.register("aa_llf")
def aa_llf(row: dict, index: Any = None) -> dict:
    """Align-Anything learning-from-language-feedback data (templates ``AA_TI2T_LLF`` / ``AA_TA2T_LLF``) as
    a preference pair: chosen = ``refinement``, rejected = ``response``, as align-anything's DPO on LLF
    data pairs them.

    Source fields: ``prompt``, ``response``, ``critique``, ``refinement``, and an ``image`` (``AA_TI2T_LLF``:
    the image's bytes; HF Image dicts, PIL images and paths are read too; else ``image_path``) or an
    ``audio`` (``AA_TA2T_LLF``: a path; else ``audio_path``) or neither (text only). The critique is kept in
    ``meta["critique"]`` with the other scalar fields. A refinement identical to the response is a
    `SkipExample`.
    """
    prompt, media = _aa_llf_prompt(row, index)
    response, critique_text, refinement = (_text(row, f, index) for f in ("response", "critique", "refinement"))
    if refinement == response:
        raise SkipExample("refinement identical to the response")
    meta = {**_scalar_fields(row, (*_LLF_TEXT, *_LLF_IMAGE, *_LLF_AUDIO)), "source": "align_anything_llf",
            "critique": critique_text}
    return _pair(prompt, media, refinement, response, index, meta, ("refinement", "response"))


@FORMATS.register("aa_llf_critic")
def aa_llf_critic(row: dict, index: Any = None) -> dict:
    """The same LLF record as one critic SFT row: the critic's question (`zoo.data.critique.critic_row`)
    about ``response`` to the record's prompt and media; completion = ``critique``. ``refinement`` is not
    needed; scalar fields other than the texts are kept in ``meta``."""
    prompt, media = _aa_llf_prompt(row, index)
    response, critique_text = _text(row, "response", index), _text(row, "critique", index)
    made = critic_row({"prompt": prompt, **media}, response, index)
    meta = {**_scalar_fields(row, (*_LLF_TEXT, *_LLF_IMAGE, *_LLF_AUDIO)), "source": "align_anything_llf_critic"}
    return {**made, "completion": critique_text, "meta": meta}


def _resolve_media(row: dict, media_root: str | Path, index: Any) -> None:
    """Make relative media paths (images, audios, videos) absolute under ``media_root``; a missing file is a
    DataError."""
    root = Path(media_root)
    for kind, column in MEDIA_COLUMNS.items():
        if not row.get(column):
            continue
        items = []
        for i, item in enumerate(row[column]):
            path = item if isinstance(item, str) else None
            if isinstance(item, dict) and item.get("bytes") is None and isinstance(item.get("path"), str):
                path = item["path"]
            if path is not None:
                p = Path(path)
                p = p if p.is_absolute() else root / p
                if not p.exists():
                    raise DataError(index, f"{column}[{i}]", f"{kind} file not found: {p}")
                item = str(p)
            items.append(item)
        row[column] = items


def convert(
    rows: Iterable[dict],
    fmt: str | Callable[..., dict],
    media_root: str | Path | None = None,
    report: Counter | None = None,
    **options,
) -> list[dict]:
    """Convert source records with the adapter ``fmt`` (a `FORMATS` name or a function).

    ``options`` go to the adapter (e.g. ``aspects=…``, ``ranked=True`` for ``vlfeedback``). With
    ``media_root`` relative image paths become absolute and must exist. Every output passes
    `validate_row`; bad input raises `DataError` (example index = position in ``rows``). Records the
    adapter skips (`SkipExample`, e.g. rating ties) are counted by reason into ``report`` and logged. An
    adapter returns one row, or a list of the rows one record makes (``pairwise_judge``: both orders).
    """
    adapter = FORMATS.get(fmt) if isinstance(fmt, str) else fmt
    name = fmt if isinstance(fmt, str) else getattr(fmt, "__name__", "adapter")
    skipped = Counter() if report is None else report
    out = []
    for i, row in enumerate(rows):
        try:
            made = adapter(row, i, **options)
        except SkipExample as e:
            skipped[e.reason] += 1
            continue
        for new in made if isinstance(made, list) else [made]:  # an adapter may make several rows of one
            if media_root is not None:
                _resolve_media(new, media_root, i)
            fields = ("chosen", "rejected") if "chosen" in new else ()
            validate_row(new, i, fields)
            out.append(new)
    n_skipped = sum(skipped.values())
    if n_skipped:
        reasons = "; ".join(f"{n}× {r}" for r, n in skipped.most_common())
        logger.warning("%s: converted %d example(s), skipped %d: %s", name, len(out), n_skipped, reasons)
    return out


_HUB_SUBSETS = {"aa_ti2t": "text-image-to-text", "aa_ta2t": "text-audio-to-text"}


def _undecoded(ds):
    """Image and audio columns as ``{"bytes", "path"}`` dicts rather than decoded PIL images / audio decoders."""
    import datasets

    for column, feature in ds.features.items():
        for kind in (datasets.Image, datasets.Audio):
            if isinstance(feature, kind) and feature.decode:
                ds = ds.cast_column(column, kind(decode=False))
    return ds


def _load_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":  # line by line: a bad line is a DataError naming it, not an Arrow error
        return _read_jsonl(path, False, Counter())
    import datasets

    if suffix == ".json":
        return _undecoded(datasets.Dataset.from_json(str(path), keep_in_memory=True)).to_list()
    if suffix == ".parquet":
        return _undecoded(datasets.Dataset.from_parquet(str(path), keep_in_memory=True)).to_list()
    raise ValueError(f"unsupported file type '{suffix}' for {path} (expected .json, .jsonl or .parquet)")


def load_format(
    path_or_repo: str | Path,
    fmt: str,
    split: str = "train",
    media_root: str | Path | None = None,
    subset: str | None = None,
    report: Counter | None = None,
    **options,
) -> list[dict]:
    """Load a public preference dataset and convert it with ``fmt``.

    A local ``.json``/``.jsonl``/``.parquet`` file, a folder holding ``{split}.json`` (or whatever
    `read_rows` reads), or a hub repo id loaded with ``datasets.load_dataset`` (``subset`` names the
    configuration; ``aa_ti2t`` defaults to ``text-image-to-text``, ``aa_ta2t`` to ``text-audio-to-text``).
    With ``media_root``, relative media paths are resolved and checked now; without, they stay relative (for
    the encoder's root).
    """
    path = Path(path_or_repo)
    if path.is_file():
        rows = _load_file(path)
    elif path.is_dir():
        candidates = [path / f"{split}{ext}" for ext in (".json", ".jsonl", ".parquet")]
        found = next((c for c in candidates if c.exists()), None)
        rows = _load_file(found) if found else read_rows(path, split)
    else:
        rows = _load_hub_split(str(path_or_repo), split, subset or _HUB_SUBSETS.get(fmt))
    return convert(rows, fmt, media_root=media_root, report=report, **options)


# The pairwise judge's training rows (zoo/data/judging.py: the template the prompted judge asks with): a
# preference row becomes two SFT rows, both orders; ``_all`` keeps the held-out images, ``_heldout`` only them.
from zoo.data.judging import pairwise_judge

FORMATS.register("pairwise_judge", pairwise_judge)
FORMATS.register("pairwise_judge_all", partial(pairwise_judge, part="all"))
FORMATS.register("pairwise_judge_heldout", partial(pairwise_judge, part="heldout"))

# The critic's training rows (zoo/data/critique.py: the question the critics ask with): a row with a response and
# its critique becomes one SFT row whose completion is the critique; ``_all`` / ``_heldout`` as above.
from zoo.data.critique import critique, refine

FORMATS.register("critique", critique)
FORMATS.register("critique_all", partial(critique, part="all"))
FORMATS.register("critique_heldout", partial(critique, part="heldout"))
FORMATS.register("refine", refine)
FORMATS.register("refine_all", partial(refine, part="all"))
