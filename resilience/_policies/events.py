"""Events that policies emit, and the listeners that receive them.

A policy checks ``GLOBAL_LISTENERS or self._listeners`` before it builds an event, so
with nobody listening the hot path pays two truth tests and no allocation.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from .._core.call import CURRENT_CALL

__all__ = ["GLOBAL_LISTENERS", "Event", "Listener", "emit", "listen"]

_log = logging.getLogger("resilience")


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """Something a policy did.

    ``kind`` is the policy kind (``"circuit_breaker"``, ``"retry"``...), ``name`` its
    name, ``type`` what happened. The remaining fields are set when they apply.

    Types by kind:

    - circuit_breaker: ``success``, ``failure``, ``ignored`` (an outcome was recorded;
      ``duration`` set; ``exception`` whenever the call raised, including exceptions
      classified as success or ignored), ``rejected`` (``retry_after``),
      ``state_change`` (``from_state``, ``to_state``).
    - retry: ``retry`` (``attempt`` that failed, ``delay`` before the next one,
      ``exception``), ``give_up`` (``attempt``, ``exception`` or none for a result),
      ``success`` (``attempt`` that succeeded, only after at least one retry).
    - timeout: ``timeout`` (``duration`` = the limit exceeded, ``exception`` = the
      TimeoutExceeded, ``abandoned`` = sync workers still running after their caller
      gave up, None in async code), ``abandoned_finished`` (an abandoned sync call
      ended: ``duration`` = how long it ran, ``exception`` = what it raised, if anything,
      ``abandoned`` = the count after it).
    - token_bucket: ``acquired`` (``delay`` waited, 0.0 when tokens were free),
      ``rejected`` (``retry_after``), ``cancelled`` (a waiter gave its reservation back;
      ``delay`` it had reserved).
    - bulkhead: ``queued`` (no free slot; joined the queue), ``acquired`` (``duration``
      waited in the queue, 0.0 when a slot was free), ``rejected`` (BulkheadFull;
      ``duration`` waited, None when rejected at once), ``cancelled`` (left the queue;
      ``duration`` waited, ``exception`` the cancellation), ``released`` (``duration``
      the slot was held, ``exception`` what the call raised, if anything).
    - fallback: ``fallback`` (the substitute was used; ``exception`` is the call's
      exception, or None when a result triggered it).
    - hedge: ``hedge`` (another attempt started: ``attempt`` its number, ``delay`` waited,
      ``exception`` the failure that started it at once, if any), ``success``
      (``attempt`` that won, ``duration`` its latency), ``give_up`` (``attempt`` = how
      many ran, ``exception`` the last, or none for a result).
    - adaptive_concurrency: a bulkhead's events, and ``limit_change`` (``limit``).
    - adaptive_throttle: ``rejected`` (``probability``).
    - chaos: ``fault`` (``exception``), ``latency`` (``delay``), ``result``.
    - store (a shared store, ``name`` = its prefix): ``unavailable`` (it stopped asking
      Redis after failed calls in a row; ``exception`` = the last failure),
      ``recovered`` (it uses Redis again; ``duration`` = seconds cut off).

    ``host`` (scheme://host:port), ``method`` and ``status`` are set on the events of
    calls made through the HTTP integrations (``resilience.http``), so listeners can
    label what they record by host. ``status`` is the status of the request's latest
    response (None before the first one arrives).

    ``shadow`` is True on every event of a policy in shadow mode (``mode="metrics_only"``):
    its ``rejected`` events are calls it would have rejected and let through, its
    ``state_change`` events transitions of the state it would be in. ``limit`` (the
    concurrency limit of an ``adaptive_concurrency``) and ``probability`` (the rejection
    probability of an ``adaptive_throttle``) are set by the adaptive policies.
    """

    kind: str
    name: str | None
    type: str
    time: float
    attempt: int | None = None
    duration: float | None = None
    delay: float | None = None
    retry_after: float | None = None
    from_state: str | None = None
    to_state: str | None = None
    exception: BaseException | None = None
    abandoned: int | None = None
    host: str | None = None
    method: str | None = None
    status: int | None = None
    shadow: bool = False
    limit: int | None = None
    probability: float | None = None

    # Written out rather than generated: the generated __init__ of a frozen dataclass
    # sets each field through ``object.__setattr__`` (a name lookup per field), which
    # made building an event half the cost of listening to a call. The slots' own
    # setters do the same work in half the time.
    def __init__(
        self,
        kind: str,
        name: str | None,
        type: str,
        time: float,
        attempt: int | None = None,
        duration: float | None = None,
        delay: float | None = None,
        retry_after: float | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        exception: BaseException | None = None,
        abandoned: int | None = None,
        host: str | None = None,
        method: str | None = None,
        status: int | None = None,
        shadow: bool = False,
        limit: int | None = None,
        probability: float | None = None,
    ) -> None:
        (
            set_kind,
            set_name,
            set_type,
            set_time,
            set_attempt,
            set_duration,
            set_delay,
            set_retry_after,
            set_from_state,
            set_to_state,
            set_exception,
            set_abandoned,
            set_host,
            set_method,
            set_status,
            set_shadow,
            set_limit,
            set_probability,
        ) = _SETTERS
        set_kind(self, kind)
        set_name(self, name)
        set_type(self, type)
        set_time(self, time)
        set_attempt(self, attempt)
        set_duration(self, duration)
        set_delay(self, delay)
        set_retry_after(self, retry_after)
        set_from_state(self, from_state)
        set_to_state(self, to_state)
        set_exception(self, exception)
        set_abandoned(self, abandoned)
        set_host(self, host)
        set_method(self, method)
        set_status(self, status)
        set_shadow(self, shadow)
        set_limit(self, limit)
        set_probability(self, probability)


_SETTERS: tuple[Callable[[Event, Any], None], ...] = tuple(
    getattr(Event, field.name).__set__ for field in fields(Event)
)
_set_host, _set_method, _set_status = _SETTERS[12:15]


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
