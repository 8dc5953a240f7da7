"""The protocols between policies and the stores that hold their state.

A policy never imports a store: it asks the store it was given for a *backend* for
one named policy and talks to that. The in-memory backend is the decision core
itself; a shared store (Redis) implements the same protocol with scripts, and may
fall back to a local core when its server is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from .breaker import BreakerMetrics, BreakerSettings, Permit, TransitionCallback
from .bucket import Decision, LimiterSettings, Reservation, Take
from .budget import BudgetSettings
from .bulkhead import Waiter
from .clock import Clock

__all__ = [
    "BreakerBackend",
    "BreakerStore",
    "BudgetBackend",
    "BudgetStore",
    "BulkheadBackend",
    "BulkheadStore",
    "LimiterBackend",
    "LimiterStore",
]

W = TypeVar("W", bound=Waiter)


class BreakerBackend(Protocol):
    """One breaker's state, wherever it lives."""

    #: True when the sync methods never block on I/O, so async callers may use them
    #: directly instead of awaiting the ``a``-prefixed twins.
    nonblocking: bool
    #: The thresholds in force; ``configure`` replaces them.
    settings: BreakerSettings
    #: A permit any call may use right now without asking (a local backend's closed
    #: state), or None: then call ``acquire``. Read without a lock, on every call.
    #: Outcomes of a standing permit go to the sync ``record``/``release``, also from
    #: async code, so those must not block on I/O for it (``nonblocking`` or not).
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


class BudgetBackend(Protocol):
    """One retry budget's counts, wherever they live. Never blocks on I/O: a shared
    store decides from what it last learned and reports in the background."""

    #: The ratios in force; ``configure`` replaces them.
    settings: BudgetSettings

    def record_call(self) -> None: ...

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it now (False: refused, nothing spent)."""
        ...

    def configure(self, settings: BudgetSettings) -> None: ...


@runtime_checkable
class BudgetStore(Protocol):
    """Something that can hold a retry budget (``store=`` of RetryBudget)."""

    def retry_budget(
        self, key: str | None, settings: BudgetSettings, clock: Clock
    ) -> BudgetBackend: ...


class BulkheadBackend(Protocol):
    """One bulkhead's slots and queue, wherever the slots live.

    The in-process backend is ``_bulkhead_core.BulkheadCore``, whose docstring states
    the rules; a shared store keeps the slots elsewhere and the queue here. Slots are
    interchangeable: ``release`` gives back one of the slots taken, not a given one.
    The bulkhead sleeps and wakes its queued callers itself (``Waiter``): a backend
    grants a slot to a waiter by setting ``granted`` and calling ``wake()``, from any
    thread.
    """

    #: True when ``try_acquire`` never blocks on I/O, so async callers may use it
    #: directly instead of awaiting ``atry_acquire``.
    nonblocking: bool
    max_concurrent: int
    max_queue: int

    @property
    def in_flight(self) -> int:
        """Slots taken by this process's calls."""
        ...

    @property
    def queued(self) -> int: ...

    def try_acquire(self) -> bool:
        """Take a slot if one is free now and nobody here waits."""
        ...

    def admit(self, make_waiter: Callable[[], W]) -> W | bool:
        """After ``try_acquire`` failed: True (a slot was taken after all), False (the
        queue is full: reject), or a queued waiter (built by ``make_waiter``) to sleep
        on. Never blocks on I/O."""
        ...

    def withdraw(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out of the queue; True if it was granted a slot meanwhile."""
        ...

    def release(self) -> None:
        """Give back one slot. Never blocks on I/O (a shared store may finish in the
        background), so a cancelled caller frees its slot at once."""
        ...

    def overdraw(self) -> int:
        """Shadow mode: take a slot even when none is free; how many calls are over the
        limit now (0: a slot was free after all)."""
        ...

    def resize(self, max_concurrent: int, max_queue: int) -> None: ...

    async def atry_acquire(self) -> bool:
        """``try_acquire`` without blocking the event loop."""
        ...


@runtime_checkable
class BulkheadStore(Protocol):
    """Something that can hold a bulkhead's slots (``store=`` of Bulkhead)."""

    def bulkhead(self, key: str | None, max_concurrent: int, max_queue: int) -> BulkheadBackend: ...
