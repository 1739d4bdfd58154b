"""Several processes: their ranks, how the policy is sharded, whole weights to generate with and to write, and
losses that average to the one-process mean.

`process_rank` / `process_count`: this process's place in the default ``torch.distributed`` process group (0 of 1
without one), so an online source can give every rank of a data-parallel run its own random stream.

`gathered_for_generation(module)`: the context to sample from a policy whose parameters may be sharded.

* One process, DDP (``trainer.strategy=ddp``): every rank holds the whole model — nothing to do (a no-op).
* FSDP1 (``FullyShardedDataParallel``, Lightning's ``strategy=fsdp``): each rank holds a shard of every flat
  parameter. Generation must see full parameters: ``FullyShardedDataParallel.summon_full_params(root,
  writeback=False)`` gathers them for the duration of the block. It refuses to run inside an FSDP forward or
  backward — and Lightning calls ``training_step`` *from the root FSDP module's forward* — so inside a
  training step it cannot be used. There the root forward has already gathered the root unit's parameters:
  with no auto-wrap policy (the whole module one unit) generation simply works; with an auto-wrap policy
  each inner unit gathers its parameters in its own forward, again per decoded token (correct, slow). This
  context therefore gathers only when it is entered outside a forward (e.g. sampling between steps) and
  otherwise leaves the gathering to the units' forwards.
* FSDP2 (``torch.distributed.fsdp.fully_shard``, Lightning's ``ModelParallelStrategy`` with a
  ``configure_model`` that shards): modules gather their parameters in their forward pre-hook and free them
  after it, so generation is correct without help but gathers every layer once per token. Here the context
  calls ``unshard()`` on every FSDP2 module and keeps them unsharded across the decoding loop
  (``set_reshard_after_forward(False)``), then restores the setting and calls ``reshard()``: one gather per
  generation, at the cost of holding the full model on every rank while sampling.

Lightning's FSDP1 ``FSDPStrategy`` refuses to run without CUDA; zoo's ``strategy=fsdp`` is FSDP2
(`zoo.train.strategies.FSDP`), which runs on CPUs too: `shard_units` / `shard_layers` say how the policy is sharded,
`full_state_dict` gathers it for writing, `data_parallel_mean` makes N processes train like one (see
``docs/ARCHITECTURE.md``, "Several processes: strategies, precision, memory").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def process_rank() -> int:
    """This process's rank in the default process group; 0 when there is none (one process)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def process_count() -> int:
    """The number of processes in the default process group; 1 when there is none."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def data_parallel_mean(mean: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """A rank's ``mean`` over its ``count`` items, rescaled so that averaging over ranks gives the global mean.

    Data-parallel strategies (DDP, FSDP, DeepSpeed) average the ranks' gradients. When each rank's loss is the
    mean over its own items, a rank with fewer items (tokens of shorter responses, a smaller share of a batch)
    weighs as much as the others, and N processes do not train as one process on the same global batch.
    ``mean · count · N / Σ_ranks count`` makes the ranks' average exactly ``Σ sums / Σ counts``.
    One process: ``mean`` itself. Under a process group it is a collective: every rank must call it.
    """
    n = process_count()
    if n == 1:
        return mean
    counts = torch.as_tensor(count, dtype=torch.float32, device=mean.device).detach().clone()
    mine = counts.clone()
    torch.distributed.all_reduce(counts)
    return mean * (mine * n / counts.clamp(min=1))


def _fsdp1_units(module: nn.Module) -> list[nn.Module]:
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover - torch without distributed
        return []
    return [m for m in module.modules() if isinstance(m, FSDP)]


def _fsdp2_modules(module: nn.Module) -> list[nn.Module]:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return []
    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def _fsdp1_idle(units: list[nn.Module]) -> bool:
    """Whether no FSDP1 unit is in its forward or backward (where `summon_full_params` is refused)."""
    from torch.distributed.fsdp._common_utils import TrainingState

    return all(getattr(m, "training_state", TrainingState.IDLE) == TrainingState.IDLE for m in units)


@contextlib.contextmanager
def gathered_for_generation(module: nn.Module) -> Iterator[None]:
    """Full parameters of ``module`` for the block (module docstring): a no-op on one process and under DDP;
    FSDP1's ``summon_full_params`` outside a forward; FSDP2's ``unshard`` kept across the decoding loop."""
    fsdp2 = _fsdp2_modules(module)
    if fsdp2:
        # each module's own setting, to put back as it was (FSDP2 keeps the root unsharded after forward)
        saved = [(state, state._auto_reshard_after_forward, [(g, g.post_forward_mesh_info) for g in
                  state._fsdp_param_groups]) for state in (m._get_fsdp_state() for m in fsdp2)]
        for m in fsdp2:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()
        try:
            yield
        finally:
            for state, auto, groups in saved:
                state._auto_reshard_after_forward = auto
                for group, info in groups:
                    group.post_forward_mesh_info = info
            for m in fsdp2:
                m.reshard()
        return
    units = _fsdp1_units(module)
    if units and _fsdp1_idle(units):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(module, writeback=False):  # every FSDP1 unit under ``module``
            yield
        return
    yield


def layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The classes of ``model``'s repeated layers, each one FSDP unit: those its transformers models name in
    ``_no_split_modules`` (decoder layers, vision-tower layers) and the blocks of its timm towers (``.blocks``)."""
    names: set[str] = set()
    found: set[type[nn.Module]] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
        blocks = getattr(m, "blocks", None)
        if isinstance(blocks, (nn.ModuleList, nn.Sequential)):
            found.update(type(b) for b in blocks)
    found.update(type(m) for m in model.modules() if type(m).__name__ in names)
    return found


