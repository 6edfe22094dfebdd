"""Process-group plumbing for ``torchrun``: one process per device, any number of nodes.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; with ``WORLD_SIZE`` > 1 we join the group (gloo on CPU, NCCL on CUDA).
A plain ``python`` run is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from bastion.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` in [0, ``size``), its device."""

    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 alone writes logs, checkpoints and the card."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def join(device: str) -> World:
    """Join the torchrun process group if there is one; pick this process's device.

    ``device`` is what ``--device`` takes everywhere (cpu, cuda, cuda:N, mps or auto,
    :func:`bastion.jobs.parse_device`); under torchrun ``cuda`` means ``cuda:LOCAL_RANK``.
    """
    from bastion.jobs import parse_device  # the shared rule; imported late (jobs is heavy)

    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = parse_device(device)
    kind = chosen.type
    if kind == "mps" and size > 1:
        raise ConfigError("torchrun with --device mps is not supported (no MPS process "
                          "group); train on one process or use cuda or cpu")
    if kind == "cuda":
        chosen = torch.device("cuda", local) if size > 1 else chosen
        torch.cuda.set_device(chosen)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    return World(rank=rank, size=size, local_rank=local, device=chosen)


def leave(world: World, *, wait: bool = True) -> None:
    """Leave the process group. With ``wait`` (the normal end), first wait for every
    rank: rank 0 still evaluates and writes after the others are done, and a rank that
    tears the group down (and exits) under a peer still connected can abort inside
    gloo ("terminate called without an active exception"). After an error, leave at
    once: the other ranks may never reach a barrier."""
    if world.distributed and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def from_main(world: World, value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object), e.g. a stop decision:
    all processes must leave the training loop at the same step or DDP hangs."""
    if not world.distributed:
        return value
    box: list[Any] = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
