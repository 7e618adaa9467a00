"""Leaving a gloo process group at exit (`assft.utils.distributed._leave`): a rank waits for its peers before tearing
the group down (ranks leave together), and a peer that never comes does not hang it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, out: str) -> None:
    """Rank 1 stays busy until rank 0 has left, then vanishes without leaving (os._exit skips atexit); rank 0 leaves
    and records how long it waited. A rank 0 that waited forever would keep rank 1 busy: the test's timeout fails it."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from assft.utils import distributed

    distributed.LEAVE_TIMEOUT_S = 2
    ranks = distributed.join_process_group()
    distributed.barrier(ranks)
    if rank == 1:
        deadline = time.monotonic() + 100  # a hung rank 0 still ends the test (at its timeout), never the runner
        while not Path(out).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(0)
    start = time.perf_counter()
    distributed._leave()
    Path(out).write_text(f"{time.perf_counter() - start:.3f} {dist.is_initialized()}")


@pytest.mark.timeout(120)
def test_a_rank_waits_for_its_peer_at_exit_but_not_forever(tmp_path: Path) -> None:
    out = tmp_path / "rank0.txt"
    torch.multiprocessing.start_processes(_rank, args=(_free_port(), str(out)), nprocs=2, start_method="spawn")
    waited, still_joined = out.read_text().split()
    assert still_joined == "False"  # the group was destroyed
    # It waited for the busy peer (a barrier), for LEAVE_TIMEOUT_S = 2 s: a lower bound only, since a loaded machine
    # can only make it later; "not forever" is rank 1 ending, which it does only once rank 0 has left.
    assert float(waited) >= 1.0
