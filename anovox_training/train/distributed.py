"""The process group of a training run: one process, or the ranks torchrun starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ['DistContext', 'distributed', 'init_distributed']


@dataclass(frozen=True)
class DistContext:
    """Process group facts; world 1 without torchrun."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if self.world <= 1:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]


def init_distributed() -> DistContext:
    """Join the torchrun process group when launched by torchrun (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
        return DistContext(device=device)
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device('cuda', local_rank), 'nccl'
    else:
        device, backend = torch.device('cpu'), 'gloo'
    torch.distributed.init_process_group(backend=backend)
    return DistContext(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(), device=device)


@contextmanager
def distributed() -> Iterator[DistContext]:
    """:func:`init_distributed`, and leave the process group (if one was joined) at the end of the block."""
    dist = init_distributed()
    try:
        yield dist
    finally:
        if dist.world > 1:
            torch.distributed.destroy_process_group()
