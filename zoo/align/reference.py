"""The reference model of preference objectives, as one swappable part.

Contract
--------
Every strategy in ``REFERENCES`` is a `Reference` (an ``nn.Module``, so a copy it holds moves with the
training module and lands in its checkpoints)::

    ref.attach(policy)                         # once, when the training module is built (initial weights)
    ref.prepare(policy, data, resuming)        # at the start of fit (the cached strategy computes here)
    ref.group_logps(policy, batch, media) -> Tensor [B, K] | None
    ref.logps(policy, batch, media) -> Tensor [B]

the **summed** response log-probs (``labels != -100``, as `Policy.sequence_logps`) of each response of a
group batch (`zoo.data.batches`) or each row of a model-input batch under the reference model, computed
without gradient, on the batch's device. ``media`` is what ``policy.encode_media`` returned; a strategy
reuses it only when that is exact.

Strategies
----------
``none`` — `NoReference`: no reference model (reference-free objectives: SimPO, SFT, PRO); returns None.
``frozen`` — `FrozenReference`: a deep copy of ``policy.model`` taken at `attach` (eval mode,
    ``requires_grad=False``), so later training never moves it. Costs one extra model in memory.
    When every parameter that `encode_media` uses (``encoders`` and ``projectors``) is frozen in the
    policy, the policy's media features are bit-identical to the copy's and are reused (saves one
    media encoding per step; it assumes the media modules have no active dropout in train mode);
    otherwise the copy encodes the media itself. ``reuse_media=False`` forces re-encoding.
``lora_disabled`` — `LoRAReference`: the policy's own model with its LoRA adapters switched off
    (``with peft_model.disable_adapter():``). No extra memory. `apply_lora` wraps the language model
    of a composed policy. The reference is "the current weights minus the adapters": it equals the
    initial model only when everything outside the adapters stays frozen (what `apply_lora` sets up
    for the language model; keep encoders/projectors frozen too if that matters to you). The policy's
    media are always reused: the adapters live in the language model only.
``cached`` — `CachedReference`: log-probs computed once, in a pass before training (`prepare`),
    stored as ``ref_logps-{dataset_fingerprint}-{model_hash}.safetensors`` beside the dataset (or in
    ``cache_dir``) and looked up by ``example_index`` at train time (no model in memory at all).
    `dataset_fingerprint` hashes the canonical JSON of the rows *and the bytes of every referenced
    media file* (an edited image gives a new key); `model_hash` hashes the state_dict (names, dtypes,
    shapes, bytes) and the config JSON, taken at `attach` (before a checkpoint can overwrite the
    weights). A different key is a different file, so any change recomputes. Only safetensors are read
    (nothing is unpickled); writes go to a temp file then ``os.replace``. A file holds *fields*: ``[N]``
    tables (``completion`` …) or the ``[N, K]`` table ``responses`` of group data.

All of them agree with ``policy.sequence_logps(batch).logps`` on an untrained policy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from zoo.align.objectives.base import stack_tokens
from zoo.data.batches import Batch, Encoded, GroupBatch
from zoo.data.collate import pad_batch
from zoo.data.schema import MEDIA_COLUMNS
from zoo.models.adapters import find_peft_model
from zoo.models.families import media_module_names
from zoo.models.policy import Media, Policy, eval_mode
from zoo.registry import Registry

REFERENCES: Registry[type[Reference]] = Registry("reference")


class Reference(nn.Module, ABC):
    """A reference model: summed response log-probs without gradient (see the module docstring)."""

    provides_logps = True  # False: no reference at all (objectives that train without one)
    precomputed = False  # True: log-probs of the data's own responses, computed before training

    def attach(self, policy: Policy) -> Reference:
        """Bind to the policy's initial weights (called once, before any checkpoint is restored)."""
        return self

    def prepare(self, policy: Policy, data: Any = None, resuming: bool = False) -> None:
        """Work before training (the cached strategy's pass over the data); a no-op for the others."""

    @abstractmethod
    def logps(self, policy: Policy, batch: Batch, media: Media | None = None) -> torch.Tensor | None: ...

    @abstractmethod
    def group_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor | None:
        """Summed log-probs ``[B, K]`` of every response of a group batch."""

    def pair_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None):
        """``(chosen [B], rejected [B])`` of a pair batch."""
        out = self.group_logps(policy, batch, media)
        return None if out is None else (out[:, 0], out[:, 1])

    def group_token_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor | None:
        """Per-token log-probs ``[B, K, T]`` of every response (policy-gradient objectives' KL); summed over T
        they are `group_logps`."""
        raise ValueError(f"the {type(self).__name__} reference has no per-token log-probs: policy-gradient "
                         "objectives (grpo, rloo …) need reference=frozen or lora_disabled (or none with beta=0)")

    def on_step(self, policy: Policy, step: int) -> None:
        """After each optimizer step (``step``: the global step, already counted); TR-DPO's refresh."""


