"""torch.distributed for work split across processes started by `torchrun` (pool scoring; gloo on CPU, NCCL on GPU).

assft never starts processes itself: `torchrun --nproc-per-node N -m assft query ...` sets RANK / WORLD_SIZE /
MASTER_ADDR, `join_process_group` joins the group those variables describe, and a plain single process sees rank 0
of a world of 1 (every helper below is then the identity). Items are dealt round-robin (`items[rank::world]`, no
padding duplicates, unlike torch's DistributedSampler default) and gathered back into the input order.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Ranks", "barrier", "gather_in_order", "join_process_group", "merge_across_ranks", "shard"]

T = TypeVar("T")
LEAVE_TIMEOUT_S = 60  # how long a rank waits at exit for the others before leaving alone


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: rank in 0..world-1."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that selects and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def join_process_group() -> Ranks:
    """Join the process group torchrun's environment describes (once; gloo on CPU, NCCL when CUDA is there)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Ranks()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        atexit.register(_leave)  # torch warns at exit about a group that was never destroyed
    return Ranks(dist.get_rank(), dist.get_world_size())


def barrier(ranks: Ranks) -> None:
    """Wait until every rank got here (nothing to wait for in a single process)."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def shard(items: Sequence[T], ranks: Ranks) -> list[T]:
    """This rank's share of `items`: every world-th item from its rank (sizes differ by at most one)."""
    return list(items[ranks.rank::ranks.world])


def gather_in_order(local: list[T], ranks: Ranks) -> list[T]:
    """Every rank's `shard` results, back in the order of the items they were dealt from (on every rank)."""
    if not ranks.distributed:
        return list(local)
    import torch.distributed as dist

    parts: list[list[T] | None] = [None] * ranks.world
    dist.all_gather_object(parts, local)
    total = sum(len(p or []) for p in parts)
    ordered: list[T] = []
    for index in range(total):
        part = parts[index % ranks.world]
        ordered.append(part[index // ranks.world])  # type: ignore[index]
    return ordered


def merge_across_ranks(local: dict, ranks: Ranks) -> dict:
    """The union of every rank's `local` mapping (on every rank; a key two ranks share keeps the lower rank's)."""
    if not ranks.distributed:
        return dict(local)
    import torch.distributed as dist

    parts: list[dict | None] = [None] * ranks.world
    dist.all_gather_object(parts, local)
    merged: dict = {}
    for part in reversed(parts):
        merged.update(part or {})
    return merged


def _leave() -> None:
    """At exit: wait for every rank, then destroy the group. A rank that tore its gloo group down while its peer was
    still finishing the last collective aborted once in CI ("terminate called without an active exception",
    SIGABRT); the barrier makes the ranks leave together. It is bounded (a peer that crashed must not hang exit)."""
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=LEAVE_TIMEOUT_S))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001 - a peer gone or timed out: leave anyway
        pass
    dist.destroy_process_group()
