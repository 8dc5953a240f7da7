"""Events that policies emit, and the listeners that receive them.

An :class:`Event` has a common part (which policy, what happened, when, and for calls
made through the HTTP integrations, to which host) and, for the types that carry more,
``details``: a small frozen dataclass whose class says what they are
(:class:`StateChange`, :class:`RetryScheduled`...), with fields named for what they
mean.

A policy checks ``GLOBAL_LISTENERS or self._listeners`` before it builds an event, so
with nobody listening the hot path pays two truth tests and no allocation.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeAlias, TypeVar

from .._core.call import CURRENT_CALL

__all__ = [
    "GLOBAL_LISTENERS",
    "AbandonedFinished",
    "Acquired",
    "BulkheadRejected",
    "CallOutcome",
    "Event",
    "EventDetails",
    "GaveUp",
    "HedgeLaunched",
    "HedgeWon",
    "LatencyInjected",
    "LimitChanged",
    "Listener",
    "Rejected",
    "Released",
    "ReservationCancelled",
    "RetryScheduled",
    "RetrySucceeded",
    "StateChange",
    "StoreRecovered",
    "ThrottleRejected",
    "TimedOut",
    "WaitCancelled",
    "emit",
    "listen",
]

_log = logging.getLogger("resilience")

_C = TypeVar("_C", bound=type)


def _fast_init(cls: _C) -> _C:
    """Give a frozen slots dataclass an ``__init__`` that sets its slots directly.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__`` (a name lookup per field), which made building an event half
    the cost of listening to a call. This one has the same signature (defaults
    included) and calls each slot's own setter, in half the time; the instances stay
    frozen to everybody else.
    """
    names = [field.name for field in fields(cls)]
    generated = cls.__dict__["__init__"]
    code = generated.__code__
    positional = list(code.co_varnames[1 : code.co_argcount])
    keyword = list(code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])
    if sorted(positional + keyword) != sorted(names):  # an InitVar, a field(init=False)...
        raise TypeError(f"{cls.__name__}: _fast_init handles plain fields only")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    namespace: dict[str, Any] = {f"_set_{name}": cls.__dict__[name].__set__ for name in names}
    exec(f"def __init__({params}) -> None:\n{body}", namespace)
    init = namespace["__init__"]
    init.__defaults__ = generated.__defaults__
    init.__kwdefaults__ = generated.__kwdefaults__
    init.__annotations__ = generated.__annotations__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = generated.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls


class EventDetails:
    """Base class of the ``details`` an event carries; see each subclass."""

    __slots__ = ()


# -- details, by the policies that send them ------------------------------------------


@_fast_init
@dataclass(frozen=True, slots=True)
class CallOutcome(EventDetails):
    """A circuit breaker recorded a call's outcome (``success``, ``failure``,
    ``ignored``)."""

    #: Seconds the call took; None for a call that started before anybody listened.
    duration: float | None


@_fast_init
@dataclass(frozen=True, slots=True)
class Rejected(EventDetails):
    """A circuit breaker (``CircuitOpen``) or a token bucket (``RateLimited``) refused
    a call (in shadow mode: would have refused it)."""

    #: Seconds until a call may be admitted: the error's ``retry_after`` (None for a
    #: breaker forced open: only a person can close it).
    retry_after: float | None


@_fast_init
@dataclass(frozen=True, slots=True)
class StateChange(EventDetails):
    """A circuit breaker changed state (``"closed"``, ``"open"``, ``"half_open"``,
    ``"forced_open"``, ``"disabled"``)."""

    from_state: str
    to_state: str


@_fast_init
@dataclass(frozen=True, slots=True)
class RetryScheduled(EventDetails):
    """A retry's attempt failed and another one follows after ``delay``."""

    #: The attempt that failed (1 for the first).
    attempt: int
    #: Seconds to wait before the next attempt.
    delay: float


@_fast_init
@dataclass(frozen=True, slots=True)
class RetrySucceeded(EventDetails):
    """A retry's attempt succeeded after at least one retry."""

    #: The attempt that succeeded.
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class GaveUp(EventDetails):
    """A retry (attempts, deadline or budget ran out) or a hedge (every attempt
    failed) gave up."""

    #: The last attempt, which is how many ran.
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class TimedOut(EventDetails):
    """A call ran past a timeout's limit."""

    #: The limit exceeded, in seconds (the ``TimeoutExceeded``'s ``timeout``).
    limit: float
    #: Sync: worker threads still running after their caller gave up; None in async code.
    abandoned: int | None


