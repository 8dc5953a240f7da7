"""RetryBudget: caps retries at a fraction of calls, so retries cannot multiply load.

The decisions belong to a backend: :class:`BudgetCore` (in this process, the default)
or what a store's ``retry_budget`` hands out (a shared store: the fleet's budget).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from .._core.budget import BudgetCore, BudgetSettings
from .._core.clock import Clock
from .._core.protocols import BudgetBackend, BudgetStore
from .._core.validation import (
    check_clock,
    check_fraction,
    check_name,
    check_number,
    check_window,
    show,
)

__all__ = ["RetryBudget"]


class RetryBudget:
    """Over the last ``window`` seconds, allow retries up to ``ratio`` of the calls made,
    plus ``min_per_second`` retries per second so that a quiet service can still retry.

    Give one budget to several Retry policies to share it. Without a store the budget
    lives in this process; with ``store=`` (and a ``key``, the name every instance
    shares) it is the fleet's: retries across every process stay under ``ratio`` of
    the calls of every process, plus the floor (see the docs page "Sharing state
    across instances").
    """

    def __init__(
        self,
        ratio: float = 0.1,
        min_per_second: float = 10.0,
        *,
        window: float | timedelta = 10.0,
        store: BudgetStore | None = None,
        key: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        settings = _settings(ratio, min_per_second, window)
        clock = check_clock(clock)
        #: The name of the shared state (None: the budget is private).
        self.key = check_name(key, "key") if key is not None else None
        if store is None:
            backend: BudgetBackend = BudgetCore(settings, clock)
        elif isinstance(store, BudgetStore):
            backend = store.retry_budget(self.key, settings, clock)
        else:
            raise TypeError(f"store must be a retry budget store (or None), got {show(store)}")
        self._backend = backend
        self.store = store

    @property
    def settings(self) -> BudgetSettings:
        return self._backend.settings

    @property
    def ratio(self) -> float:
        """Retries allowed per call made."""
        return self._backend.settings.ratio

    @ratio.setter
    def ratio(self, value: float) -> None:
        self._change(ratio=check_fraction("ratio", value))

    @property
    def min_per_second(self) -> float:
        """Retries allowed per second on top of the ratio (the fleet's, when shared)."""
        return self._backend.settings.min_per_second

    @min_per_second.setter
    def min_per_second(self, value: float) -> None:
        self._change(min_per_second=_check_floor(value))

    @property
    def window(self) -> float:
        """Seconds of calls and retries the budget looks back over."""
        return self._backend.settings.window

    def _change(self, **changes: float) -> None:
        settings = dataclasses.replace(self._backend.settings, **changes)
        if settings != self._backend.settings:
            self._backend.configure(settings)

    def record_call(self) -> None:
        """Count one call (Retry does it once per call, before the first attempt)."""
        self._backend.record_call()

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it now."""
        return self._backend.try_retry()

    def _described(self) -> dict[str, float]:
        """As ``describe()`` and config files write it."""
        return {"ratio": self.ratio, "min_per_second": self.min_per_second, "window": self.window}

    def __repr__(self) -> str:
        shared = "" if self.store is None else f", key={self.key!r}, store={self.store!r}"
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_per_second={self.min_per_second!r}, "
            f"window={self.window!r}{shared})"
        )


def _check_floor(value: object) -> float:
    floor = check_number("min_per_second", value)
    if floor < 0:
        raise ValueError(f"min_per_second must be 0 or more, got {value!r}")
    return floor


def _settings(ratio: object, min_per_second: object, window: object) -> BudgetSettings:
    return BudgetSettings(
        ratio=check_fraction("ratio", ratio),
        min_per_second=_check_floor(min_per_second),
        window=check_window("window", window),
    )
