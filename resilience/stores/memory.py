"""The in-process store: each policy's state in this process only (the default)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .._breaker_core import BreakerCore, BreakerSettings, TransitionCallback
from .._budget_core import BudgetCore, BudgetSettings
from .._bulkhead_core import BulkheadCore
from .._clock import Clock
from .._ratelimit_core import BucketCore, LimiterSettings

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore:
    """State in this process, shared by name like a shared store shares it by key.

    Breakers given the same ``MemoryStore`` and the same name share one state (the
    first one's settings; a later one with other settings is refused); unnamed
    breakers always get their own. ``CircuitBreaker(store=None)`` gets a private state,
    as with a fresh ``MemoryStore``. Token buckets, retry budgets and bulkheads are
    shared the same way, by key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}
        self._buckets: dict[str, BucketCore] = {}
        self._budgets: dict[str, BudgetCore] = {}
        self._bulkheads: dict[str, BulkheadCore] = {}

    def circuit_breaker(
        self,
        name: str | None,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> BreakerCore:
        if name is None:
            return BreakerCore(settings, clock, notify)
        core, made = self._shared(
            self._breakers,
            name,
            lambda: BreakerCore(settings, clock, notify),
            lambda core: core.settings == settings,
            lambda core: (
                f"circuit breaker {name!r} already exists in this store with other "
                f"settings ({core.settings}); give this one another name or the same settings"
            ),
        )
        if not made:
            core.subscribe(notify)
        return core

    def token_bucket(self, key: str | None, settings: LimiterSettings, clock: Clock) -> BucketCore:
        """The bucket of ``key``: limiters given the same key share one bucket (and its
        first limiter's clock); a key of ``None`` gets a private bucket."""
        if key is None:
            return BucketCore(settings, clock)
        core, _ = self._shared(
            self._buckets,
            key,
            lambda: BucketCore(settings, clock),
            lambda core: core.settings == settings,
            lambda core: (
                f"token bucket {key!r} already exists in this store with other "
                f"settings ({core.settings}); give this one another key or the same settings"
            ),
        )
        return core

    def retry_budget(self, key: str | None, settings: BudgetSettings, clock: Clock) -> BudgetCore:
        """The budget of ``key`` (``None``: a private one)."""
        if key is None:
            return BudgetCore(settings, clock)
        core, _ = self._shared(
            self._budgets,
            key,
            lambda: BudgetCore(settings, clock),
            lambda core: core.settings == settings,
            lambda core: (
                f"retry budget {key!r} already exists in this store with other "
                f"settings ({core.settings}); give this one another key or the same settings"
            ),
        )
        return core

    def bulkhead(self, key: str | None, max_concurrent: int, max_queue: int) -> BulkheadCore:
        """The slots of ``key``: bulkheads given the same key share them (``None``: private)."""
        if key is None:
            return BulkheadCore(max_concurrent, max_queue)
        core, _ = self._shared(
            self._bulkheads,
            key,
            lambda: BulkheadCore(max_concurrent, max_queue),
            lambda core: (core.max_concurrent, core.max_queue) == (max_concurrent, max_queue),
            lambda core: (
                f"bulkhead {key!r} already exists in this store with other limits "
                f"(max_concurrent={core.max_concurrent}, max_queue={core.max_queue}); "
                "give this one another key or the same limits"
            ),
        )
        return core

    def _shared(
        self,
        table: dict[str, T],
        key: str,
        make: Callable[[], T],
        same: Callable[[T], bool],
        conflict: Callable[[T], str],
    ) -> tuple[T, bool]:
        """The state of ``key`` in ``table``, made if new (True); a ``ValueError`` saying
        ``conflict`` if it exists and is not the ``same``."""
        with self._lock:
            core = table.get(key)
            if core is None:
                core = table[key] = make()
                return core, True
        if not same(core):
            raise ValueError(conflict(core))
        return core, False

    def __repr__(self) -> str:
        return "MemoryStore()"