@_fast_init
@dataclass(frozen=True, slots=True)
class AbandonedFinished(EventDetails):
    """A sync call whose caller a timeout stopped waiting for has ended."""

    #: Seconds it ran.
    duration: float
    #: Worker threads still abandoned after it.
    abandoned: int


@_fast_init
@dataclass(frozen=True, slots=True)
class Acquired(EventDetails):
    """A call got its tokens (token bucket) or its slot (bulkhead, adaptive
    concurrency)."""

    #: Seconds it waited for them (a token bucket: waits, from now), 0.0 when free.
    waited: float


#: The details of every call that got its tokens or slot without waiting (immutable,
#: so one instance serves them all and the hot path allocates one object less).
NO_WAIT = Acquired(0.0)


@_fast_init
@dataclass(frozen=True, slots=True)
class ReservationCancelled(EventDetails):
    """A token bucket's waiter was cancelled and gave its reserved tokens back."""

    #: The wait it had reserved, in seconds.
    delay: float


@_fast_init
@dataclass(frozen=True, slots=True)
class BulkheadRejected(EventDetails):
    """A bulkhead or an adaptive concurrency limit refused a call: ``BulkheadFull``
    (in shadow mode: would have refused it)."""

    #: Seconds it waited in the queue first; None when rejected at once.
    waited: float | None


@_fast_init
@dataclass(frozen=True, slots=True)
class WaitCancelled(EventDetails):
    """A call queued in a bulkhead was cancelled or interrupted (the event's
    ``exception``) and left the queue."""

    #: Seconds it waited.
    waited: float


@_fast_init
@dataclass(frozen=True, slots=True)
class Released(EventDetails):
    """A call freed its bulkhead slot (the event's ``exception``: what it raised)."""

    #: Seconds it held the slot; None for a slot taken before anybody listened.
    held: float | None


@_fast_init
@dataclass(frozen=True, slots=True)
class LimitChanged(EventDetails):
    """An adaptive concurrency limit changed."""

    #: The new limit: how many calls it admits at once.
    limit: int


@_fast_init
@dataclass(frozen=True, slots=True)
class ThrottleRejected(EventDetails):
    """An adaptive throttle rejected a call locally: ``Throttled`` (in shadow mode:
    would have rejected it)."""

    #: The probability of a local rejection when it decided.
    probability: float


@_fast_init
@dataclass(frozen=True, slots=True)
class HedgeLaunched(EventDetails):
    """A hedge started another attempt (the event's ``exception``: the failure that
    started it at once, if any)."""

    #: Its number (2 for the first hedge).
    attempt: int
    #: Seconds waited since the previous attempt; 0.0 after a failed one.
    delay: float


@_fast_init
@dataclass(frozen=True, slots=True)
class HedgeWon(EventDetails):
    """One of a hedge's attempts won the race."""

    #: The winning attempt (1 for the first).
    attempt: int
    #: Its latency, in seconds.
    duration: float


@_fast_init
@dataclass(frozen=True, slots=True)
class LatencyInjected(EventDetails):
    """A chaos policy waits before calling."""

    #: Seconds injected.
    delay: float


@_fast_init
@dataclass(frozen=True, slots=True)
class StoreRecovered(EventDetails):
    """A shared store reaches Redis again and uses the shared state."""

    #: Seconds it was cut off.
    outage: float


# -- the event --------------------------------------------------------------------------


