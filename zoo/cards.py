"""Model cards and the Hub's results metadata: the card ``model-index`` and ``.eval_results/*.yaml``.

`render_card` writes the README.md of a pushed run: ``model_cards/<template>.md.j2`` rendered with
huggingface_hub's `ModelCard.from_template`, its YAML header holding `ModelCardData` with the results'
``model-index``. Two Hub formats come from one results dict (see `zoo.results`):

* ``model-index`` in the card's YAML header (`EvalResult` / `ModelCardData`): one result group per
  task (the task name is the dataset *config*, so the groups stay apart), one metric per rate with a
  direction (nested keys joined with ``/``); an evaluation run with a limit is marked partial in the
  dataset's name and args.
* ``.eval_results/<suite>.yaml`` (`EvalResultEntry`): one entry per task metric; the entry's
  ``task_id`` is ``<task>/<metric>``.

The card's lineage comes from the run's ``recipe.yaml`` (`recipe_lineage`: from scratch, or the
``model.path`` it started from — a hub repo at a revision, or a local folder), its backbone row from the
saved model's ``config.json`` (`describe_backbone`), and ``base_model`` / ``license`` / ``datasets``
from the push's arguments, else the recipe's ``card:`` section, else what the recipe says.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, EvalResultEntry, ModelCardData, eval_result_entries_to_yaml

from zoo.results import atomic_write, compare_markdown, flatten_metrics, is_number, load_results, metric_info

TASK_TYPE = "image-text-to-text"


def is_hub_rate(metric: str) -> bool:
    """Whether ``metric`` goes to the Hub's metadata: a rate (declared kind ``rate``) with a direction."""
    info = metric_info(metric)
    return info is not None and info.kind == "rate" and info.better is not None


def numeric_metrics(results: dict) -> list[tuple[str, str, float | int]]:
    """``(task, metric, value)`` for every numeric rate with a direction, in file order. Counts (``n``,
    ``n_mentions``, ``unparseable``), scores on other scales (MMHal's 0–6 ``score``), undirected rates
    (``yes_ratio``) and not-applicable (None) metrics stay in the results file but out of ``model-index``
    and ``.eval_results``."""
    return [
        (task, metric, value)
        for task, metrics in results["results"].items()
        for metric, value in flatten_metrics(metrics).items()
        if is_number(value) and is_hub_rate(metric)
    ]


def partial_note(results: dict) -> str | None:
    """``"partial: N items per task"`` when the evaluation ran with a limit (``zoo eval --limit N``: the
    results' ``config.limit``), else None."""
    limit = (results.get("config") or {}).get("limit")
    return f"partial: {limit} items per task" if limit is not None else None


def _dataset_args(results: dict) -> dict[str, Any] | None:
    config = results.get("config") or {}
    args: dict[str, Any] = {k: config[k] for k in ("limit", "seed") if config.get(k) is not None}
    if partial_note(results):
        args["partial"] = True
    return args or None


def to_model_index(
    results: dict,
    model_name: str | None = None,
    dataset_name: str = "shapes-world",
    dataset_type: str = "zoo/shapes",
    dataset_split: str | None = None,
) -> list[EvalResult]:
    """One `EvalResult` per numeric task metric (task type ``image-text-to-text``).

    ``model_name`` is only checked here (it names the ``model-index`` entry in `card_data`).
    """
    del model_name  # the EvalResults themselves carry no model name
    note = partial_note(results)
    if note:  # a limited run is not the benchmark: its name says so, so the Hub never shows it as the full one
        dataset_name = f"{dataset_name} ({note})"
    return [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=task,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_config=task,
            dataset_split=dataset_split,
            dataset_args=_dataset_args(results),
            metric_type=metric,
            metric_name=f"{task} {metric}",
            metric_value=value,
        )
        for task, metric, value in numeric_metrics(results)
    ]


