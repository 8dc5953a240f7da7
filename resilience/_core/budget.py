"""The retry budget's decision core: calls and retries in a time window.

No I/O: the in-process budget, and what a shared store falls back to.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .clock import Clock
from .windows import TimeWindow

__all__ = ["BudgetCore", "BudgetSettings"]


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """A retry budget's shape, validated by :class:`RetryBudget`."""

    ratio: float
    min_per_second: float
    window: float

    def allowance(self, calls: float) -> float:
        """Retries allowed in a window that saw ``calls`` calls."""
        return self.ratio * calls + self.min_per_second * self.window


class BudgetCore:
    """One budget's counts in this process: a time window of calls and retries."""

    nonblocking = True

    def __init__(self, settings: BudgetSettings, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._now = clock.monotonic
        self.settings = settings
        # In this window a "failure" is a retry; calls and retries both count as calls.
        self._events = TimeWindow(settings.window, self._now)

    def record_call(self) -> None:
        with self._lock:
            self._events.add(False, False)

    def try_retry(self) -> bool:
        with self._lock:
            total, retries, _ = self._events.totals()
            if retries + 1 > self.settings.allowance(total - retries):
                return False
            self._events.add(True, False)
            return True

    def configure(self, settings: BudgetSettings) -> None:
        """New ratios; the counts are kept unless the window's length changes."""
        with self._lock:
            if settings.window != self.settings.window:
                self._events = TimeWindow(settings.window, self._now)
            self.settings = settings
