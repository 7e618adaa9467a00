"""Thread policy: the count follows the load other processes put on the cores (known answers, fake clocks)."""

from __future__ import annotations

import pytest
import torch

from assft.utils import threads as th


@pytest.mark.parametrize(("other", "max_threads", "expected"), [
    (0.0, 2, 2), (0.3, 2, 2), (0.49, 2, 2), (0.5, 2, 1), (1.0, 2, 1), (1.9, 2, 1), (5.0, 2, 1),
    (1.0, 8, 7), (2.6, 8, 5), (-0.2, 4, 4),
])
def test_threads_for_load(other: float, max_threads: int, expected: int) -> None:
    assert th.threads_for_load(other, max_threads) == expected


def test_governor_drops_a_thread_beside_a_busy_process_and_takes_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"busy": 100.0, "own": 10.0}
    monkeypatch.setattr(th, "_read_system_busy", lambda: clock["busy"])
    monkeypatch.setattr(th, "_own_cpu", lambda: clock["own"])
    before = torch.get_num_threads()
    try:
        gov = th.ThreadGovernor(max_threads=2, interval=2.0)
        assert gov.tick(now=0.0) == 2  # first look: all cores
        clock["busy"] += 2 * 1.9  # 2 s: the machine was 1.9 cores busy, we used 1.0 -> another process 0.9
        clock["own"] += 1.0
        assert gov.tick(now=1.0) == 2  # too early: no new reading
        assert gov.tick(now=2.0) == 1
        assert torch.get_num_threads() == 1
        clock["busy"] += 2 * 2.0  # now only we are busy
        clock["own"] += 2 * 2.0
        assert gov.tick(now=4.0) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_explicit_count_switches_the_governor_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(th, "_read_system_busy", lambda: pytest.fail("an explicit count must not read the load"))
    before = torch.get_num_threads()
    try:
        gov = th.set_thread_policy(1)
        th.tick()
        assert (gov.current, torch.get_num_threads()) == (1, 1)
        monkeypatch.setenv(th.ENV_THREADS, "2")
        assert th.set_thread_policy().fixed == 2
    finally:
        th.set_thread_policy(before)
        th.tick()


def test_no_proc_stat_leaves_torch_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(th, "_read_system_busy", lambda: None)
    gov = th.ThreadGovernor(max_threads=2)
    assert gov.tick(now=0.0) is None and not gov.enabled


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_parse_threads_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        th.parse_threads(bad)


def test_parse_threads_accepts() -> None:
    assert (th.parse_threads("auto"), th.parse_threads(None), th.parse_threads("3"), th.parse_threads(2)) == \
        (None, None, 3, 2)


def test_a_configs_thread_count_holds_for_one_call_only() -> None:
    import torch

    from assft.utils import threads

    torch.set_num_threads(2)
    caller = threads.set_thread_policy(2)
    with threads.threads_for_call(1):
        threads.tick()
        assert torch.get_num_threads() == 1 and threads.governor().fixed == 1
    assert torch.get_num_threads() == 2 and threads.governor() is caller  # the caller's policy is back
    with threads.threads_for_call(None):
        assert threads.governor() is caller  # None: nothing changes
    with pytest.raises(RuntimeError), threads.threads_for_call(1):
        threads.tick()
        raise RuntimeError("training failed")
    assert torch.get_num_threads() == 2 and threads.governor() is caller
