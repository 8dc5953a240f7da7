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
from ._ratelimit_core import Decision, LimiterSettings, Reservation, Take

__all__ = ["BreakerBackend", "BreakerStore", "LimiterBackend", "LimiterStore"]


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


class LimiterBackend(Protocol):
    """One token bucket's state, wherever it lives.

    Every request for tokens is one call, which decides from the backend's own clock
    (a shared store: the server's) and answers with a :data:`Decision`: ``None``
    (granted now), a :class:`Reservation` (granted ``delay`` seconds from now, at most
    ``max_wait``; the tokens are taken and later requests queue behind it), or a float
    (refused, nothing taken: the seconds until ``cost`` tokens would be free).
    """

    #: True when the sync methods never block on I/O, so async callers may use them
    #: directly instead of awaiting the ``a``-prefixed twins.
    nonblocking: bool
    #: The bucket's shape; ``configure`` replaces it.
    settings: LimiterSettings

    def acquire(self, cost: float, max_wait: float) -> Decision:
        """Take ``cost`` tokens now, or reserve them if free within ``max_wait`` seconds
        (``math.inf``: however long), or refuse."""
        ...

    def taker(self, cost: float, max_wait: float) -> Take:
        """``acquire`` with these arguments as defaults: the policy calls the result with
        no arguments on every call, so make it cheap (a local backend: one frame)."""
        ...

    def cancel(self, reservation: Reservation) -> None:
        """The holder of ``reservation`` gave up before its slot: give its tokens back,
        without ever letting later grants exceed the bucket's bound."""
        ...

    def available(self) -> float:
        """Tokens free now (fractional; negative while reserved tokens refill)."""
        ...

    def configure(self, settings: LimiterSettings) -> None:
        """Apply a new shape, keeping the tokens now free (capped by the new burst)."""
        ...

    async def aacquire(self, cost: float, max_wait: float) -> Decision:
        """``acquire`` without blocking the event loop. If cancelled, it must not leave a
        reservation behind."""
        ...

    async def acancel(self, reservation: Reservation) -> None: ...


@runtime_checkable
class LimiterStore(Protocol):
    """Something that can hold token-bucket state (``store=`` of TokenBucket)."""

    def token_bucket(
        self, key: str | None, settings: LimiterSettings, clock: Clock
    ) -> LimiterBackend: ...
