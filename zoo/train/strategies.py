"""Distributed strategies zoo adds to Lightning's (chosen with ``strategy=`` from ``recipes/strategy/``).

`FSDP` is fully sharded data parallelism with FSDP2 (``torch.distributed.fsdp.fully_shard``) on Lightning's
`ModelParallelStrategy`: the device mesh is one data-parallel dimension over every process (no tensor parallelism),
and `PolicyModule.configure_model` shards the policy unit by unit (`zoo.models.distributed.shard_units`: each
repeated layer, media tower, projector and the embeddings), then the rest of the policy, then any other trainable
part of the module (a reward head). Unlike Lightning's ``FSDPStrategy`` (FSDP1, which needs CUDA), FSDP2 runs on
CPUs too (gloo), so the sharded path is tested on the CI machine (``tests/train/test_distributed.py``).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import ModelParallelStrategy


class FSDP(ModelParallelStrategy):
    """FSDP2 data parallelism over all processes (``trainer.devices × trainer.num_nodes``).

    ``reshard_after_forward``: free each unit's gathered parameters after its forward (ZeRO-3-like; False keeps
    them until backward: ZeRO-2-like, more memory, one gather fewer). ``save_distributed_checkpoint``: False (the
    default) writes checkpoints as one file with whole tensors, loadable on any number of processes and by
    ``zoo export``; True writes per-rank shards (a folder), for models too large to gather on one rank.
    """

    def __init__(self, reshard_after_forward: bool = True, save_distributed_checkpoint: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint, **kwargs)
        self.reshard_after_forward = reshard_after_forward

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # every process holds one shard
        super().setup_environment()

    @property
    def data_parallel_mesh(self):
        """The one-dimensional mesh the units are sharded over."""
        return self.device_mesh["data_parallel"]