def _media_parts(model: nn.Module) -> list[nn.Module | nn.Parameter]:
    """What turns media into language-model inputs (the composed model's and every family's media modules)."""
    owners = [model, getattr(model, "model", None)]  # HF-native models keep them on the inner model
    parts = (getattr(o, name, None) for o in owners if o is not None for name in media_module_names())
    return [p for p in parts if isinstance(p, (nn.Module, nn.Parameter))]


def media_frozen(model: nn.Module) -> bool:
    """True when the model encodes media with parts whose parameters are all frozen."""
    parts = _media_parts(model)
    params = [p for part in parts for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]
    return bool(parts) and not any(p.requires_grad for p in params)


@torch.no_grad()
def _eval_logps(policy: Policy, batch: Batch, media: Media | None) -> torch.Tensor:
    with eval_mode(policy):
        return policy.sequence_logps(batch, media=media).logps.detach()


@torch.no_grad()
def _eval_group_logps(policy: Policy, batch: GroupBatch, media: Media | None) -> torch.Tensor:
    with eval_mode(policy):
        return torch.stack([s.logps.detach() for s in policy.group_logps(batch, media=media)], 1)


@torch.no_grad()
def _eval_group_token_logps(policy: Policy, batch: GroupBatch, media: Media | None) -> torch.Tensor:
    with eval_mode(policy):
        return stack_tokens([s.token_logps.detach() for s in policy.group_logps(batch, media=media)])


@REFERENCES.register("none")
class NoReference(Reference):
    """No reference model: for objectives that train without one."""

    provides_logps = False

    def logps(self, policy, batch, media=None):
        return None

    def group_logps(self, policy, batch, media=None):
        return None

    def group_token_logps(self, policy, batch, media=None):
        return None


@REFERENCES.register("frozen")
class FrozenReference(Reference):
    """A frozen deep copy of the policy's model, taken at `attach` (or construction, given the policy).

    ``refresh_every`` τ > 0 moves it towards the policy every τ optimizer steps (TR-DPO: Gorbatovski et al.,
    "Learn Your Reference Model for Real Good Alignment", arXiv:2404.09656): θ_ref ← α θ + (1 − α) θ_ref with
    α = ``refresh_alpha`` — α = 1 the hard update (a copy), α < 1 the soft one. 0 (the default) never moves it.
    """

    def __init__(self, policy: Policy | None = None, reuse_media: bool | None = None, refresh_every: int = 0,
                 refresh_alpha: float = 1.0):
        super().__init__()
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 0:
            raise ValueError(f"frozen reference: refresh_every must be an integer >= 0 (0: never), not {refresh_every!r}")
        if isinstance(refresh_alpha, bool) or not isinstance(refresh_alpha, (int, float)) or not 0 < refresh_alpha <= 1:
            raise ValueError(f"frozen reference: refresh_alpha must be in (0, 1], not {refresh_alpha!r}")
        self.reuse_media_setting = reuse_media
        self.refresh_every, self.refresh_alpha = refresh_every, float(refresh_alpha)
        self.policy: Policy | None = None
        if policy is not None:
            self.attach(policy)

    @torch.no_grad()
    def refresh(self, policy: Policy) -> None:
        """θ_ref ← α θ + (1 − α) θ_ref for every parameter; buffers are copied."""
        own = dict(self._own().model.named_parameters())
        for name, param in policy.model.named_parameters():
            own[name].lerp_(param.detach().to(own[name].dtype), self.refresh_alpha)
        own_buffers = dict(self._own().model.named_buffers())
        for name, buf in policy.model.named_buffers():
            if name in own_buffers:
                own_buffers[name].copy_(buf)

    def on_step(self, policy: Policy, step: int) -> None:
        if self.refresh_every and step > 0 and step % self.refresh_every == 0:
            self.refresh(policy)

    def attach(self, policy: Policy) -> FrozenReference:
        model = copy.deepcopy(policy.model).eval().requires_grad_(False)
        backbone = copy.copy(policy.backbone)  # shares the processor, holds the copy
        backbone.model = model
        self.policy = Policy(backbone).eval()
        # Reuse is exact only when the policy's media modules cannot move (see module docstring).
        self.reuse_media = media_frozen(policy.model) if self.reuse_media_setting is None else self.reuse_media_setting
        return self

    def train(self, mode: bool = True) -> FrozenReference:
        return super().train(False)  # the copy stays in eval mode whatever the training module does

    def _own(self) -> Policy:
        if self.policy is None:
            raise RuntimeError("FrozenReference: attach(policy) first")
        return self.policy

    def logps(self, policy: Policy, batch: Batch, media: Media | None = None) -> torch.Tensor:
        return _eval_logps(self._own(), batch, media if self.reuse_media else None)

    def group_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        return _eval_group_logps(self._own(), batch, media if self.reuse_media else None)

    def group_token_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        return _eval_group_token_logps(self._own(), batch, media if self.reuse_media else None)


