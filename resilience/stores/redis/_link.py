"""The store's link to Redis, with a circuit breaker of its own.

Every script call goes through :meth:`Link.run` (or :meth:`Link.arun`), which never
raises what Redis or the network raised: it answers :data:`FAILED` instead, and the
backend decides that call from local state. After ``errors_to_cut_off`` failures in a
row the link is *cut off*: ``up`` turns false, backends stop touching the network, and a
background thread probes Redis with jittered exponential backoff until a probe
succeeds. Cutting off and recovering are logged and emitted as events of kind
``"store"`` (``unavailable`` and ``recovered``).

Each change of ``up`` starts a new ``generation``: backends compare it with the one
their local state was made in, to start that state afresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from redis.exceptions import ReadOnlyError

from ..._core.backoff import Backoff
from ..._policies.events import Event, StoreRecovered, emit
from ._scripts import Script

__all__ = ["FAILED", "Link", "StoreMisuse"]

_log = logging.getLogger("resilience")

#: What ``run`` answers when the call did not get a reply.
FAILED: Final = object()

Call = Callable[[Script, Sequence[str], Sequence[object]], Any]
ACall = Callable[[Script, Sequence[str], Sequence[object]], Awaitable[Any]]


class StoreMisuse(RuntimeError):
    """A store used where it cannot work (not a Redis failure): raised to the caller."""


class Link:
    """Runs scripts, counts failures, cuts itself off and probes its way back."""

    def __init__(
        self,
        name: str,
        call: Call,
        acall: ACall,
        probe: Callable[[], None],
        *,
        errors_to_cut_off: int,
        reconnect: Backoff,
    ) -> None:
        self.name = name
        self._call = call
        self._acall = acall
        self._probe = probe
        self._limit = errors_to_cut_off
        self._reconnect = reconnect
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        #: False while cut off: then nobody touches the network.
        self.up = True
        #: Bumped whenever ``up`` changes.
        self.generation = 0
        self._errors = 0
        self._down_since = 0.0
        self._next_probe = 0.0
        self._recovered: list[Callable[[], None]] = []
        self._cut_off: list[Callable[[], None]] = []
        #: Calls that failed since the link was made.
        self.failures = 0

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the probe thread) each time the link comes back."""
        self._recovered.append(callback)

    def on_cut_off(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the thread whose call failed last; it must not
        block) each time the link is cut off."""
        self._cut_off.append(callback)

    # -- calls -------------------------------------------------------------------------

    def run(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
        """The script's reply, or :data:`FAILED`."""
        try:
            reply = self._call(script, keys, args)
        except StoreMisuse:
            raise
        except Exception as exc:
            self._failed(exc)
            return FAILED
        if self._errors:
            self._errors = 0
        return reply

    async def arun(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
        """``run`` for async code."""
        try:
            reply = await self._acall(script, keys, args)
        except StoreMisuse:
            raise
        except Exception as exc:
            self._failed(exc)
            return FAILED
        if self._errors:
            self._errors = 0
        return reply

    def retry_hint(self) -> float:
        """Seconds until the next probe (an estimate for ``retry_after``)."""
        return max(0.0, self._next_probe - time.monotonic()) if not self.up else 0.0

    # -- cutting off and coming back ---------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        # A read-only replica (a failover the client has not followed) answers reads
        # and refuses writes: reads in between would keep resetting the count, so the
        # first refusal cuts off, and the probe (which writes) decides when to return.
        fatal = isinstance(exc, ReadOnlyError)
        with self._lock:
            self.failures += 1
            self._errors += 1
            cut = self.up and (fatal or self._errors >= self._limit)
            if cut:
                self.up = False
                self.generation += 1
                self._down_since = time.monotonic()
        if not cut:
            _log.debug("redis store %s: call failed (%r); decided locally", self.name, exc)
            return
        _log.warning(
            "redis store %s: unavailable after %d failed calls in a row (last: %r); "
            "deciding from local state until it answers again",
            self.name,
            self._errors,
            exc,
        )
        emit((), Event("store", self.name, "unavailable", time.monotonic(), None, exc))
        self._start_prober()
        self._tell(self._cut_off, "reacting to the outage")

    def _start_prober(self) -> None:
        if self._stop.is_set():
            return
        thread = threading.Thread(
            target=self._probe_until_up, name=f"resilience-redis-probe-{self.name}", daemon=True
        )
        self._prober = thread
        thread.start()

    def _probe_until_up(self) -> None:
        attempt, delay = 0, 0.0
        while True:
            attempt += 1
            delay = self._reconnect.delay(attempt, delay)
            self._next_probe = time.monotonic() + delay
            if self._stop.wait(delay):
                return
            try:
                self._probe()
            except Exception as exc:
                _log.debug("redis store %s: probe %d failed: %r", self.name, attempt, exc)
                continue
            break
        with self._lock:
            self._errors = 0
            self.generation += 1
            self.up = True
            outage = time.monotonic() - self._down_since
        self._tell(self._recovered, "resync after recovery")
        _log.warning(
            "redis store %s: available again after %.3fs; shared state back in use",
            self.name,
            outage,
        )
        emit((), Event("store", self.name, "recovered", time.monotonic(), StoreRecovered(outage)))

    def _tell(self, callbacks: list[Callable[[], None]], what: str) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("redis store %s: %s failed", self.name, what)

    def close(self) -> None:
        """Stop probing (for good)."""
        self._stop.set()
        prober = self._prober
        if prober is not None and prober is not threading.current_thread():
            prober.join(timeout=5)

    def after_fork(self) -> None:
        """In a forked child: fresh locks; probe again if cut off (threads do not fork)."""
        self._lock = threading.Lock()
        self._prober = None
        if not self.up and not self._stop.is_set():
            self._start_prober()
