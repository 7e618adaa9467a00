"""Progress a person sees: rich on a terminal, plain timestamped lines otherwise (logs, CI, nohup, pipes).

Two pieces share one clock:

- `StepReporter` announces the steps of a long job ("assft seed0 round 2/3: query 5 volumes ...", then
  "... done in 2.4 s"); `reporting()` makes one the active reporter for a block, and nested code reuses it.
- `progress()` wraps a loop: a transient rich bar on a terminal, otherwise a heartbeat line ("Scoring pool 12/60")
  whenever nothing was printed for `interval` (25) seconds. A watchdog thread of the reporter covers the remaining
  gaps (code without a loop, one slow item), so a run with a reporter never stays quiet for 30 s.

`silenced()` (a disabled reporter: simulation workers, the MONAI Label app, tests) silences everything nested, loops
included; library functions take no progress parameter.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

# Silence before a heartbeat: with the watchdog's polling (interval / 6) a line comes within 30 s of the last one.
HEARTBEAT_S = 25.0

# The reporter of the block being run (set by `reporting()`, empty until then): lets library code deep in the call
# stack (a training loop) report through the caller's reporter without a parameter through every layer.
_ACTIVE: ContextVar[StepReporter | None] = ContextVar("assft_step_reporter", default=None)

__all__ = ["HEARTBEAT_S", "Heartbeat", "StepReporter", "begin_step", "current_reporter", "deprecated_show_progress",
           "progress", "reporting", "silenced"]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


class StepReporter:
    """Steps and heartbeats with the wall time since the reporter started; rich on a TTY, plain lines otherwise.

    Args:
        enabled: False prints nothing; None or True print (rich or plain, by `fancy`).
        stream: where lines go (default: stderr at construction time).
        interval: the longest silence, in seconds, before a heartbeat or watchdog line.
        clock: seconds, monotonic (tests pass a fake one).
        fancy: rich output; default: whether `stream` is a terminal.
        watchdog: run a daemon thread that prints "still ..." after `interval` seconds of silence (while open).
    """

    def __init__(self, enabled: bool | None = None, *, stream: TextIO | None = None, interval: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.monotonic, fancy: bool | None = None, watchdog: bool = True):
        self.enabled = enabled is not False
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.clock = clock
        self.fancy = _isatty(self.stream) if fancy is None else fancy
        self.prefix = ""
        self._start = clock()
        self._last_output = self._start
        self._step: tuple[str, float] | None = None  # (label, start) of the open step
        self._detail: str | None = None  # what the innermost loop is at ("Scoring pool 12/60"), for the watchdog
        self._lock = threading.RLock()
        self._console: Any = None
        self._use_watchdog = watchdog
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # -- output -------------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since the reporter started."""
        return self.clock() - self._start

    def quiet_for(self) -> float:
        """Seconds since the last line was printed."""
        return self.clock() - self._last_output

    @property
    def console(self) -> Any:
        """The rich console on `stream` (created on first use)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=self.fancy or None)
        return self._console

    def line(self, message: str) -> None:
        """Print one line, prefixed with the elapsed time (nothing when disabled)."""
        if not self.enabled:
            return
        with self._lock:
            stamp = f"{self.elapsed():7.1f} s"
            if self.fancy:
                from rich.markup import escape

                self.console.print(f"[dim]{stamp}[/] {escape(message)}", highlight=False, soft_wrap=True)
            else:
                self.stream.write(f"[{stamp}] {message}\n")
                self.stream.flush()
            self._last_output = self.clock()

    # -- steps --------------------------------------------------------------------------------------------------
    def begin(self, label: str) -> None:
        """Start a step (ending the open one first): prints "label ..."; the open step itself just continues."""
        with self._lock:
            label = f"{self.prefix} {label}" if self.prefix else label
            if self._step is not None and self._step[0] == label:
                return
            self.end()
            self._step = (label, self.clock())
            self.line(f"{label} ...")
            self._start_watchdog()

    def end(self, note: str | None = None, *, failed: bool = False) -> None:
        """End the open step (if any): prints "label ... done in 2.4 s (note)"."""
        with self._lock:
            if self._step is None:
                return
            label, started = self._step
            self._step = None
            seconds = self.clock() - started
            outcome = f"failed after {seconds:.1f} s" if failed else f"done in {seconds:.1f} s"
            self.line(f"{label} ... {outcome}" + (f" ({note})" if note else ""))

    @contextmanager
    def step(self, label: str) -> Iterator[dict[str, str]]:
        """Run the block as a step; set `handle["note"]` to add a result to the "done" line.

        A `begin()` inside the block (a later phase of the same work) ends this step; the block's end then ends
        that later one, so consecutive phases read as consecutive steps.
        """
        handle: dict[str, str] = {}
        self.begin(label)
        try:
            yield handle
        except BaseException:
            self.end(failed=True)
            raise
        self.end(handle.get("note"))

    @contextmanager
    def scope(self, prefix: str) -> Iterator[StepReporter]:
        """Prefix the labels of the steps begun inside the block (e.g. the campaign's name)."""
        previous, self.prefix = self.prefix, prefix
        try:
            yield self
        finally:
            self.prefix = previous

    def heartbeat(self, description: str, total: int | None = None) -> Heartbeat:
        """A loop's heartbeat: `tick(done)` prints "description done/total" after `interval` s of silence."""
        return Heartbeat(self, description, total)

    # -- watchdog -----------------------------------------------------------------------------------------------
    def check_idle(self) -> bool:
        """Print a "still ..." line if nothing was printed for `interval` s while a step is open; True if printed."""
        with self._lock:
            if not self.enabled or self._step is None or self.quiet_for() < self.interval:
                return False
            label, started = self._step
            detail = f", at {self._detail}" if self._detail else ""
            self.line(f"  still on {label} ({self.clock() - started:.0f} s so far{detail})")
            return True

    def _start_watchdog(self) -> None:
        if not (self.enabled and self._use_watchdog) or self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(self._stop,), name="assft-progress-watchdog",
                                        daemon=True)  # never keeps the interpreter alive
        self._thread.start()

    def _watch(self, stop: threading.Event) -> None:
        # Poll six times per interval: a "still" line comes at most interval * 7/6 after the previous line.
        while not stop.wait(max(self.interval / 6, 0.01)):
            self.check_idle()

    def close(self) -> None:
        """End the open step quietly and stop the watchdog thread."""
        with self._lock:
            self._step = None
        if self._stop is not None and self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
        self._stop, self._thread = None, None

    def __enter__(self) -> StepReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Heartbeat:
    """A loop's position, printed through its reporter only after `interval` seconds of silence."""

    def __init__(self, reporter: StepReporter, description: str, total: int | None):
        self.reporter = reporter
        self.description = description
        self.total = total

    def tick(self, done: int) -> bool:
        """Record that `done` items are finished; print "description done/total" if the run was quiet; True if so."""
        position = f"{self.description} {done}/{self.total if self.total is not None else '?'}"
        reporter = self.reporter
        with reporter._lock:
            reporter._detail = position
            if not reporter.enabled or reporter.quiet_for() < reporter.interval:
                return False
            reporter.line(f"  {position}")
            return True

    def close(self) -> None:
        """The loop is over: the watchdog stops quoting its position."""
        with self.reporter._lock:
            self.reporter._detail = None


