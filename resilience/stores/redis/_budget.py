"""A retry budget shared by a fleet, decided locally.

Retries are decided on every failed attempt, so a round trip per decision would cost
the most when the dependency is already slow. Instead each process counts its calls
and retries and reports them in the background (``rb_flush``: every ``flush_interval``
while it has something to report, every ``poll_interval`` otherwise). Each report also
takes a *share* of the retries the fleet may still make (the *headroom*: what
``ratio * calls + floor`` allows over the window, minus the retries made): its fair part,
the headroom divided by the instances reporting, or what the shares the other
instances hold leave of it if less. Redis keeps every instance's share, so shares never
add up to more than the headroom. Between reports the process may retry while

    retries since the report  <  share + ratio * calls since the report

(the calls since the report raise the allowance by exactly that once reported), so the
fleet's retries stay within ``ratio * calls + min_per_second * window``. An instance
that stops reporting gives its share back after ``3 * poll_interval``. Before the first
reply, and while the store is cut off from Redis, a local budget decides, with the
floor split across the instances last seen (with ``on_store_error="closed"``, no retry
is allowed while cut off).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
from collections.abc import Callable

from ..._core.budget import BudgetCore, BudgetSettings
from ..._core.clock import Clock
from ..._core.windows import BUCKETS
from ._layout import Instance, budget_keys, script_time
from ._link import FAILED, Link
from ._options import StoreOptions
from ._scripts import RB_FLUSH

__all__ = ["RedisBudget"]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBudget:
    """One shared retry budget: the ``BudgetBackend`` a Redis store hands out."""

    nonblocking = True

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        instance: Instance,
        key: str,
        settings: BudgetSettings,
        clock: Clock,
        wake: Callable[[], None],
    ) -> None:
        self.key = key
        self._wake = wake  # the store's worker: report soon
        self._link = link
        self._options = options
        self._instance = instance
        self._keys = budget_keys(options.prefix, key)
        self._fail_closed = options.on_store_error == "closed"
        self._clock = clock
        self._time = script_time(clock)
        self._lock = threading.Lock()
        self.settings = settings
        # Calls are counted without the lock; ``_seen`` reads the counter.
        self._calls = itertools.count()
        self._reads = 0
        self._calls_reported = 0
        self._retries = 0  # since the last report
        self._share: float | None = None  # None: no fleet view (decide locally)
        self._instances = 1  # of the last reply
        self._fallback: BudgetCore | None = BudgetCore(settings, clock)
        self._report_at = 0.0
        self._generation = link.generation

    # -- the hot path ---------------------------------------------------------------

    def record_call(self) -> None:
        next(self._calls)
        fallback = self._fallback
        if fallback is not None:
            fallback.record_call()

    def try_retry(self) -> bool:
        fallback = self._fallback
        if fallback is not None:
            if self._fail_closed and not self._link.up:
                return False  # on_store_error="closed": no retry without the fleet's word
            if not fallback.try_retry():
                return False
            with self._lock:
                self._retries += 1
            return True
        with self._lock:
            share = self._share
            if share is None:  # lost to a race with a change of the link
                return False
            calls = self._seen() - self._calls_reported
            if self._retries + 1 <= share + self.settings.ratio * calls:
                self._retries += 1
                return True
            # Refused: if the share is from an idle time (reports every poll interval),
            # report now, so that a busy process gets its fair share back soon.
            stale = self._report_at - time.monotonic() > self._options.flush_interval
        if stale:
            self._report_at = 0.0
            self._wake()
        return False

    def _seen(self) -> int:
        """Calls counted so far (under the lock: each read is a ``next()`` too)."""
        seen = next(self._calls) - self._reads
        self._reads += 1
        return seen

    def configure(self, settings: BudgetSettings) -> None:
        """New ratios: shares taken from now on follow them."""
        with self._lock:
            self.settings = settings
            fallback = self._fallback
            self._report_at = 0.0
        if fallback is not None:
            fallback.configure(self._degraded(self._instances))

    def _degraded(self, instances: int) -> BudgetSettings:
        """The settings of the local budget: the fleet's floor split across instances."""
        floor = self.settings.min_per_second / max(1, instances)
        return dataclasses.replace(self.settings, min_per_second=floor)

    def link_changed(self) -> None:
        """Cut off, or back: decide locally until the next report is answered, and
        forget the counts of the outage (nothing gathered while cut off is reported)."""
        with self._lock:
            self._generation = self._link.generation
            self._share = None
            self._calls_reported = self._seen()
            self._retries = 0
            self._report_at = 0.0
        self._fallback = BudgetCore(self._degraded(self._instances), self._clock)

    def sync(self, now: float, force: bool) -> float:
        """Report counts and learn the fleet's (the store's worker calls this)."""
        options = self._options
        if not self._link.up:
            return now + options.poll_interval
        if not force and now < self._report_at:
            return self._report_at
        with self._lock:
            seen = self._seen()
            calls, retries = seen - self._calls_reported, self._retries
            self._calls_reported, self._retries = seen, 0
        settings = self.settings
        width_us = settings.window * 1e6 / BUCKETS
        horizon_us = 3 * options.poll_interval * 1e6
        args = (
            calls,
            retries,
            self._instance.id,
            repr(width_us),
            str(math.ceil(horizon_us)),
            repr(settings.ratio),
            repr(settings.min_per_second * settings.window),
            self._time(),
        )
        reply = self._link.run(RB_FLUSH, self._keys, args)
        busy = calls > 0 or retries > 0
        self._report_at = now + (options.flush_interval if busy else options.poll_interval)
        if reply is FAILED:
            with self._lock:  # not counted: send them again next time
                self._calls_reported -= calls
                self._retries += retries
            return self._report_at
        share = float(_text(reply[3]))
        with self._lock:
            self._instances = int(reply[2])
            if self._generation == self._link.generation:
                self._share = share
                self._fallback = None
        return self._report_at

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the
        fork); the counts so far are the parent's to report."""
        self._lock = threading.Lock()
        self.link_changed()

    def report(self) -> None:
        """Report now (a new budget: learn the fleet's view before the first retry),
        and again one flush interval later, when instances starting with this one
        have reported too."""
        now = time.monotonic()
        self.sync(now, force=True)
        self._report_at = now + self._options.flush_interval

    def __repr__(self) -> str:
        s = self.settings
        return f"RedisBudget({self.key!r}, ratio={s.ratio!r}, min_per_second={s.min_per_second!r})"