@REFERENCES.register("lora_disabled")
class LoRAReference(Reference):
    """The policy's own model with its LoRA adapters disabled."""

    def attach(self, policy: Policy) -> LoRAReference:
        find_peft_model(policy.model)  # fails early, with a clear message, when there are no adapters
        return self

    def logps(self, policy: Policy, batch: Batch, media: Media | None = None) -> torch.Tensor:
        with find_peft_model(policy.model).disable_adapter():
            return _eval_logps(policy, batch, media)

    def group_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        with find_peft_model(policy.model).disable_adapter():
            return _eval_group_logps(policy, batch, media)

    def group_token_logps(self, policy: Policy, batch: GroupBatch, media: Media | None = None) -> torch.Tensor:
        with find_peft_model(policy.model).disable_adapter():
            return _eval_group_token_logps(policy, batch, media)


# ---------------------------------------------------------------- cache keys


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(obj: Any):
    if isinstance(obj, (bytes, bytearray)):
        return {"sha256": _digest(bytes(obj))}
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tobytes"):  # numpy arrays, PIL images
        return {"sha256": _digest(obj.tobytes())}
    return str(obj)


def _media_bytes(item: Any, root: Path | None) -> bytes:
    if isinstance(item, (str, Path)):
        path = Path(item)
        if root is not None and not path.is_absolute():
            path = root / path
        return path.read_bytes() if path.is_file() else b"<missing>"
    if isinstance(item, dict):
        if item.get("bytes") is not None:
            return bytes(item["bytes"])
        return _media_bytes(item.get("path"), root) if item.get("path") else b"<none>"
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    return item.tobytes() if hasattr(item, "tobytes") else repr(item).encode()


def dataset_fingerprint(rows: Iterable[dict], media_root: str | Path | None = None, encoding: dict | None = None) -> str:
    """sha256 over the canonical JSON of the rows plus the bytes of every media file they reference.

    ``encoding``: how the rows become tokens (max_length, a tokenizer hash …): a change there
    changes the log-probs too, so it is part of the fingerprint.
    """
    root = Path(media_root) if media_root is not None else None
    h = hashlib.sha256()
    if encoding:
        h.update(json.dumps(encoding, sort_keys=True, default=str).encode() + b"\n")
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, separators=(",", ":"), default=_json_default).encode())
        for column in MEDIA_COLUMNS.values():
            items = row.get(column)
            for item in items if isinstance(items, list) else []:  # a malformed row is skipped at encoding
                h.update(_digest(_media_bytes(item, root)).encode())
        h.update(b"\n")
    return h.hexdigest()


