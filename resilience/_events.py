"""Events that policies emit, and the listeners that receive them.

A policy checks ``GLOBAL_LISTENERS or self._listeners`` before it builds an event, so
with nobody listening the hot path pays two truth tests and no allocation.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from ._call import CURRENT_CALL

__all__ = ["GLOBAL_LISTENERS", "Event", "Listener", "emit", "listen"]

_log = logging.getLogger("resilience")


@dataclass(frozen=True, slots=True)
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

    ``host`` (scheme://host:port), ``method`` and ``status`` are set on the events of
    calls made through the HTTP integrations (``resilience.http``), so listeners can
    label what they record by host. ``status`` is the status of the request's latest
    response (None before the first one arrives).
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
        event = replace(event, host=call.host, method=call.method, status=call.status)
    for listener in (*GLOBAL_LISTENERS, *local):
        try:
            listener(event)
        except Exception:
            _log.exception("resilience event listener %r failed on %r", listener, event)
