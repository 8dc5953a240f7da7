"""The in-process store: each policy's state in this process only (the default)."""

from __future__ import annotations

import threading

from .._breaker_core import BreakerCore, BreakerSettings, TransitionCallback
from .._clock import Clock

__all__ = ["MemoryStore"]


class MemoryStore:
    """State in this process, shared by name like a shared store shares it by key.

    Breakers given the same ``MemoryStore`` and the same name share one state (the
    first one's settings; a later one with other settings is refused); unnamed
    breakers always get their own. ``CircuitBreaker(store=None)`` gets a private state,
    as with a fresh ``MemoryStore``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerCore] = {}

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

    def __repr__(self) -> str:
        return "MemoryStore()"