def card_data(
    results: dict,
    base_model: str | list[str] | None = None,
    model_name: str | None = None,
    dataset_name: str = "shapes-world",
    dataset_type: str = "zoo/shapes",
    tags: list[str] | None = None,
    **kwargs: Any,
) -> ModelCardData:
    """`ModelCardData` whose ``to_dict()`` holds a ``model-index`` with the results' metrics.

    ``model_name`` defaults to the results' ``model`` (a hub id, a zoo name or a local path, as recorded);
    further keyword arguments (license, datasets, …) go to `ModelCardData`.
    """
    name = model_name or str(results["model"])
    return ModelCardData(
        base_model=base_model,
        model_name=name,
        eval_results=to_model_index(results, name, dataset_name=dataset_name, dataset_type=dataset_type) or None,
        pipeline_tag=kwargs.pop("pipeline_tag", TASK_TYPE),
        tags=tags if tags is not None else ["zoo", f"suite:{results['suite']}"],
        **kwargs,
    )


def to_eval_result_entries(results: dict, dataset_id: str = "zoo/shapes", notes: str | None = None) -> list[EvalResultEntry]:
    """One `EvalResultEntry` per numeric task metric: ``task_id`` ``<task>/<metric>``, ``date`` the run's."""
    config = results.get("config") or {}
    if notes is None:
        notes = f"zoo suite '{results['suite']}', limit {config.get('limit')}, seed {config.get('seed')}"
        if partial_note(results):
            notes += f" ({partial_note(results)})"
    return [
        EvalResultEntry(dataset_id=dataset_id, task_id=f"{task}/{metric}", value=value, date=results.get("created"),
                        notes=notes)
        for task, metric, value in numeric_metrics(results)
    ]


def write_eval_results(results: dict, folder: str | Path, **kwargs: Any) -> Path:
    """Write ``<folder>/.eval_results/<suite>.yaml`` (the Hub's eval-results format); returns its path."""
    path = Path(folder) / ".eval_results" / f"{results['suite']}.yaml"
    entries = eval_result_entries_to_yaml(to_eval_result_entries(results, **kwargs))
    atomic_write(path, yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    return path


# ---- the model card of a pushed run ----------------------------------------------------------

LIMITATIONS = (
    "Trained and evaluated on the synthetic shapes world only (procedurally generated 48-px images, "
    "template captions): it shows what the recipe does, not how a real assistant behaves. Read every "
    "figure beside its control (SFT on the chosen responses, same data, steps and lr) and its 95 % "
    "interval; the zoo README's alignment table has them over 3 seeds. Not for any real-world use."
)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        if k.startswith("_") and k != "_target_":
            continue
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _hparams(recipe: dict) -> list[tuple[str, Any]]:
    module, trainer, data = recipe.get("module", {}), recipe.get("trainer", {}), recipe.get("data", {})
    rows = [("module", module.get("_target_", "").rsplit(".", 1)[-1])]
    for key in ("objective", "sft_weight", "reference", "hparams", "warmup_steps", "gamma"):
        if key in module:
            value = module[key]
            rows += list(_flat(value, key).items()) if isinstance(value, dict) else [(key, value)]
    optimizer = module.get("optimizer", {})
    rows += [(f"optimizer.{k}", v) for k, v in optimizer.items() if k not in ("_target_", "_partial_")]
    rows += [("optimizer", optimizer.get("_target_", "").rsplit(".", 1)[-1])]
    rows += [("max_steps", trainer.get("max_steps")), ("batch_size", data.get("batch_size")),
             ("precision", trainer.get("precision")), ("seed", recipe.get("seed"))]
    rows += [(f"bdhs.{k}", v) for k, v in (recipe.get("bdhs") or module.get("bdhs") or {}).items()]
    return [(k, v) for k, v in rows if v not in (None, "")]


def _data_text(recipe: dict) -> str:
    data = recipe.get("data", {})
    split = data.get("train_split", "train")
    text = f"`{data.get('path')}`, split `{split}`"
    if data.get("world"):
        text += f" — the synthetic `{data['world']}` world, config {json.dumps(data.get('world_config', {}))}"
    name = recipe.get("recipe_name")
    if name == "dpo":
        text += (". Pairs: `chosen` is the true caption, `rejected` the same caption with one injected "
                 "hallucination (the bias prior's object 50 %, a wrong colour 25 %, an extra object 25 %).")
    elif name in ("bdhs", "online_bdhs"):
        when = "once, by the base model, before training" if name == "bdhs" else "every step, by the current policy"
        text += (f". Pairs: `chosen` is the true caption; `rejected` was written {when} with the image hidden "
                 "(BDHS: latent masking, reference-guided sentence completion, similarity filter) — no annotation.")
    return text


def _results_table(results: dict, controls: list[dict] = ()) -> str:
    """The card's results: this model beside its controls (first column the reference), each cell with its
    bootstrap 95 % interval when the results have one; ≈ marks an interval overlapping the reference's."""
    columns = [*controls, results]
    table = compare_markdown(columns)
    note = ("\n↓ / ↑: lower / higher is better; [low, high]: bootstrap 95 % interval over items"
            + (f"; ≈: overlaps the first column's ({columns[0]['model']}), so that difference is not shown."
               if controls else "."))
    sizes = {str(c.get("model")): partial_note(c) or "all items" for c in columns}
    if len(set(sizes.values())) > 1:  # columns evaluated on different numbers of items are not alike
        note += " Items per column: " + "; ".join(f"{m}: {s}" for m, s in sizes.items()) + "."
    return table + note


def _controls(run_dir: Path) -> list[dict]:
    """Results files of the run's control rows (``controls/*.json``), in name order."""
    return [load_results(p) for p in sorted((run_dir / "controls").glob("*.json"))] if (run_dir / "controls").is_dir() else []


# ---- lineage, backbone and metadata of a pushed run ---------------------------------------------

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # 'org/name'
_HF_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<rev>[0-9a-f]{40})/?$")


