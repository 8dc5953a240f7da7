"""RetryBudget: caps retries at a fraction of calls, so retries cannot multiply load."""

from __future__ import annotations

import threading
from datetime import timedelta

from ._clock import SYSTEM_CLOCK, Clock
from ._validation import check_duration, check_fraction, check_number
from ._windows import TimeWindow

__all__ = ["RetryBudget"]


class RetryBudget:
    """Over the last ``window`` seconds, allow retries up to ``ratio`` of the calls made,
    plus ``min_per_second`` retries per second so that a quiet service can still retry.

    Give one budget to several Retry policies to share it. This budget lives in the
    process; a store-backed one shares it across a fleet.
    """

    def __init__(
        self,
        ratio: float = 0.1,
        min_per_second: float = 10.0,
        *,
        window: float | timedelta = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.ratio = check_fraction("ratio", ratio)
        self.min_per_second = check_number("min_per_second", min_per_second)
        if self.min_per_second < 0:
            raise ValueError(f"min_per_second must be 0 or more, got {min_per_second!r}")
        self.window = check_duration("window", window, positive=True)
        self._lock = threading.Lock()
        # In this window a "failure" is a retry; calls and retries both count as calls.
        self._events = TimeWindow(self.window, (clock or SYSTEM_CLOCK).monotonic)

    def record_call(self) -> None:
        with self._lock:
            self._events.add(False, False)

    def try_retry(self) -> bool:
        with self._lock:
            total, retries, _ = self._events.totals()
            calls = total - retries
            if retries + 1 > self.ratio * calls + self.min_per_second * self.window:
                return False
            self._events.add(True, False)
            return True

    def _described(self) -> dict[str, float]:
        """As ``describe()`` and config files write it."""
        return {"ratio": self.ratio, "min_per_second": self.min_per_second, "window": self.window}

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_per_second={self.min_per_second!r}, "
            f"window={self.window!r})"
        )
