"""Callbacks at given clock times, so hot paths need not read the clock themselves.

A breaker's time window counts a plain success with ``next(counter)`` of its current
bucket. Checking on every call whether that bucket has ended costs a clock read, about
a quarter of what a closed breaker may cost in all. Instead, a :class:`Ticker` calls the
breaker back when the bucket ends, and the breaker swaps in the next bucket's counter.

:data:`SYSTEM_TICKER` serves the real clock with one daemon thread for the whole process
(started on first use, and again in a forked child). :class:`~resilience.testing.FakeClock`
has a ticker of its own that it runs whenever virtual time moves, so tests see callbacks
at exactly the virtual times they were due, without a thread.

Callbacks are held through weak references: a scheduled callback never keeps its owner
(say, a per-host breaker evicted from an LRU) alive.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["SYSTEM_TICKER", "Ticker", "ticker_for"]

_log = logging.getLogger("resilience")

#: ``callback(when)``: called once the clock reads ``when`` or later.
TickCallback = Callable[[float], object]
_Entry = tuple[float, int, "weakref.WeakMethod[TickCallback]"]


class Ticker:
    """A heap of ``(when, callback)``; ``run_due(now)`` calls those that are due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: list[_Entry] = []
        self._seq = itertools.count()

    def call_at(self, when: float, callback: TickCallback) -> None:
        """Call ``callback(when)`` once the clock reads ``when``; ``callback`` must be a
        bound method (it is held weakly, through its instance)."""
        entry = (when, next(self._seq), weakref.WeakMethod(callback))
        with self._lock:
            heapq.heappush(self._heap, entry)
            earliest = self._heap[0] is entry
        if earliest:
            self._wake()

    def _wake(self) -> None:
        """A new earliest entry arrived (hook for a ticker with a thread)."""

    def _pop_due(self, now: float) -> list[_Entry]:
        heap = self._heap
        due = []
        with self._lock:
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap))
        return due

    def next_due(self) -> float | None:
        """When the earliest entry is due, or None when nothing is scheduled."""
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def run_due(self, now: float) -> None:
        """Call every callback due at ``now`` (outside the ticker's lock), in time order."""
        for when, _, ref in self._pop_due(now):
            callback = ref()
            if callback is None:
                continue  # its owner is gone
            try:
                callback(when)
            except Exception:  # pragma: no cover - a callback bug must not stop the ticker
                _log.exception("resilience ticker callback %r failed", callback)

    def __len__(self) -> int:
        return len(self._heap)


class SystemTicker(Ticker):
    """A ticker on ``time.monotonic`` with one daemon thread, started on first use."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _wake(self) -> None:
        if self._thread is None:
            self._start()
        self._wakeup.set()

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name="resilience-ticker", daemon=True)
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        monotonic, wakeup = time.monotonic, self._wakeup
        while True:
            due = self.next_due()
            now = monotonic()
            if due is None or due > now:
                wakeup.wait(None if due is None else due - now)
                wakeup.clear()
                continue
            self.run_due(now)

    def _after_fork(self) -> None:
        # The thread did not survive the fork, and its locks may have been held by a
        # thread that is gone: start over with the entries the child inherited.
        self._lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread = None
        if self._heap:
            self._start()


SYSTEM_TICKER = SystemTicker()


def ticker_for(clock: Any) -> Ticker | None:
    """The ticker that follows ``clock``: the system ticker for the real clock, a fake
    clock's own ticker, or None for clocks nobody can follow (callers then read the
    clock themselves)."""
    if getattr(clock, "monotonic", None) is time.monotonic:
        return SYSTEM_TICKER
    ticker = getattr(clock, "_ticker", None)
    return ticker if isinstance(ticker, Ticker) else None
