"""The context-held timing record: known sums, the innermost record alone receives, nothing without a record, and
isolation between threads and between interleaved streams."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from assft.utils import timing
from assft.utils.timing import add_count, add_time, timed, timing_record


def test_adds_sum_per_key_and_counts_are_floats() -> None:
    with timing_record() as spent:
        add_time("load_s", 0.25)
        add_time("load_s", 0.5)
        add_time("reduce_s", 0.0)  # present at zero
        add_count("cases")
        add_count("cases", 2)
    assert spent == {"load_s": 0.75, "reduce_s": 0.0, "cases": 3.0}
    assert list(spent) == ["load_s", "reduce_s", "cases"]  # first-added order: the JSON a ledger writes
    assert isinstance(spent["cases"], float)


def test_without_a_record_everything_is_a_no_op() -> None:
    add_time("load_s", 1.0)
    add_count("cases")
    with timed("query_s"):
        pass
    with timing_record() as spent:
        pass
    assert spent == {}  # nothing from before the record leaked into it
    add_time("after", 1.0)  # the record is closed: no-op again
    assert spent == {}


def test_the_innermost_record_alone_receives() -> None:
    with timing_record() as outer:
        add_time("outer_s", 1.0)
        with timing_record() as inner:
            add_time("pass_s", 2.0)
            add_count("cases")
        add_time("outer_s", 3.0)
    assert outer == {"outer_s": 4.0}
    assert inner == {"pass_s": 2.0, "cases": 1.0}


def test_timed_adds_the_block_wall_time_to_the_record_open_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    now = iter([10.0, 10.5, 20.0, 22.0, 30.0, 31.25])
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(now)))  # this module's clock
    with timing_record() as spent:
        with timed("query_s"):
            pass
        # timed outside, a record inside: the block's seconds go to the outer record, its own keys stay inside
        with timed("labeled_embedding_s"), timing_record() as inner:
            add_time("load_s", 1.0)
        with pytest.raises(RuntimeError), timed("query_s"):  # a failing block is timed too
            raise RuntimeError("boom")
    assert spent == {"query_s": 0.5 + 1.25, "labeled_embedding_s": 2.0}
    assert inner == {"load_s": 1.0}


def test_continuing_a_record_adds_to_it() -> None:
    earlier = {"load_s": 1.0}
    with timing_record(earlier) as again:
        add_time("load_s", 0.5)
    assert again is earlier and earlier == {"load_s": 1.5}


def test_interleaved_streams_keep_their_own_records() -> None:
    def stream(n: int):
        for _ in range(n):
            add_count("cases")
            yield

    records: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    streams = {"a": stream(3), "b": stream(3)}
    for name in ("a", "b", "a", "b", "a"):
        with timing_record(records[name]):
            next(streams[name])
    assert records == {"a": {"cases": 3.0}, "b": {"cases": 2.0}}


def test_threads_do_not_add_to_each_others_records() -> None:
    barrier = threading.Barrier(3)
    seen: dict[str, dict[str, float]] = {}

    def worker(name: str, seconds: float) -> None:
        with timing_record() as mine:
            barrier.wait()  # all three records open at once
            for _ in range(100):
                add_time("work_s", seconds)
            barrier.wait()
        seen[name] = mine

    def unrecorded() -> None:  # a thread starts with an empty context: the main thread's record is not its own
        barrier.wait()
        add_time("work_s", 1000.0)
        barrier.wait()

    with timing_record() as main:
        threads = [threading.Thread(target=worker, args=("a", 1.0)), threading.Thread(target=worker, args=("b", 2.0))]
        threads.append(threading.Thread(target=unrecorded))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert seen == {"a": {"work_s": 100.0}, "b": {"work_s": 200.0}}
    assert main == {}
