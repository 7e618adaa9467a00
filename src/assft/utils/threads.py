"""Thread policy that survives a busy machine: torch's intra-op thread count follows the cores other processes leave.

Why: with OpenMP's default (active, spinning) wait policy, two torch threads on a 2-core machine beside one busy
process are several times slower than idle, while one thread is hardly slowed; OMP_WAIT_POLICY=PASSIVE costs time
when idle and still loses beside the busy process; beside a light process (30 % of a core) the two spinning threads
stay ahead of one (benchmarks/speed/thread_policy.py; the numbers are in docs/performance.md).

So the default ("auto") keeps all cores while the machine is otherwise idle or lightly used, and drops one thread
for every core another process keeps busy. It re-reads the load (Linux /proc/stat, a few microseconds) at most every
`interval` seconds, from `tick()`, which the training loop and the inference pass call once per step / volume.
An explicit count (`--threads N`, `ASSFT_THREADS=N`, or `set_thread_policy(N)`) switches the governor off; so does
a platform without /proc/stat (then torch keeps its own default).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ENV_THREADS = "ASSFT_THREADS"


def _read_system_busy() -> float | None:
    """Seconds of CPU time the whole machine has spent busy since boot (None when /proc/stat is unreadable)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            parts = fh.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    values = [int(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal; guest time is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds used by this process (all its threads)."""
    t = os.times()
    return t.user + t.system


def cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_for_load(other_cores: float, max_threads: int) -> int:
    """Threads to use when other processes keep `other_cores` cores busy: one fewer per busy core, at least 1.

    A core counts as taken when another process keeps it at least half busy (round half up): a light process
    (30 % of a core) leaves all threads, a busy one (>= 50 %) takes one.
    """
    taken = int(max(0.0, other_cores) + 0.5)
    return max(1, min(max_threads, max_threads - taken))


@dataclass
class ThreadGovernor:
    """Adjusts torch's intra-op thread count to the load other processes put on the machine (see module doc)."""

    max_threads: int = field(default_factory=cores)
    interval: float = 2.0
    enabled: bool = True
    current: int | None = None
    fixed: int | None = None  # an explicit count, applied at the first tick (torch may not be imported before)
    _last: tuple[float, float, float] | None = None  # (wall, system busy, own cpu)

    def tick(self, now: float | None = None) -> int | None:
        """Re-read the load if `interval` has passed; set torch's threads when the right count changed."""
        if self.fixed is not None:
            if self.current != self.fixed:
                self._set(self.fixed)
            return self.current
        if not self.enabled:
            return self.current
        now = time.monotonic() if now is None else now
        if self._last is not None and now - self._last[0] < self.interval:
            return self.current
        busy = _read_system_busy()
        if busy is None:
            self.enabled = False
            return self.current
        own = _own_cpu()
        if self._last is None:
            self._last = (now, busy, own)
            self._set(self.max_threads)
            return self.current
        wall, busy0, own0 = self._last
        self._last = (now, busy, own)
        other = ((busy - busy0) - (own - own0)) / max(now - wall, 1e-6)
        self._set(threads_for_load(other, self.max_threads))
        return self.current

    def _set(self, n: int) -> None:
        if n != self.current:
            import torch

            torch.set_num_threads(n)
            self.current = n


_GOVERNOR = ThreadGovernor(enabled=False)


def parse_threads(value: str | int | None) -> int | None:
    """'auto'/None -> None (the governor); a positive integer -> that many threads; anything else a ValueError."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"threads must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {value!r}")
    return n


def set_thread_policy(threads: str | int | None = None, *, interval: float = 2.0) -> ThreadGovernor:
    """Install the process's policy: an explicit count, else `ASSFT_THREADS`, else the load-following governor."""
    global _GOVERNOR
    n = parse_threads(threads) if threads is not None else parse_threads(os.environ.get(ENV_THREADS))
    # Nothing is applied here (torch need not be loaded for `assft data check`): the first tick() applies it.
    _GOVERNOR = ThreadGovernor(max_threads=n, interval=interval, enabled=False, fixed=n) if n is not None \
        else ThreadGovernor(interval=interval)
    return _GOVERNOR


@contextmanager
def threads_for_call(threads: int | None) -> Iterator[None]:
    """A fixed torch thread count for one library call (a config's `num_threads`); afterwards the caller's policy
    and thread count are back. None: nothing changes (the caller's policy applies, e.g. the CLI's --threads)."""
    global _GOVERNOR
    if threads is None:
        yield
        return
    import torch

    previous, before = _GOVERNOR, torch.get_num_threads()
    _GOVERNOR = ThreadGovernor(max_threads=threads, enabled=False, fixed=threads)
    try:
        yield
    finally:
        _GOVERNOR = previous
        torch.set_num_threads(before)


def tick() -> None:
    """Called once per training step / inference volume: lets the installed governor follow the load (cheap)."""
    _GOVERNOR.tick()


def governor() -> ThreadGovernor:
    """The process's governor (disabled unless `set_thread_policy` installed one)."""
    return _GOVERNOR