@dataclass(frozen=True)
class Lineage:
    """Where a run's weights started, as its ``recipe.yaml`` records it (`recipe_lineage`)."""

    kind: str  # "scratch", "hub" (a repo of the local hub or the HF Hub), "folder" (in no hub), "unrecorded"
    repo: str | None = None  # 'org/name' when kind is "hub"
    revision: str | None = None  # the hub revision; for a folder, the revision id its files would get
    where: str | None = None  # "local hub" or "HF Hub"
    path: str | None = None  # ``model.path`` as recorded
    builder: str | None = None  # kind "scratch": what initialised the weights (the model config's target)

    def markdown(self) -> str:
        """The card's "base model" cell."""
        if self.kind == "scratch":
            return f"none: trained from scratch (weights initialised by `{self.builder}`)"
        if self.kind == "hub":
            name = f"[`{self.repo}`](https://huggingface.co/{self.repo})" if self.where == "HF Hub" else f"`{self.repo}`"
            at = f" at revision `{self.revision}`" if self.revision else " (revision not recorded)"
            return f"{name}{at}, {self.where}"
        if self.kind == "folder":
            rev = f" (its files' revision id `{self.revision}`)" if self.revision else ""
            return f"the local folder `{self.path}`{rev}, in no hub"
        return "not recorded (recipe.yaml has no model section)"

    def short(self) -> str:
        """One token for listings: ``scratch``, ``org/name@rev``, the folder, or ``?``."""
        if self.kind == "scratch":
            return "scratch"
        if self.kind == "hub":
            return f"{self.repo}@{self.revision[:12]}" if self.revision else str(self.repo)
        return str(self.path) if self.kind == "folder" else "?"