@_fast_init
@dataclass(frozen=True, slots=True)
class Event:
    """Something a policy did.

    ``kind`` is the policy kind (``"circuit_breaker"``, ``"retry"``...; ``"store"`` for
    a shared store), ``name`` its name (a store's: its prefix), ``type`` what happened,
    ``time`` the policy's ``clock.monotonic()`` then. ``details`` holds what is
    particular to the type, as an :class:`EventDetails` subclass (None for types with
    nothing more to say); ``exception`` the exception involved, if any.

    Types by kind, with their details:

    - circuit_breaker: ``success``, ``failure``, ``ignored`` (:class:`CallOutcome`;
      ``exception`` whenever the call raised, including exceptions classified as success
      or ignored), ``rejected`` (:class:`Rejected`), ``state_change``
      (:class:`StateChange`).
    - retry: ``retry`` (:class:`RetryScheduled`, ``exception`` the failure or None for a
      result), ``give_up`` (:class:`GaveUp`, ``exception`` or None for a result),
      ``success`` (:class:`RetrySucceeded`, only after at least one retry).
    - timeout: ``timeout`` (:class:`TimedOut`, ``exception`` the TimeoutExceeded),
      ``abandoned_finished`` (:class:`AbandonedFinished`, ``exception`` what the
      abandoned call raised, if anything).
    - token_bucket: ``acquired`` (:class:`Acquired`), ``rejected`` (:class:`Rejected`),
      ``cancelled`` (:class:`ReservationCancelled`).
    - bulkhead: ``queued`` (no details), ``acquired`` (:class:`Acquired`), ``rejected``
      (:class:`BulkheadRejected`), ``cancelled`` (:class:`WaitCancelled`, ``exception``
      the cancellation), ``released`` (:class:`Released`, ``exception`` what the call
      raised, if anything).
    - fallback: ``fallback`` (no details; ``exception`` the call's, or None when a
      result triggered it).
    - hedge: ``hedge`` (:class:`HedgeLaunched`, ``exception`` the failure that started
      it at once, if any), ``success`` (:class:`HedgeWon`), ``give_up``
      (:class:`GaveUp`, ``exception`` the last, or None for a result).
    - adaptive_concurrency: a bulkhead's events, and ``limit_change``
      (:class:`LimitChanged`).
    - adaptive_throttle: ``rejected`` (:class:`ThrottleRejected`).
    - chaos: ``fault`` (no details; ``exception``), ``latency``
      (:class:`LatencyInjected`), ``result`` (no details).
    - store: ``unavailable`` (no details; it stopped asking Redis after failed calls in
      a row, ``exception`` the last failure), ``recovered`` (:class:`StoreRecovered`).

    ``shadow`` is True on every event of a policy in shadow mode (``mode="metrics_only"``):
    its ``rejected`` events are calls it would have rejected and let through, its
    ``state_change`` events transitions of the state it would be in.

    ``host`` (scheme://host:port), ``method`` and ``status`` are set on the events of
    calls made through the HTTP integrations (``resilience.http``), so listeners can
    label what they record by host. ``status`` is the status of the request's latest
    response (None before the first one arrives).
    """

    kind: str
    name: str | None
    type: str
    time: float
    details: EventDetails | None = None
    exception: BaseException | None = None
    shadow: bool = False
    host: str | None = None
    method: str | None = None
    status: int | None = None


_set_host = Event.__dict__["host"].__set__
_set_method = Event.__dict__["method"].__set__
_set_status = Event.__dict__["status"].__set__


Listener: TypeAlias = Callable[[Event], object]

#: Listeners that see every policy's events. Mutated in place, never rebound, so
#: policies can hold a reference to it.
GLOBAL_LISTENERS: list[Listener] = []


#: Everything that keeps a flag derived from the listeners (policies with a hot path):
#: told through ``_listeners_changed()`` whenever global listeners come or go.
WATCHERS: weakref.WeakSet[Any] = weakref.WeakSet()


def listen(listener: Listener) -> Callable[[], None]:
    """Send every policy's events to ``listener``; returns a function that stops it."""
    if not callable(listener):
        raise TypeError(f"listener must be callable, got {listener!r}")
    return _subscribe(GLOBAL_LISTENERS, listener, _tell_watchers)


def _tell_watchers() -> None:
    for watcher in list(WATCHERS):
        watcher._listeners_changed()


def _subscribe(
    listeners: list[Listener], listener: Listener, changed: Callable[[], None]
) -> Callable[[], None]:
    listeners.append(listener)
    changed()
    done = False

    def unsubscribe() -> None:
        # Only the first call removes (one entry of) the listener: calling it again must
        # not remove another subscription of the same listener.
        nonlocal done
        if not done:
            done = True
            with contextlib.suppress(ValueError):
                listeners.remove(listener)
            changed()

    return unsubscribe


def emit(local: Sequence[Listener], event: Event) -> None:
    """Deliver ``event``; a listener that raises is logged, never propagated to the call.

    Inside a call made by an integration, the event gets the call's host, method and
    status."""
    call = CURRENT_CALL.get()
    if call is not None and event.host is None:
        # The event was built for this delivery and nobody else holds it yet: fill in
        # place through the slots' setters rather than copying a frozen instance.
        _set_host(event, call.host)
        _set_method(event, call.method)
        _set_status(event, call.status)
    for listener in (*GLOBAL_LISTENERS, *local):
        try:
            listener(event)
        except Exception:
            _log.exception("resilience event listener %r failed on %r", listener, event)
