"""The in-process store: each policy's state in this process only (the default)."""

from __future__ import annotations

from .._breaker_core import BreakerCore, BreakerSettings, TransitionCallback
from .._clock import Clock

__all__ = ["MemoryStore"]


class MemoryStore:
    """State in this process. ``CircuitBreaker(store=None)`` behaves exactly like
    ``CircuitBreaker(store=MemoryStore())``; name it to make the choice explicit."""

    def circuit_breaker(
        self,
        name: str | None,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> BreakerCore:
        return BreakerCore(settings, clock, notify)

    def __repr__(self) -> str:
        return "MemoryStore()"