def recipe_lineage(recipe: dict, locate: Callable[[str], Lineage | None] | None = None) -> Lineage:
    """The lineage ``recipe`` (a run's resolved ``recipe.yaml``) records: a model config without ``path``
    builds its weights from scratch; a ``path`` names the base — ``locate(path)`` (the local hub's
    knowledge: `zoo.hub.locate_model`) first, then an HF cache snapshot folder, an ``org/name`` that is no
    local path (the HF Hub, ``model.revision`` when recorded), else a local folder."""
    model = recipe.get("model")
    if not isinstance(model, dict) or not model:
        return Lineage("unrecorded")
    path = model.get("path")
    if not path:
        return Lineage("scratch", builder=str(model.get("_target_") or "its model config"))
    path = str(path)
    found = locate(path) if locate is not None else None
    if found is not None:
        return found
    snapshot = _HF_SNAPSHOT.search(path.replace(os.sep, "/"))
    if snapshot:
        return Lineage("hub", f"{snapshot['org']}/{snapshot['name']}", snapshot["rev"], "HF Hub", path)
    if HUB_ID.match(path) and not Path(path).exists():
        revision = model.get("revision")
        return Lineage("hub", path, str(revision) if revision else None, "HF Hub", path)
    return Lineage("folder", path=path)


def _size(config: dict) -> list[str]:
    layers = next((config[k] for k in ("num_hidden_layers", "depth", "encoder_layers", "num_layers")
                   if isinstance(config.get(k), int)), None)
    width = next((config[k] for k in ("hidden_size", "d_model", "embed_dim") if isinstance(config.get(k), int)), None)
    return [s for s in (f"{layers} layer{'s' * (layers != 1)}" if layers else None, f"d={width}" if width else None) if s]


def _lm(text: dict) -> str:
    facts = _size(text) + ([f"vocab {text['vocab_size']}"] if isinstance(text.get("vocab_size"), int) else [])
    return f"LM `{text.get('model_type', '?')}`" + (f" ({', '.join(facts)})" if facts else "")


def _composed_encoder(name: str, spec: dict) -> str:
    encoder = spec.get("encoder") or {}
    kwargs = encoder.get("timm_kwargs") or {}
    facts = _size(kwargs)
    size, patch = encoder.get("image_size"), kwargs.get("patch_size")
    if isinstance(size, int) and isinstance(patch, int) and patch:
        facts.append(f"{size}-px input, {(size // patch) ** 2} tokens")
    text = f"{name} encoder `{encoder.get('model_name', '?')}`" + (f" ({', '.join(facts)})" if facts else "")
    return text + (f" → `{spec['projector']}` projector" if spec.get("projector") else "")


def _composite(config: dict) -> dict:
    """The part of a native config that holds the LM and its media encoders (Qwen2.5-Omni: its thinker)."""
    if "text_config" in config:
        return config
    for key, value in config.items():
        if key.endswith("_config") and isinstance(value, dict) and "text_config" in value:
            return value
    return config


def describe_backbone(config: dict) -> str:
    """What a saved model is, from its ``config.json``: its family, media encoders and language model
    (sizes included), e.g. ``composed (zoo_composed): image encoder `vit_tiny_patch16_224` (3 layers, d=96,
    48-px input, 4 tokens) → `mlp2x_gelu` projector + LM `llama` (4 layers, d=128, vocab 512)``."""
    family = str(config.get("model_type", "?"))
    if family == "zoo_composed":
        encoders = [_composed_encoder(n, spec) for n, spec in (config.get("modalities") or {}).items()]
        return f"composed ({family}): " + " + ".join([*encoders, _lm(config.get("text_config") or {})])
    part = _composite(config)
    encoders = [f"{key[: -len('_config')]} `{value.get('model_type', '?')}`"
                + (f" ({', '.join(_size(value))})" if _size(value) else "")
                for key, value in part.items()
                if key.endswith("_config") and key != "text_config" and isinstance(value, dict)]
    lm = _lm(part.get("text_config") or part)
    architecture = (config.get("architectures") or [None])[0]
    return f"{family}" + (f" ({architecture})" if architecture else "") + ": " + " + ".join([*encoders, lm])