# The methods of a model that encode media outside its forward: the composed model's and transformers' VLMs'
ENCODE_METHODS = ("encode_media", "get_image_features", "get_video_features", "get_audio_features")


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules `shard_layers` makes FSDP units, deepest first: every repeated layer (`layer_classes`), the media
    towers and projectors (called on their own by ``encode_media``, outside the model's forward), the input
    embeddings (native backbones embed outside it) and an untied output head. FSDP2 gathers a unit's parameters
    in the unit's forward, so a module called outside the root's forward must be a unit of its own."""
    from zoo.models.families import media_module_names

    classes = tuple(layer_classes(model))
    towers = set(media_module_names())
    depth = {}
    for name, m in model.named_modules():
        if name and ((classes and isinstance(m, classes)) or name.rsplit(".", 1)[-1] in towers):
            if isinstance(m, (nn.ModuleDict, nn.ModuleList)):  # a container has no forward: its items are units
                for child in m.children():
                    depth.setdefault(child, name.count(".") + 1)
            else:
                depth.setdefault(m, name.count("."))
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for m in (embed, head):
        if m is not None and m not in depth and not (m is head and embed is not None and head.weight is embed.weight):
            depth[m] = max(depth.values(), default=0) + 1  # leaves: sharded before anything that holds them
    return sorted(depth, key=depth.get, reverse=True)


def shard_layers(module: nn.Module, mesh=None, reshard_after_forward: bool = True) -> int:
    """FSDP2 (``fully_shard``) on every unit of `shard_units`, then on ``module`` itself for the rest. Each unit
    gathers its parameters in its forward and frees them after; gradients are reduce-scattered per unit.
    Returns the number of units."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    units = shard_units(module)
    recorded = _output_recording(module)
    for unit in units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward)
    _restore_output_recording(recorded)
    # the backbones encode media through these methods of the root, before its forward: FSDP2 must see them as
    # forwards (its lazy initialisation runs at the root's first forward)
    for method in ENCODE_METHODS:
        if callable(getattr(module, method, None)):
            register_fsdp_forward_method(module, method)
    return len(units) + 1


def _output_recording(module: nn.Module) -> dict[nn.Module, dict]:
    """What each transformers model under ``module`` records (hidden states, attentions …). transformers keys this
    by the model's class name (``_CAN_RECORD_REGISTRY``), and ``fully_shard`` gives every unit a new class
    (``FSDPCLIPVisionModel``): without re-registering, LLaVA's ``get_image_features`` gets no hidden states."""
    try:
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY
    except ImportError:  # pragma: no cover - a transformers without output capturing
        return {}
    return {m: _CAN_RECORD_REGISTRY.get(m) for m in module.modules() if _CAN_RECORD_REGISTRY.get(m)}


def _restore_output_recording(recorded: dict[nn.Module, dict]) -> None:
    if recorded:
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY

        for m, flags in recorded.items():
            _CAN_RECORD_REGISTRY[m] = flags  # under the sharded class's name


def is_sharded(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` is sharded by FSDP (a DTensor of FSDP2 or inside an FSDP1 unit)."""
    return bool(_fsdp2_modules(module) or _fsdp1_units(module))


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with whole tensors on the CPU, however its parameters are sharded (a collective
    under FSDP: every rank must call it; rank 0 gets the whole dict, the others may get an empty one).
    Unsharded: the plain state dict."""
    if not is_sharded(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, dtypes, shapes, bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def replica_digests(module: nn.Module) -> list[str]:
    """`weights_digest` of ``module`` on every rank, in rank order (a collective: every rank must call it);
    one process: its own. Data-parallel replicas (DDP) must all agree."""
    mine = weights_digest(module)
    if process_count() == 1:
        return [mine]
    gathered: list[str | None] = [None] * process_count()
    torch.distributed.all_gather_object(gathered, mine)
    return [str(d) for d in gathered]
