"""Where the seconds went: a record held by the context, filled by code deep in the call stack, read by its opener.

A caller that wants the numbers opens a record around the work and reads it afterwards; library code adds to the
active record without a parameter through every layer, and adds to nothing when no record is open:

    with timing_record() as spent:
        with timed("query_s"):
            ...                      # code below may call add_time("load_s", dt) or add_count("cases")
    ledger.update(timings=spent)

The innermost record alone receives: a function that reports its own numbers (`score_pool`, `run_ssft`) opens one
around its work, so its keys never leak into its caller's record. The record lives in a context variable, so
threads (which start with an empty context) and asyncio tasks never add to each other's records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["add_count", "add_time", "timed", "timing_record"]

_ACTIVE: ContextVar[dict[str, float] | None] = ContextVar("assft_timing_record", default=None)


@contextmanager
def timing_record(record: dict[str, float] | None = None) -> Iterator[dict[str, float]]:
    """A new, empty record (key -> seconds or count), active for the block; the innermost record alone receives.

    `record`: an earlier record to continue instead (its numbers add up), e.g. one per interleaved stream.
    """
    record = {} if record is None else record
    token = _ACTIVE.set(record)
    try:
        yield record
    finally:
        _ACTIVE.reset(token)


def add_time(key: str, seconds: float) -> None:
    """Add `seconds` to `key` of the active record (created at 0.0 when new); no-op without a record.

    `add_time(key, 0.0)` makes the key present even when nothing is timed under it.
    """
    record = _ACTIVE.get()
    if record is not None:
        record[key] = record.get(key, 0.0) + seconds


def add_count(key: str, n: int = 1) -> None:
    """Add `n` to the count `key` of the active record (kept as a float beside the seconds); no-op without one."""
    add_time(key, float(n))


@contextmanager
def timed(key: str) -> Iterator[None]:
    """Add the block's wall time (`time.perf_counter`) to `key` of the active record, also when the block raises."""
    start = time.perf_counter()
    try:
        yield
    finally:
        add_time(key, time.perf_counter() - start)