def current_reporter() -> StepReporter | None:
    """The reporter made active by the innermost `reporting()` block, if any."""
    return _ACTIVE.get()


def begin_step(label: str) -> None:
    """Start a step on the active reporter (no-op without one): for a later phase inside a caller's step."""
    reporter = _ACTIVE.get()
    if reporter is not None:
        reporter.begin(label)


@contextmanager
def reporting(enabled: bool | None = None, **options: Any) -> Iterator[StepReporter]:
    """The active reporter when it agrees with `enabled` (nested jobs share one clock), else a new active one.

    `options` go to `StepReporter` when a new one is made.
    """
    active = _ACTIVE.get()
    if active is not None and (enabled is None or bool(enabled) == active.enabled):
        yield active
        return
    reporter = StepReporter(enabled, **options)
    token = _ACTIVE.set(reporter)
    try:
        with reporter:
            yield reporter
    finally:
        _ACTIVE.reset(token)


def silenced() -> AbstractContextManager[StepReporter]:
    """A block that prints nothing: steps, heartbeats, the watchdog and every nested loop (`reporting(False)`)."""
    return reporting(False)


def deprecated_show_progress(show_progress: bool | None, function: str) -> AbstractContextManager[object]:
    """The block a caller still passing `show_progress=` asked for, with a DeprecationWarning (None: no block).

    A public function's old keyword, kept for one release: `show_progress=False` now reads `with silenced(): ...`.
    """
    if show_progress is None:
        return nullcontext()
    warnings.warn(f"{function}(show_progress=...) is deprecated and will be removed; wrap the call in "
                  "`with assft.utils.progress.silenced():` to silence it", DeprecationWarning, stacklevel=3)
    return reporting(show_progress)


def progress(items: Iterable[T], description: str, total: int | None = None,
             enabled: bool | None = None) -> Iterator[T]:
    """Yield from `items`, showing progress: a rich bar on a terminal, else a heartbeat line after 25 s of silence.

    enabled: False shows nothing; None follows the active reporter (silent inside a `reporting(False)` block).
    """
    reporter = _ACTIVE.get()
    if enabled is False or (enabled is None and reporter is not None and not reporter.enabled):
        yield from items
        return
    if reporter is None or not reporter.enabled:
        reporter = StepReporter(True, watchdog=False)  # a loop on its own: its clock starts with the loop
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if reporter.fancy:
        from rich.progress import track

        yield from track(items, description=description, total=total, transient=True, console=reporter.console)
        return
    beat = reporter.heartbeat(description, total)
    done = 0
    try:
        for item in items:
            beat.tick(done)
            yield item
            done += 1
        beat.tick(done)
    finally:
        beat.close()
