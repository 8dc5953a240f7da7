"""The in-process store: each policy's state in this process only (the default)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .._core.breaker import BreakerCore, BreakerSettings, TransitionCallback
from .._core.bucket import BucketCore, LimiterSettings
from .._core.budget import BudgetCore, BudgetSettings
from .._core.bulkhead import BulkheadCore
from .._core.clock import Clock

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
        core, made = self._shared(
            "circuit breaker",
            self._breakers,
            name,
            lambda: BreakerCore(settings, clock, notify),
            settings,
            lambda core: core.settings,
            by="name",
        )
        if not made:
            core.subscribe(notify)
        return core

    def token_bucket(self, key: str | None, settings: LimiterSettings, clock: Clock) -> BucketCore:
        """The bucket of ``key``: limiters given the same key share one bucket (and its
        first limiter's clock); a key of ``None`` gets a private bucket."""
        core, _ = self._shared(
            "token bucket",
            self._buckets,
            key,
            lambda: BucketCore(settings, clock),
            settings,
            lambda core: core.settings,
        )
        return core

    def retry_budget(self, key: str | None, settings: BudgetSettings, clock: Clock) -> BudgetCore:
        """The budget of ``key`` (``None``: a private one)."""
        core, _ = self._shared(
            "retry budget",
            self._budgets,
            key,
            lambda: BudgetCore(settings, clock),
            settings,
            lambda core: core.settings,
        )
        return core

    def bulkhead(self, key: str | None, max_concurrent: int, max_queue: int) -> BulkheadCore:
        """The slots of ``key``: bulkheads given the same key share them (``None``: private)."""
        core, _ = self._shared(
            "bulkhead",
            self._bulkheads,
            key,
            lambda: BulkheadCore(max_concurrent, max_queue),
            f"max_concurrent={max_concurrent}, max_queue={max_queue}",
            lambda core: f"max_concurrent={core.max_concurrent}, max_queue={core.max_queue}",
            of="limits",
        )
        return core

    def _shared(
        self,
        what: str,
        table: dict[str, T],
        key: str | None,
        make: Callable[[], T],
        wanted: object,
        made_with: Callable[[T], object],
        *,
        by: str = "key",
        of: str = "settings",
    ) -> tuple[T, bool]:
        """The state of ``key`` in ``table``, made if new (True; always, for a key of
        None: a private state). An existing one made with other settings than ``wanted``
        is a ``ValueError``: two policies of one key must agree."""
        if key is None:
            return make(), True
        with self._lock:
            core = table.get(key)
            if core is None:
                core = table[key] = make()
                return core, True
        existing = made_with(core)
        if existing != wanted:
            raise ValueError(
                f"{what} {key!r} already exists in this store with other {of} ({existing}); "
                f"give this one another {by} or the same {of}"
            )
        return core, False

    def __repr__(self) -> str:
        return "MemoryStore()"