def model_hash(model: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes, bytes) plus the config JSON."""
    if isinstance(model, Policy):
        model = model.model
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    config = getattr(model, "config", None)
    if config is not None:
        text = config.to_json_string(use_diff=False) if hasattr(config, "to_json_string") else repr(config)
        h.update(text.encode())
    return h.hexdigest()


def tokenizer_hash(tokenizer) -> str:
    """sha256 of a tokenizer's vocabulary, merges and chat template (what turns rows into tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return _digest((text + "\n" + str(getattr(tokenizer, "chat_template", ""))).encode())


def processor_hash(processor) -> str:
    """sha256 of everything that turns a row into model inputs: the tokenizer (`tokenizer_hash`) and the
    media settings (image size and normalisation, anyres grids, audio features, video frames …)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if isinstance(getattr(processor, "media", None), dict):  # the composed model's processor
        media = json.dumps(processor.media, sort_keys=True)
    elif processor is not tokenizer and hasattr(processor, "to_json_string"):  # HF: every sub-processor
        media = processor.to_json_string()
    else:
        media = ""
    return _digest((tokenizer_hash(tokenizer) + "\n" + media).encode())


def cache_key(rows: Iterable[dict], model: nn.Module, media_root: str | Path | None = None,
              encoding: dict | None = None) -> str:
    return f"{dataset_fingerprint(rows, media_root, encoding)}-{model_hash(model)}"


# ---------------------------------------------------------------- cached


@REFERENCES.register("cached")
class CachedReference(Reference):
    """Reference log-probs precomputed once and looked up by ``example_index``.

    In training: `attach` hashes the initial weights; `prepare(policy, data)` loads the cache of
    ``data.fingerprint()`` + that hash from ``cache_dir`` (default ``<data.path>/.zoo_cache``) or
    computes it over ``data.ordered_loader()`` (every group once, in file order).
    """

    precomputed = True

    def __init__(self, cache_dir: str | Path | None = None, field: str = "logps"):
        super().__init__()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.field = field  # the default field looked up by `logps`
        self.key: str | None = None
        self.initial_model_hash: str | None = None
        self.tables: dict[str, torch.Tensor] = {}
        self.positions: dict[str, int] = {}

    def attach(self, policy: Policy) -> CachedReference:
        self.initial_model_hash = model_hash(policy)  # now, before a checkpoint can overwrite the weights
        return self

    def prepare(self, policy: Policy, data: Any = None, resuming: bool = False) -> None:
        if self.initial_model_hash is None:
            raise RuntimeError("CachedReference: attach(policy) before prepare")
        if self.cache_dir is None:
            self.cache_dir = Path(data.path) / ".zoo_cache"
        key = f"{data.fingerprint()}-{self.initial_model_hash}"
        if self.load(key):
            return
        if resuming:
            raise FileNotFoundError(
                f"the cached reference {self.path(key)} is missing and this run resumes from a checkpoint, whose "
                "weights are no longer the initial model: restore the cache or start over (overwrite=true)"
            )
        device = next(policy.parameters()).device
        self.precompute_groups(policy, (b.to(device) for b in data.ordered_loader()), key)

    def path(self, key: str) -> Path:
        if self.cache_dir is None:
            raise RuntimeError("CachedReference: no cache_dir (give one, or prepare with the data)")
        return self.cache_dir / f"ref_logps-{key}.safetensors"

    def load(self, key: str) -> bool:
        """Load the cache file of ``key``; False when there is none."""
        path = self.path(key)
        if not path.is_file():
            return False
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tables = {name: f.get_tensor(name) for name in f.keys()}
        indices = json.loads(meta["index"])
        self.key, self.tables = key, tables
        self.positions = {_index_key(i): n for n, i in enumerate(indices)}
        return True

    def precompute(
        self,
        source: Policy | Reference,
        batches: Iterable | Mapping[str, Iterable],
        key: str,
        policy: Policy | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> Path:
        """Compute and store the reference log-probs of every example, once (a no-op when cached).

        ``source`` is a Policy (its own log-probs) or a `Reference` (then ``policy`` is passed to it).
        ``batches`` is an iterable of batch dicts or of `Encoded` examples (padded here by
        ``batch_size``), or a mapping ``field -> iterable``; a bare iterable is stored under
        ``self.field``. All fields must cover the same example indices.
        """
        if self.load(key):
            return self.path(key)
        groups = dict(batches) if isinstance(batches, Mapping) else {self.field: batches}
        target = source if isinstance(source, Policy) else policy
        if target is None:
            raise ValueError("precompute with a Reference needs the policy")
        tables, order = {}, None
        from rich.progress import Progress

        with Progress(disable=not progress, transient=True) as bar:
            for field, items in groups.items():
                task = bar.add_task(f"reference log-probs ({field})", total=None)
                indices, values = [], []
                for batch in _batches(items, target, batch_size):
                    out = _eval_logps(source, batch, None) if isinstance(source, Policy) else source.logps(target, batch)
                    indices.extend(batch["example_index"])
                    values.append(out.detach().float().cpu())
                    bar.advance(task, len(out))
                table = dict(zip(map(_index_key, indices), torch.cat(values)))
                if len(table) != len(indices):
                    raise ValueError(f"field '{field}': example indices are not unique")
                if order is None:
                    order = indices
                elif set(table) != {_index_key(i) for i in order}:
                    raise ValueError(f"field '{field}' covers other examples than the first field")
                tables[field] = torch.stack([table[_index_key(i)] for i in order])
        return self._store(tables, order, key)

    def precompute_groups(self, source: Policy | Reference, batches: Iterable[GroupBatch], key: str,
                          policy: Policy | None = None, progress: bool = True) -> Path:
        """`precompute` for group batches (either layout): the ``[N, K]`` field ``responses`` from one pass,
        each prompt and its media run once (a no-op when cached)."""
        if self.load(key):
            return self.path(key)
        target = source if isinstance(source, Policy) else policy
        if target is None:
            raise ValueError("precompute with a Reference needs the policy")
        from rich.progress import Progress

        indices, values = [], []
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("reference log-probs", total=None)
            for batch in batches:
                out = (_eval_group_logps(source, batch, None) if isinstance(source, Policy)
                       else source.group_logps(target, batch))
                indices.extend(batch.example_index)
                values.append(out.float().cpu())
                bar.advance(task, len(out))
        if len(set(map(_index_key, indices))) != len(indices):
            raise ValueError("group example indices are not unique")
        k = max(v.shape[1] for v in values)  # groups of fewer responses are padded with NaN
        table = torch.cat([torch.nn.functional.pad(v, (0, k - v.shape[1]), value=float("nan")) for v in values])
        return self._store({"responses": table}, indices, key)

    def _store(self, tables: dict[str, torch.Tensor], order: list, key: str) -> Path:
        """Write the tables (rows in ``order``) atomically and load them."""
        self.path(key).parent.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tables, tmp, metadata={"index": json.dumps(order), "key": key})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.load(key)
        return path

    def logps(self, policy: Policy | None, batch: Batch, media: Media | None = None, field: str | None = None):
        return self._lookup(batch["example_index"], field or self.field).to(batch["input_ids"].device)

    def group_logps(self, policy: Policy | None, batch: GroupBatch, media: Media | None = None):
        device = batch.media_batch["input_ids"].device
        table = self._lookup(batch.example_index, "responses")[:, : batch.k]
        if table.shape[1] != batch.k or torch.isnan(table).any():
            raise ValueError(f"the reference cache holds fewer responses than the batch's {batch.k} for some of "
                             f"{batch.example_index[:8]} (stale cache?)")
        return table.to(device)

    def _lookup(self, example_index: list, field: str) -> torch.Tensor:
        if self.key is None:
            raise RuntimeError("CachedReference: call prepare, precompute or load before training")
        if field not in self.tables:
            raise KeyError(f"no cached field '{field}'; cached: {', '.join(sorted(self.tables))}")
        try:
            rows = [self.positions[_index_key(i)] for i in example_index]
        except KeyError as e:
            raise KeyError(f"example {e.args[0]} is not in the reference cache (stale cache?)") from None
        return self.tables[field][rows]


def _index_key(index: Any) -> str:
    return json.dumps(index)


def _batches(items: Iterable, policy: Policy, batch_size: int):
    tok = policy.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    pending: list[Encoded] = []
    for item in items:
        if isinstance(item, Encoded):
            pending.append(item)
            if len(pending) == batch_size:
                yield pad_batch(pending, pad_id)
                pending = []
        else:
            yield item
    if pending:
        yield pad_batch(pending, pad_id)
