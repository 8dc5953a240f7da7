"""The in-process store: each policy's state in this process only (the default)."""

from __future__ import annotations

import threading

from .._breaker_core import BreakerCore, BreakerSettings, TransitionCallback
from .._clock import Clock
from .._ratelimit_core import BucketCore, LimiterSettings

__all__ = ["MemoryStore"]


class MemoryStore:
    """State in this process, shared by name like a shared store shares it by key.

    Breakers given the same ``MemoryStore`` and the same name share one state (the
    first one's settings; a later one with other settings is refused); unnamed
    breakers always get their own. ``CircuitBreaker(store=None)`` gets a private state,
    as with a fresh ``MemoryStore``. Token buckets are shared the same way, by key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}
        self._buckets: dict[str, BucketCore] = {}

    def circuit_breaker(
        self,
        name: str | None,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> BreakerCore:
        if name is None:
            return BreakerCore(settings, clock, notify)
        with self._lock:
            core = self._breakers.get(name)
            if core is None:
                core = self._breakers[name] = BreakerCore(settings, clock, notify)
                return core
        if core.settings != settings:
            raise ValueError(
                f"circuit breaker {name!r} already exists in this store with other settings "
                f"({core.settings}); give this one another name or the same settings"
            )
        core.subscribe(notify)
        return core

    def token_bucket(self, key: str | None, settings: LimiterSettings, clock: Clock) -> BucketCore:
        """The bucket of ``key``: limiters given the same key share one bucket (and its
        first limiter's clock); a key of ``None`` gets a private bucket."""
        if key is None:
            return BucketCore(settings, clock)
        with self._lock:
            core = self._buckets.get(key)
            if core is None:
                core = self._buckets[key] = BucketCore(settings, clock)
                return core
        if core.settings != settings:
            raise ValueError(
                f"token bucket {key!r} already exists in this store with other settings "
                f"({core.settings}); give this one another key or the same settings"
            )
        return core

    def __repr__(self) -> str:
        return "MemoryStore()"
