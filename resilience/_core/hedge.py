"""Hedging's decision core: one call's race between attempts, and the learned delay.

``Race`` holds one call's state and makes every decision: when to launch another
attempt, which outcome wins, when the call has lost. The drivers in ``_hedge`` only
start attempts (tasks in a task group, or worker threads) and wait for outcomes (an
event, or a queue with a timeout). ``Latencies`` keeps recent attempt latencies and
the quantile of them that serves as the hedging delay.

No I/O, no time, nothing sync- or async-specific.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .classify import judge

__all__ = ["FATAL", "LOST", "NEXT", "WAIT", "WON", "Latencies", "Outcome", "Race"]

#: What a driver does after an outcome.
WON = "won"  # return (or raise) this outcome; cancel the others
FATAL = "fatal"  # an exception hedging does not handle: raise it; cancel the others
NEXT = "next"  # a handled failure, and attempts left: launch the next one now
WAIT = "wait"  # a handled failure; others still run: wait for them
LOST = "lost"  # every attempt failed: give the last failure to the caller


class Outcome:
    """How one attempt ended: ``exception`` (None when it returned ``result``), and how
    long it took on the policy's clock."""

    __slots__ = ("attempt", "duration", "exception", "result")

    def __init__(
        self, attempt: int, exception: BaseException | None, result: Any, duration: float
    ) -> None:
        self.attempt = attempt
        self.exception = exception
        self.result = result
        self.duration = duration


class Race:
    """One hedged call: up to ``attempts`` attempts, the first good outcome wins."""

    __slots__ = ("_attempts", "_hedge_if_result", "_hedge_on", "last", "launched", "running")

    def __init__(
        self,
        attempts: int,
        hedge_on: Callable[[BaseException], bool],
        hedge_if_result: Callable[[Any], bool] | None,
    ) -> None:
        self._attempts = attempts
        self._hedge_on = hedge_on
        self._hedge_if_result = hedge_if_result
        self.launched = 0
        self.running = 0
        #: The latest handled failure: what the caller gets if every attempt fails.
        self.last: Outcome | None = None

    @property
    def can_launch(self) -> bool:
        return self.launched < self._attempts

    def launch(self) -> int:
        """Count a new attempt; returns its number (1 for the first)."""
        self.launched += 1
        self.running += 1
        return self.launched

    def judge(self, outcome: Outcome) -> str:
        """What to do after ``outcome``: WON, FATAL, NEXT, WAIT or LOST."""
        self.running -= 1
        exc = outcome.exception
        if exc is None:
            check = self._hedge_if_result
            if check is None or not judge("hedge_if_result", check, outcome.result, False):
                return WON
        elif not isinstance(exc, Exception) or not judge("hedge_on", self._hedge_on, exc, False):
            return FATAL
        self.last = outcome
        if self.can_launch:
            return NEXT
        return WAIT if self.running else LOST


class Latencies:
    """The latest ``samples`` latencies of winning attempts, and their ``quantile``:
    the hedging delay, once ``min_samples`` have been seen (``initial`` until then).

    The quantile is recomputed every ``samples // 10`` new latencies (sorting a copy of
    the window), not on every call.
    """

    __slots__ = ("_every", "_lock", "_min_samples", "_quantile", "_since", "_window", "delay")

    def __init__(self, quantile: float, samples: int, min_samples: int, initial: float) -> None:
        self._quantile = quantile
        self._window: deque[float] = deque(maxlen=samples)
        self._min_samples = min_samples
        self._every = max(1, samples // 10)
        self._since = 0
        self._lock = threading.Lock()
        self.delay = initial

    def record(self, seconds: float) -> None:
        with self._lock:
            window = self._window
            window.append(seconds)
            self._since += 1
            if len(window) >= self._min_samples and (
                self._since >= self._every or len(window) == self._min_samples
            ):
                self._since = 0
                ordered = sorted(window)
                # Nearest rank: the smallest latency at least ``quantile`` of them reach.
                rank = max(1, math.ceil(self._quantile * len(ordered)))
                self.delay = ordered[rank - 1]

    def __len__(self) -> int:
        return len(self._window)