def format_count(n: float) -> str:
    """A parameter count as people write it: 950, 12.3K, 1.5M, 7.1B."""
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def safetensors_parameters(folder: str | Path) -> int | None:
    """The number of parameters in a model folder's ``*.safetensors`` files, read from their headers only
    (no weights loaded); None when it has none."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for key, tensor in header.items():
            if key != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total


def _strings(value: Any, what: str) -> list[str] | None:
    """``value`` as a list of non-empty strings (one string is a list of one); None stays None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError(f"{what} must be a string or a list of strings, got {value!r}")
    return list(items) or None


def card_metadata(recipe: dict, lineage: Lineage, base_model: str | list[str] | None = None,
                  license: str | None = None, datasets: list[str] | None = None,
                  fallback_base_model: str | None = None) -> dict[str, Any]:
    """``base_model``, ``license`` and ``datasets`` of a pushed run's card: the push's arguments, else the
    recipe's ``card:`` section (recipes/train.yaml), else what the recipe says — the lineage's hub repo,
    the data's hub dataset id — else ``fallback_base_model`` (a zoo entry's); a field nobody sets is left out."""
    section = recipe.get("card") or {}
    if not isinstance(section, dict):
        raise ValueError(f"recipe.yaml card: must be a mapping of base_model, license, datasets; got {section!r}")
    unknown = sorted(set(section) - {"base_model", "license", "datasets"})
    if unknown:
        raise ValueError(f"recipe.yaml card.{unknown[0]} is not a card field; the fields are base_model, license, datasets")
    chosen = (_strings(base_model, "--base-model") or _strings(section.get("base_model"), "recipe.yaml card.base_model")
              or ([lineage.repo] if lineage.kind == "hub" else None) or _strings(fallback_base_model, "base model"))
    for name in chosen or ():
        if not HUB_ID.match(name):
            raise ValueError(f"base model {name!r} is not a hub repo id 'org/name'; pass --base-model ORG/NAME "
                             "(a local folder's lineage is in the card's text, not its metadata)")
    licenses = _strings(license, "--license") or _strings(section.get("license"), "recipe.yaml card.license")
    if licenses and len(licenses) > 1:
        raise ValueError(f"a card has one license, got {licenses}")
    data = (_strings(datasets, "--dataset") or _strings(section.get("datasets"), "recipe.yaml card.datasets")
            or recipe_datasets(recipe))
    meta = {"base_model": (chosen[0] if len(chosen) == 1 else chosen) if chosen else None,
            "license": licenses[0] if licenses else None, "datasets": data}
    return {k: v for k, v in meta.items() if v is not None}


def recipe_datasets(recipe: dict) -> list[str] | None:
    """The hub dataset a recipe trained on: ``data.path`` when it is an ``org/name`` id and no local path;
    None for a synthetic world (generated, on no hub) or a local folder."""
    data = recipe.get("data") or {}
    path = data.get("path")
    if data.get("world") or not isinstance(path, str) or not HUB_ID.match(path) or Path(path).exists():
        return None
    return [path]


def _lineage_cell(lineage: Lineage, base_model: Any) -> str:
    """The card's "base model" cell: the lineage, or the declared base beside what recipe.yaml records."""
    if base_model is None or (lineage.kind == "hub" and base_model == lineage.repo):
        return lineage.markdown()
    names = ", ".join(f"`{b}`" for b in ([base_model] if isinstance(base_model, str) else base_model))
    return f"{names} (declared at push; recipe.yaml records: {lineage.markdown()})"


def _read(path: Path, parse: Callable[[str], Any], default: Any) -> Any:
    return parse(path.read_text()) if path.is_file() else default


