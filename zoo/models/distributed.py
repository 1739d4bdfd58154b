"""What a sampler needs to know about the processes it runs in: its rank, and full weights to generate with.

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

Lightning 2.x refuses ``strategy=fsdp`` without a CUDA accelerator (``accelerator_connector``: "The strategy
`fsdp` requires a GPU accelerator"), so the FSDP paths are exercised on GPUs only (see
``docs/ARCHITECTURE.md``, "Multi-process online sampling").
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
