"""Adaptive concurrency's decision core: samples of latency in, a concurrency limit out.

Every call that ends gives a *sample*: how long it took, how many calls were in
flight, and whether it was *dropped* (timed out or refused by an overloaded dependency).
Samples are gathered into *windows* of about one limit's worth of calls (at least
``MIN_WINDOW``), so each update sees roughly one round trip of every call in flight;
at the end of a window the algorithm turns the window's average latency, its peak
concurrency and whether anything was dropped into a new limit, clamped to
``[min_limit, max_limit]``. The algorithms follow Netflix's concurrency-limits:

- AIMD (loss-based): a window with a drop (or slower on average than
  ``slow_call_duration``) multiplies the limit by ``backoff_ratio``; otherwise, if at
  least half the limit was in use, the limit grows by one.
- Gradient (delay-based, GradientLimit): the lowest latency seen is the *no-load*
  latency; ``gradient = clamp(tolerance * no_load / latest, 0.5, 1)`` is below 1 when
  calls queue up (latency above ``tolerance`` times the no-load one), and the limit
  moves to ``limit * gradient + queue_size`` (shrinking smoothly, by ``smoothing``): it
  settles where the latency is ``tolerance`` times the no-load latency. A window with a
  drop multiplies it by ``backoff_ratio``. Every ``probe_interval`` windows or so (the
  first time after ``FIRST_PROBE``) the limit starts again from ``queue_size`` and the
  no-load latency is measured afresh, so that it follows a dependency whose own speed
  changed, and a limit that started too high learns it early.

No I/O, no time of its own, nothing sync- or async-specific.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["FIRST_PROBE", "MIN_WINDOW", "AIMDState", "GradientState", "LimitCore", "LimitState"]

#: Samples in a window, at least (the window is the limit's worth of calls otherwise).
MIN_WINDOW = 10
#: The gradient's first probe comes after this many windows (jittered up to twice).
FIRST_PROBE = 10


class LimitState(Protocol):
    """One algorithm's state: the next limit after a window."""

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float: ...


class AIMDState:
    """Additive increase, multiplicative decrease."""

    __slots__ = ("_backoff", "_slow")

    def __init__(self, backoff_ratio: float, slow_call_duration: float | None) -> None:
        self._backoff = backoff_ratio
        self._slow = math.inf if slow_call_duration is None else slow_call_duration

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        if dropped or rtt > self._slow:
            return limit * self._backoff
        if inflight * 2 >= limit:
            return limit + 1.0
        return limit


class GradientState:
    """Netflix's GradientLimit: the latest latency against the no-load latency."""

    __slots__ = (
        "_backoff",
        "_countdown",
        "_interval",
        "_noload",
        "_queue",
        "_random",
        "_smoothing",
        "_tolerance",
    )

    def __init__(
        self,
        tolerance: float,
        smoothing: float,
        backoff_ratio: float,
        probe_interval: int | None,
        queue_size: float | None,
        random: Callable[[], float],
    ) -> None:
        self._tolerance = tolerance
        self._smoothing = smoothing
        self._backoff = backoff_ratio
        self._interval = probe_interval
        self._queue = queue_size
        self._random = random
        self._noload = math.inf
        # The first probe comes early: a limit that starts above what the dependency
        # can take never sees it unloaded, and would hold an inflated baseline until then.
        self._countdown = self._next_probe(FIRST_PROBE)

    def _next_probe(self, first: int | None = None) -> float:
        # Jittered (between 1 and 2 intervals), so that clients started together do not
        # all probe at once.
        interval = self._interval
        if interval is None:
            return math.inf
        if first is not None:
            interval = min(interval, first)
        return interval * (1.0 + self._random())

    def _queue_size(self, limit: float) -> float:
        queue = self._queue
        return max(4.0, math.sqrt(limit)) if queue is None else queue

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        queue = self._queue_size(limit)
        self._countdown -= 1
        if self._countdown <= 0:
            # Probe: start again from a small limit, and measure the no-load latency
            # afresh. Without it the baseline would only ever fall, and a dependency that
            # became slower for good would be held to a fraction of what it can take.
            self._countdown = self._next_probe()
            self._noload = math.inf
            return queue
        if rtt < self._noload:
            self._noload = rtt
        if dropped:
            target = limit * self._backoff
        elif inflight * 2 < limit:
            return limit  # not using half of it: no evidence for more
        else:
            gradient = max(0.5, min(1.0, self._tolerance * self._noload / rtt)) if rtt else 1.0
            target = limit * gradient + queue
        if target < limit:  # shrink smoothly, grow at once
            target = limit * (1 - self._smoothing) + target * self._smoothing
        return max(queue, target)


class LimitCore:
    """The limit, and the window of samples that will update it.

    After the limit goes down (a back-off, a probe), the calls that started before
    keep ending for a while, with the latency (and drops) of the higher limit they
    were admitted under: they are not evidence about the new limit, and are left out of
    the windows, so that one spell of overload backs off once, not once per window.
    """

    __slots__ = (
        "_count",
        "_dropped",
        "_lock",
        "_max",
        "_min",
        "_peak",
        "_since",
        "_state",
        "_total",
        "limit",
    )

    def __init__(self, state: LimitState, initial: int, minimum: int, maximum: int) -> None:
        self._state = state
        self._min = minimum
        self._max = maximum
        self.limit = float(initial)
        self._since = -math.inf  # calls that started before this are ignored
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._count = 0
        self._total = 0.0
        self._peak = 0
        self._dropped = False

    def configure(self, state: LimitState | None, minimum: int, maximum: int, limit: int) -> None:
        """New bounds (and a new algorithm's state, when not None), from ``limit``."""
        with self._lock:
            if state is not None:
                self._state = state
                self._reset()
            self._min, self._max = minimum, maximum
            self.limit = float(limit)

    def sample(self, start: float, end: float, inflight: int, dropped: bool) -> int | None:
        """Count the outcome of a call that ran from ``start`` to ``end``; the new
        (whole) limit when a window ends and the limit's whole part changed, else None."""
        with self._lock:
            if start < self._since:
                return None  # admitted under a higher limit: no evidence about this one
            self._count += 1
            self._total += end - start
            if inflight > self._peak:
                self._peak = inflight
            if dropped:
                self._dropped = True
            limit = self.limit
            if self._count < MIN_WINDOW or self._count < limit:
                return None
            new = self._state.update(limit, self._total / self._count, self._peak, self._dropped)
            self._reset()
            new = min(float(self._max), max(float(self._min), new))
            if new < limit:
                self._since = end
            self.limit = new
            return int(new) if int(new) != int(limit) else None