def render_card(run_dir: str | Path, repo_id: str, name: str | None = None, base_model: str | list[str] | None = None,
                license: str | None = None, datasets: list[str] | None = None, backbone: str | None = None,
                modalities: tuple[str, ...] | None = None, revision: str | None = None, template: str = "default",
                fallback_base_model: str | None = None,
                locate: Callable[[str], Lineage | None] | None = None) -> str:
    """The README.md of a run pushed as ``repo_id``: card data (``base_model``, ``license``, ``datasets``,
    tags, and a ``model-index`` of rates when the run has results — `card_metadata`), model (lineage from
    recipe.yaml, backbone from the model's config.json), recipe and hyper-parameters, data and how pairs
    were made, results (marked partial when evaluated with a limit), limitations and the `load` snippet.

    ``backbone`` and ``modalities`` are used when the model's config cannot tell; ``locate`` identifies a
    ``model.path`` in the local hub (`zoo.hub.locate_model`)."""
    from huggingface_hub import ModelCard

    from model_cards import TEMPLATES

    run_dir = Path(run_dir)
    recipe = _read(run_dir / "recipe.yaml", yaml.safe_load, None) or {}
    results = _read(run_dir / "results.json", json.loads, None)
    metrics = _read(run_dir / "metrics.json", json.loads, {})
    config = _read(run_dir / "model" / "config.json", json.loads, None)
    name = name or repo_id.split("/")[-1]
    recipe_name = str(recipe.get("recipe_name", "unknown"))
    lineage = recipe_lineage(recipe, locate)
    meta = card_metadata(recipe, lineage, base_model, license, datasets, fallback_base_model)
    tags = ["zoo", "multimodal", "image-text-to-text", recipe_name]
    reward = _reward_text(run_dir, recipe, metrics)
    if reward:
        tags.append("reward-model")
    common = dict(model_name=name, tags=tags, library_name="zoo", **meta)
    data = card_data(results, **common) if results else ModelCardData(pipeline_tag=TASK_TYPE, **common)
    parameters = metrics.get("parameters") or safetensors_parameters(run_dir / "model")
    if modalities is None:
        modalities = tuple((config or {}).get("modalities") or ()) or ("image",)
    card = ModelCard.from_template(
        data, template_path=str(TEMPLATES / f"{template}.md.j2"),
        name=name, load_name=repo_id, revision=revision, lineage=_lineage_cell(lineage, meta.get("base_model")),
        recipe_name=recipe_name, summary=f"`{recipe_name}` model of the zoo, pushed from `{run_dir}`.",
        backbone=describe_backbone(config) if config else backbone or "see config.json",
        modalities=", ".join(modalities),
        parameters=f"{format_count(parameters)} ({parameters:,})" if parameters else "see config.json",
        command=f"recipe={recipe_name}", hparams=_hparams(recipe), data=_data_text(recipe),
        suite=(results or {}).get("suite"), partial=partial_note(results) if results else None,
        results_table=_results_table(results, _controls(run_dir)) if results else None,
        limitations=LIMITATIONS, reward=reward,
    )
    return str(card)


def _reward_text(run_dir: Path, recipe: dict, metrics: dict) -> str | None:
    """What the card says of a reward model (a ``model/`` with ``reward.json``: `zoo.models.reward`), with its
    held-out pair accuracy from ``metrics.json``; None for any other model."""
    marker = _read(run_dir / "model" / "reward.json", json.loads, None)
    if marker is None:
        return None
    text = (f"A reward model: {marker.get('reads', 'the last hidden state')} feeds a scalar head "
            f"(`{marker.get('head', 'reward_head.safetensors')}`), trained with the Bradley–Terry loss "
            "−log σ(r_chosen − r_rejected).")
    accuracy = metrics.get("val/rewards/accuracy")
    if is_number(accuracy):
        holdout = (recipe.get("data") or {}).get("holdout")
        held = (f"the {holdout:.0%} of the pairs held out by image" if is_number(holdout) and holdout
                else "held-out pairs")
        text += f" Reward accuracy (chosen scored above rejected) on {held}: **{accuracy:.3f}**."
    return text
