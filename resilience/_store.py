"""The protocols between policies and the stores that hold their state.

A policy never imports a store: it asks the store it was given for a *backend* for
one named policy and talks to that. The in-memory backend is the decision core
itself; a shared store (Redis) implements the same protocol with scripts, and may
fall back to a local core when its server is unreachable.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._breaker_core import BreakerMetrics, BreakerSettings, Permit, TransitionCallback
from ._clock import Clock

__all__ = ["BreakerBackend", "BreakerStore"]


class BreakerBackend(Protocol):
    """One breaker's state, wherever it lives."""

    #: True when the sync methods never block on I/O, so async callers may use them
    #: directly instead of awaiting the ``a``-prefixed twins.
    nonblocking: bool
    #: The thresholds in force; ``configure`` replaces them.
    settings: BreakerSettings
    #: A permit any call may use right now without asking (a local backend's closed
    #: state), or None: then call ``acquire``. Read without a lock, on every call.
    standing: Permit | None

    @property
    def state(self) -> str: ...

    def acquire(self) -> Permit | None: ...

    def record(self, permit: Permit, failed: bool, slow: bool) -> None: ...

    def release(self, permit: Permit) -> None: ...

    def retry_after(self) -> float | None:
        """Seconds until a call could be admitted (None: forced open).

        Called right after a rejected acquire, also from async code: answer from what
        that acquire learned, without I/O. The same holds for ``state``.
        """
        ...

    def force(self, action: str) -> None: ...

    def snapshot(self) -> BreakerMetrics: ...

    def configure(self, settings: BreakerSettings) -> None: ...

    async def aacquire(self) -> Permit | None: ...

    async def arecord(self, permit: Permit, failed: bool, slow: bool) -> None: ...

    async def arelease(self, permit: Permit) -> None: ...


@runtime_checkable
class BreakerStore(Protocol):
    """Something that can hold circuit-breaker state (``store=`` of CircuitBreaker)."""

    def circuit_breaker(
        self,
        name: str | None,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> BreakerBackend: ...
