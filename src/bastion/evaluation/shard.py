"""Sharding an evaluation across processes (``torchrun``, one or many machines).

The runner's work units are numbered in a fixed order; process ``rank`` of
``world_size`` runs the units ``k`` with ``k % world_size == rank``. Each unit is
seeded from its own coordinates, never from the process that runs it, so the numbers
equal a single-process run with the same seed and batch size. Every process keeps its
own resume file (``state.json`` -> ``state.rank0-of-2.json``); at the end the finished
units are exchanged with ``torch.distributed.all_gather_object`` over gloo (CPU,
works between machines too) and every process holds the full result. Only rank 0
writes files (see :func:`bastion.jobs.run_job`).

The launcher's environment decides the layout: ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, as ``torchrun`` sets them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bastion.errors import ConfigError

#: How long a process waits for the others at the final exchange. Units are dealt out
#: round-robin, so processes finish close together; the slack covers uneven resumes.
EXCHANGE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Shard:
    """This process's share of the work: ``rank`` in ``[0, world_size)``.

    Attributes:
        local_rank: index of the process on its machine (picks ``cuda:local_rank``).
        exchange: gathers one picklable object from every rank into a list ordered by
            rank; default :func:`torch.distributed.all_gather_object`. Tests inject one.
    """

    rank: int
    world_size: int
    local_rank: int = 0
    exchange: Callable[[Any], list[Any]] | None = None

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank must be in [0, world_size), got rank {self.rank} of "
                              f"world size {self.world_size}; check RANK and WORLD_SIZE")

    @property
    def is_main(self) -> bool:
        """Rank 0 summarises and writes the results."""
        return self.rank == 0

    def owns(self, k: int) -> bool:
        """Whether unit number ``k`` (in the runner's fixed order) runs here."""
        return k % self.world_size == self.rank

    def state_path(self, path: Path) -> Path:
        """This rank's resume file beside ``path``: ``a/s.json`` -> ``a/s.rank1-of-4.json``."""
        if self.world_size == 1:
            return path
        return path.with_name(f"{path.stem}.rank{self.rank}-of-{self.world_size}{path.suffix}")

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` from every rank, in rank order (a one-item list when alone)."""
        if self.world_size == 1:
            return [obj]
        if self.exchange is not None:
            return self.exchange(obj)
        if not dist.is_initialized():
            raise ConfigError("a sharded evaluation needs torch.distributed initialised; "
                              "run under bastion.evaluation.shard.distributed(...)")
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The :class:`Shard` that ``torchrun``'s variables describe; None when not launched
    by it (or with ``WORLD_SIZE=1``)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return None
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from None
    if world == 1:
        return None
    return Shard(rank=rank, world_size=world, local_rank=local)


@contextmanager
def distributed(shard: Shard | None) -> Iterator[None]:
    """Join the process group for ``shard`` (gloo over TCP) and leave it afterwards.

    A no-op when ``shard`` is None, brings its own ``exchange``, or the group exists.
    """
    if shard is None or shard.exchange is not None or dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size,
                            timeout=EXCHANGE_TIMEOUT)
    try:
        yield
    except BaseException:
        dist.destroy_process_group()  # at once: the other ranks may never reach a barrier
        raise
    # Normal end: wait for every rank first. Rank 0 still writes after the exchange, and
    # a rank that tears the group down under a connected peer can abort inside gloo.
    dist.barrier()
    dist.destroy_process_group()


def rank_device(device: str, shard: Shard | None) -> str:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under sharding: one GPU per process (and so
    does ``auto`` when torch sees a GPU)."""
    if shard is not None and device == "auto" and torch.cuda.is_available():
        device = "cuda"
    if shard is not None and device == "cuda":
        return f"cuda:{shard.local_rank}"
    return device
