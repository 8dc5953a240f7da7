"""A shared circuit breaker that decides from a local copy (``sync_mode="local-first"``).

A strict breaker asks Redis twice per call. This one keeps a copy of the shared state
(state, epoch, end of the open period) and decides from it with no I/O:

- **Closed**: every call goes ahead on the copy's *standing permit*, as with the
  in-memory breaker. Outcomes are counted here, per epoch (a plain success by the
  permit's counter, without a lock), and the store's background worker reports them in
  one ``cb_flush`` every ``flush_interval``, or at once when failures pile up (a burst
  that could trip the breaker on its own). Redis evaluates the thresholds on the
  fleet's counts and answers with the state, which the copy adopts.
- **Open**: calls are rejected locally until the open period ends.
- **Half-open** (or open, once the period has ended): admission is the strict one, a
  ``cb_acquire`` per call, so the fleet-wide trial budget holds; trial outcomes are
  recorded synchronously. A call rejected because every trial slot is taken makes the
  copy reject locally for one flush interval before asking again.
- Transitions reach the copy by pub/sub (the store's listener), by the reply to each
  flush, and by a poll of the state every ``poll_interval`` (a flush reply counts as
  one), which repairs lost messages.

Outcomes counted in an epoch that ended before they were reported are dropped (Redis
ignores them too), as are outcomes gathered while the store is cut off from Redis: then
the breaker decides from a local breaker, as a strict one does.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from ..._core.breaker import BreakerSettings, Permit, TransitionCallback
from ..._core.clock import Clock
from ..._core.windows import INF, CountWindow
from ._background import Worker
from ._breaker import RedisBreaker
from ._layout import Instance
from ._link import FAILED, Link
from ._options import StoreOptions
from ._scripts import CB_FLUSH

__all__ = ["LocalFirstBreaker", "LocalPermit"]

#: State codes of the scripts.
_CLOSED, _OPEN, _HALF_OPEN, _FORCED_OPEN, _DISABLED = range(5)
#: What ``_answer_here`` says when the copy cannot decide.
_ASK = object()


class LocalPermit(Permit):
    """A permit of the local copy's closed (or disabled) state: its outcomes are
    counted here and reported in batches."""

    __slots__ = ()


class LocalFirstBreaker(RedisBreaker):
    """One shared breaker deciding from a local copy: see the module docstring."""

    #: Trials still ask Redis: async drivers await them. (Calls on the standing permit
    #: never do: their outcomes are counted here.)
    nonblocking = False

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        instance: Instance,
        worker: Worker,
        name: str,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> None:
        self.standing: Permit | None = None
        self._worker = worker
        # Outcomes of the current epoch not reported yet: successes counted through
        # ``record`` (those counted by the standing permit's counter are read from it),
        # failures, slow successes, slow failures; the failures in a row at the end,
        # and whether any call succeeded (what "in a row" means for a batch).
        self._ok = self._failed = self._slow_ok = self._slow_failed = 0
        self._streak = 0
        self._succeeded = False
        self._counter_read = 0  # the standing permit's counter, as far as reported
        self._urgent = False
        self._flush_at = 0.0
        self._poll_at = 0.0
        self._ask_after = 0.0  # half-open with every trial taken: don't ask before
        self._early = math.inf
        self._streak_limit = math.inf
        super().__init__(link, options, instance, name, settings, clock, notify)

    # -- settings ----------------------------------------------------------------------

    def configure(self, settings: BreakerSettings) -> None:
        super().configure(settings)
        window = settings.window
        minimum = (
            min(settings.minimum_calls, window.size)
            if isinstance(window, CountWindow)
            else settings.minimum_calls
        )
        # Report at once when this instance alone has seen enough failures (or slow
        # calls) to trip the breaker, instead of waiting for the flush interval.
        rates = [settings.failure_rate]
        if settings.slow_call_duration is not None:
            rates.append(settings.slow_call_rate)
        thresholds = [max(1, math.ceil(minimum * rate)) for rate in rates if rate is not None]
        self._early = min(thresholds, default=math.inf)
        self._streak_limit = settings.consecutive_failures or math.inf
        with self._lock:
            old = self.standing
            if old is not None:  # successes its counter holds are reported all the same
                if old.ok is not None:
                    self._ok += next(old.ok) - self._counter_read
                self.standing = self._new_standing()

    def _new_standing(self) -> LocalPermit:
        """The standing permit of the known epoch. With a consecutive-failures trigger
        every success goes through ``record`` (its order among the failures matters);
        otherwise plain successes are counted by the permit, without a lock."""
        self._counter_read = 0
        if self.settings.consecutive_failures is not None:
            return LocalPermit(self._epoch, False)
        return LocalPermit(self._epoch, False, INF, itertools.count())

    # -- what this process knows ---------------------------------------------------------

    def _adopted(self) -> None:
        """A new state or epoch (under the lock): counts of the old one are dropped, and
        the standing permit follows the state."""
        self._drop_counts()
        self._ask_after = 0.0
        code = self._code
        if self._link.up and code in (_CLOSED, _DISABLED):
            self.standing = self._new_standing()
        else:
            self.standing = None

    def _drop_counts(self) -> None:
        self._ok = self._failed = self._slow_ok = self._slow_failed = self._streak = 0
        self._succeeded = False
        standing = self.standing
        if standing is not None and standing.ok is not None:
            self._counter_read = next(standing.ok) + 1

    def link_changed(self) -> None:
        """Cut off: decide from the local breaker (no standing permit). Back: decide
        from the copy again, and learn the state soon. Nothing counted in between is
        reported."""
        with self._lock:
            self._drop_counts()
            self.standing = None
            if self._link.up:
                self._adopted()
            self._flush_at = self._poll_at = 0.0

    def after_fork(self) -> None:
        super().after_fork()
        with self._lock:  # the parent's counts are the parent's to report
            self._drop_counts()

    # -- calls ---------------------------------------------------------------------------

    def _may_ask(self) -> bool:
        """Whether a call without a standing permit may ask Redis (else it is rejected
        here, with ``retry_after`` set)."""
        now = self._now()
        code = self._code
        if code == _FORCED_OPEN:
            self._retry_at = None
            return False
        if code == _OPEN and now < self._open_until:
            self._retry_at = self._open_until
            return False
        if now < self._ask_after:
            self._retry_at = now  # a trial may end at any moment, as in memory
            return False
        return True

    def _answer_here(self) -> Permit | object | None:
        """A permit or a rejection (None) from the copy, or ``_ASK``: ask as a strict
        breaker does (Redis, or the local breaker while cut off)."""
        if not self._link.up:
            return _ASK
        permit = self.standing
        if permit is not None:
            return permit
        return _ASK if self._may_ask() else None

    def acquire(self) -> Permit | None:
        answer = self._answer_here()
        return super().acquire() if answer is _ASK else answer  # type: ignore[return-value]

    async def aacquire(self) -> Permit | None:
        answer = self._answer_here()
        return await super().aacquire() if answer is _ASK else answer  # type: ignore[return-value]

    def _admitted(self, reply: Any, permit_id: str) -> Permit | None:
        permit = super()._admitted(reply, permit_id)
        if permit is None:
            if self._code == _HALF_OPEN:
                self._ask_after = self._now() + self._options.flush_interval
            return permit
        if not permit.trial:  # closed (or disabled) again: count here
            return self.standing or permit
        return permit

    def record(self, permit: Permit, failed: bool, slow: bool) -> None:
        if type(permit) is LocalPermit:
            self._count(permit, failed, slow)
        else:
            super().record(permit, failed, slow)

    async def arecord(self, permit: Permit, failed: bool, slow: bool) -> None:
        if type(permit) is LocalPermit:
            self._count(permit, failed, slow)
        else:
            await super().arecord(permit, failed, slow)

    def release(self, permit: Permit) -> None:
        if type(permit) is not LocalPermit:
            super().release(permit)

    async def arelease(self, permit: Permit) -> None:
        if type(permit) is not LocalPermit:
            await super().arelease(permit)

    def _count(self, permit: Permit, failed: bool, slow: bool) -> None:
        with self._lock:
            if permit.epoch != self._epoch or self._code != _CLOSED:
                return  # another epoch's, or disabled: not evidence
            if failed:
                if slow:
                    self._slow_failed += 1
                else:
                    self._failed += 1
                self._streak += 1
            else:
                if slow:
                    self._slow_ok += 1
                else:
                    self._ok += 1
                self._streak = 0
                self._succeeded = True
            urgent = (
                self._failed + self._slow_failed + self._slow_ok >= self._early
                or self._streak >= self._streak_limit
            )
        if urgent and not self._urgent:
            self._urgent = True
            self._worker.wake()

    # -- background work (the store's worker) ------------------------------------------------

    def sync(self, now: float, force: bool) -> float:
        if not self._link.up:
            return now + self._options.poll_interval
        if force or self._urgent or now >= self._flush_at:
            self._flush(now)
        if force or now >= self._poll_at:
            self.refresh()
            self._polled(now)
        return min(self._flush_at, self._poll_at)

    def _polled(self, now: float) -> None:
        """The state was just learnt: poll again within ``poll_interval`` (jittered, so
        that a fleet started together does not poll together)."""
        self._poll_at = now + self._options.poll_interval * random.uniform(0.75, 1.0)

    def _flush(self, now: float) -> None:
        self._flush_at = now + self._options.flush_interval
        with self._lock:
            self._urgent = False
            standing = self.standing
            if self._epoch >= 0 and (standing is None or self._code != _CLOSED):
                self._drop_counts()
                return
            ok = self._ok
            if standing is not None and standing.ok is not None:
                seen = next(standing.ok)
                ok += seen - self._counter_read
                self._counter_read = seen + 1
            counts = f"{ok} {self._failed} {self._slow_ok} {self._slow_failed}"
            streak = str(self._streak) if self._succeeded else "-"
            epoch, since = self._epoch, self._changes
            # The streak goes on (the failures at the end of this batch begin the next
            # one's): only what it says about this batch is sent.
            self._ok = self._failed = self._slow_ok = self._slow_failed = 0
            self._succeeded = False
        if counts == "0 0 0 0" and epoch >= 0:
            return  # nothing to report (a poll keeps the copy fresh); a first flush
            # (no epoch known yet) makes the breaker in Redis if it is new
        args = (str(epoch), counts, streak, self._open_arg(0), self._record_settings, self._time())
        reply = self._link.run(CB_FLUSH, self._keys, args)
        if reply is not FAILED:
            self._recorded(reply, since)
            self._polled(now)

    def __repr__(self) -> str:
        return f"LocalFirstBreaker({self.name!r}, state={self.state!r})"
