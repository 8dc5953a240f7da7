"""``FakeClock``: virtual time for tests of code that uses resilience policies."""

from __future__ import annotations

import threading
from datetime import timedelta

import anyio
import anyio.lowlevel

from .._core.ticker import Ticker
from .._core.validation import check_duration, check_number

__all__ = ["FakeClock", "LoopClock"]


class FakeClock:
    """Virtual time: give it to any policy as ``clock=`` and nothing really waits.

    ``sleep``/``asleep`` return at once and move time forward by what was asked;
    ``advance(s)`` moves it forward from outside; ``sleeps`` lists every sleep
    requested, in order. Safe to share between threads; ``asleep`` yields to other
    tasks once (asyncio and trio) so that concurrent tasks interleave as they would.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_number("start", start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        # Policies that want to hear when a time comes (a breaker's time buckets
        # ending) schedule it here; it runs whenever virtual time moves.
        self._ticker = Ticker()

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        step = check_duration("seconds", seconds)
        with self._lock:
            self._now += step
            now = self._now
        self._ticker.run_due(now)

    def sleep(self, seconds: float) -> None:
        step = check_duration("seconds", seconds)
        with self._lock:
            self.sleeps.append(step)
            self._now += step
            now = self._now
        self._ticker.run_due(now)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


class LoopClock:
    """The event loop's clock (``anyio.current_time()``), for async tests on an event
    loop with virtual time, such as trio's ``MockClock(autojump_threshold=0)``.

    A :class:`FakeClock` jumps when a task sleeps on it, so concurrent tasks add their
    sleeps up; with a virtual event loop, tasks sleep (and policies wait, time out and
    measure latency) concurrently, as they would in real time, yet nothing waits.
    Async code only: ``monotonic`` must be called inside the event loop, and ``sleep``
    raises.
    """

    __slots__ = ()

    def monotonic(self) -> float:
        return anyio.current_time()

    def sleep(self, seconds: float) -> None:
        raise RuntimeError("LoopClock is for async code: it cannot block a thread")

    async def asleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "LoopClock()"
