"""A circuit breaker whose state machine and window live in Redis.

One :class:`RedisBreaker` per breaker name and store implements the
``BreakerBackend`` protocol. Every decision is one script: ``cb_acquire`` before a
call, ``cb_record`` (or ``cb_release``) after it, so a protected call costs two round
trips and the fleet shares one exact state. Nothing here is sync- or async-specific
except the four-line skeletons of ``acquire``/``aacquire`` and their siblings; the
arguments and the replies are handled once.

What this process knows of the shared state (the state and epoch of the last reply or
pub/sub message, and when an open period ends in local monotonic time) answers
``state`` and ``retry_after()`` without I/O, and turns into ``state_change`` events.

When the link to Redis is cut off (or one call fails), decisions come from a local
:class:`BreakerCore` with the same settings, started afresh in each link generation
from the last shared state this process knew. Outcomes of calls admitted by Redis are
never recorded locally, and local outcomes never reach Redis.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from ..._core.breaker import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    BreakerCore,
    BreakerMetrics,
    BreakerSettings,
    Permit,
    TransitionCallback,
)
from ..._core.clock import Clock, SystemClock
from ..._core.windows import BUCKETS, CountWindow
from ._layout import STATES, Instance, breaker_keys, script_time
from ._link import FAILED, Link
from ._options import StoreOptions
from ._scripts import CB_ACQUIRE, CB_FORCE, CB_RECORD, CB_RELEASE, CB_STATUS
from ._status import parse_breaker_status

__all__ = ["RedisBreaker", "RedisPermit"]

_log = logging.getLogger("resilience")
_ACTIONS = ("open", "close", "reset", "disable")
#: Outcome codes of the scripts: success, failure, slow success, slow failure.
_OUTCOMES = ("0", "1", "2", "3")


class RedisPermit(Permit):
    """A permit granted by Redis: ``id`` names a trial's lease; ``opens`` is the
    breaker's open streak when it was granted (for a callable ``open_for``);
    ``counted`` is false in the disabled state, where outcomes are not recorded."""

    __slots__ = ("counted", "id", "opens")

    def __init__(self, epoch: int, trial: bool, id: str, opens: int, counted: bool) -> None:
        super().__init__(epoch, trial)
        self.id = id
        self.opens = opens
        self.counted = counted


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisBreaker:
    """One shared breaker: the ``BreakerBackend`` a ``RedisStore`` hands out."""

    #: Every decision asks Redis: async drivers await the ``a``-methods.
    nonblocking = False
    #: No call may go without asking.
    standing: Permit | None = None

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        instance: Instance,
        name: str,
        settings: BreakerSettings,
        clock: Clock,
        notify: TransitionCallback,
    ) -> None:
        self.name = name
        self._link = link
        self._options = options
        self._instance = instance
        self._clock = clock
        self._now = clock.monotonic
        self._time = script_time(clock)
        self._fake_time = not isinstance(clock, SystemClock)
        self._keys, _ = breaker_keys(options.prefix, name)
        self._subscribers: list[TransitionCallback] = [notify]
        self._ids = itertools.count()
        self._lock = threading.Lock()
        # Held while events are delivered, so that they come in order, whichever thread
        # (a caller's, or the transition listener's) learnt of the change first.
        self._report_lock = threading.RLock()
        # The shared state as this process last heard of it.
        self._state: str = CLOSED
        self._code = 0
        self._epoch = -1
        self._changes = 0  # how many times the known state changed
        self._open_until = 0.0  # local monotonic time
        self._reported: str = CLOSED  # the state the last event said
        self._retry_at: float | None = 0.0  # of the last rejection
        self._window_warned = False
        # Local decisions, for when Redis cannot be asked.
        self._fail_closed = options.on_store_error == "closed"
        self._local: BreakerCore | None = None
        self._local_generation = -1
        self._hold_until = 0.0
        self._seeding = False
        self._last_open = 0.0
        self._open_cache = (-1, "")  # (open streak, open_for of the next open, in us)
        self.configure(settings)

    # -- settings ---------------------------------------------------------------------

    def configure(self, settings: BreakerSettings) -> None:
        """New thresholds: sent with every later call (Redis keeps no settings, only
        the window's shape, and restarts the window when the shape changes)."""
        window = settings.window
        key_ttl = self._options.key_ttl
        if isinstance(window, CountWindow):
            spec = f"c{window.size}"
            minimum = min(settings.minimum_calls, window.size)
            window_ttl = key_ttl
        else:
            spec = f"t{window * 1e6 / BUCKETS!r}"
            minimum = settings.minimum_calls
            # On virtual time, keys must not expire by real time while tests run.
            window_ttl = key_ttl if self._fake_time else window * 2
        open_for = settings.open_for
        idle = max(key_ttl, window_ttl, 0.0 if callable(open_for) else 2 * open_for)
        self._open_us = None if callable(open_for) else str(round(open_for * 1e6))
        self._idle_ms = str(_ms(idle))
        # The settings travel as one argument each (every argument costs the client).
        trials = settings.half_open_calls
        self._acquire_settings = (
            f"trials={trials} lease={round(self._options.trial_lease * 1e6)} idle={self._idle_ms}"
        )
        rate = "-" if settings.failure_rate is None else repr(settings.failure_rate)
        slow = "-" if settings.slow_call_duration is None else repr(settings.slow_call_rate)
        consecutive = settings.consecutive_failures or "-"
        self._record_settings = (
            f"window={spec} min={minimum} rate={rate} slow={slow} "
            f"consecutive={consecutive} trials={trials} idle={self._idle_ms} "
            f"wttl={_ms(window_ttl)}"
        )
        quorum = self._options.min_instances
        if quorum is not None:
            # Failures count towards the guard for a window's time (a count window:
            # until the next transition).
            horizon = "-" if isinstance(window, CountWindow) else str(round(window * 1e6))
            self._record_settings += f" quorum={quorum} inst={self._instance.id} qwin={horizon}"
        self.settings = settings
        self._open_cache = (-1, "")
        if self._local is not None:
            self._local.configure(settings)

    def after_fork(self) -> None:
        """In a forked child: fresh locks (another thread may have held one at the
        fork), and the instance id (in the settings sent) is a new one."""
        self._lock = threading.Lock()
        self._report_lock = threading.RLock()
        self.configure(self.settings)

    def subscribe(self, notify: TransitionCallback) -> None:
        """Also tell ``notify`` about transitions (another breaker of the same name)."""
        self._subscribers.append(notify)

    # -- what this process knows -------------------------------------------------------

    def learn(
        self, code: int, epoch: int, open_remaining_us: int, since: int | None = None
    ) -> None:
        """A reply or a message said: state ``code`` at ``epoch``. Older news is ignored,
        except from a snapshot of the whole state asked for when this process had learnt
        ``since`` changes, and none since: then Redis really went back (a failover lost
        the last transitions) and its epoch is adopted as it is."""
        if epoch == self._epoch and code == self._code and code != 1:
            return  # nothing new (the common case: closed, as last time)
        with self._lock:
            if epoch < self._epoch and (since is None or since != self._changes):
                return
            state = STATES[code]
            if state is OPEN:
                self._open_until = self._now() + open_remaining_us / 1e6
            if epoch != self._epoch or code != self._code:
                self._changes += 1
                self._epoch = epoch
                self._code = code
                self._state = state
                self._adopted()
        if state is not self._reported and self._link.up:
            self._report(state)

    def _adopted(self) -> None:
        """The known state changed (under the lock): a hook for the local-first mode."""

    def _report(self, state: str) -> None:
        with self._report_lock:
            before = self._reported
            if before is state:
                return
            self._reported = state
            for notify in self._subscribers:
                notify(before, state)

    @property
    def state(self) -> str:
        if not self._link.up:
            return self._local_state()
        state = self._state
        if state is OPEN and self._now() >= self._open_until:
            return HALF_OPEN  # it will be on the next call
        return state

    def retry_after(self) -> float | None:
        if not self._link.up and self._fail_closed:
            return self._link.retry_hint()
        retry_at = self._retry_at
        return None if retry_at is None else max(0.0, retry_at - self._now())

    # -- script arguments and replies ---------------------------------------------------

    def _permit_id(self) -> str:
        return f"{self._instance.id}:{next(self._ids)}"

    def _admitted(self, reply: Sequence[Any], permit_id: str) -> Permit | None:
        code, epoch, verdict, wait, opens = map(int, reply)
        self.learn(code, epoch, wait)
        if verdict == 1:
            return RedisPermit(epoch, False, "", opens, code != 4)
        if verdict == 2:
            return RedisPermit(epoch, True, permit_id, opens, True)
        # Half-open with every trial slot taken: as the in-memory breaker, 0.0 (a trial
        # may be free at any moment).
        self._retry_at = None if wait < 0 else self._now() + (0 if code == 2 else wait / 1e6)
        return None

    def _open_arg(self, opens: int) -> str:
        """How long the next open lasts (us), after ``opens`` opens in a row."""
        open_us = self._open_us
        if open_us is None:  # a callable open_for: the duration of the next open
            cached, open_us = self._open_cache
            if cached != opens:
                self._last_open = self.settings.open_duration(opens + 1, self._last_open)
                open_us = str(round(self._last_open * 1e6))
                self._open_cache = (opens, open_us)
        return open_us

    def _outcome_args(self, permit: RedisPermit, failed: bool, slow: bool) -> tuple[str, ...]:
        return (
            str(permit.epoch),
            _OUTCOMES[failed + 2 * slow],
            permit.id,
            self._open_arg(permit.opens),
            self._record_settings,
            self._time(),
        )

    def _recorded(self, reply: Sequence[Any], since: int | None = None) -> None:
        code, epoch, remaining, reshaped = map(int, reply)
        self.learn(code, epoch, remaining, since)
        if reshaped and not self._window_warned:
            self._window_warned = True
            _log.warning(
                "circuit breaker %s: Redis held a window of another shape; counting "
                "restarted (do instances sharing this breaker have other settings?)",
                self.name,
            )

    # -- calls ------------------------------------------------------------------------

    def acquire(self) -> Permit | None:
        link = self._link
        if not link.up:
            return self._local_acquire()
        permit_id = self._permit_id()
        args = (permit_id, self._acquire_settings, self._time())
        reply = link.run(CB_ACQUIRE, self._keys, args)
        if reply is FAILED:
            return self._local_acquire()
        return self._admitted(reply, permit_id)

    async def aacquire(self) -> Permit | None:
        link = self._link
        if not link.up:
            return self._local_acquire()
        permit_id = self._permit_id()
        args = (permit_id, self._acquire_settings, self._time())
        reply = await link.arun(CB_ACQUIRE, self._keys, args)
        if reply is FAILED:
            return self._local_acquire()
        return self._admitted(reply, permit_id)

    def record(self, permit: Permit, failed: bool, slow: bool) -> None:
        if type(permit) is not RedisPermit:
            self._local_record(permit, failed, slow)
        elif permit.counted and self._link.up:
            reply = self._link.run(CB_RECORD, self._keys, self._outcome_args(permit, failed, slow))
            if reply is not FAILED:
                self._recorded(reply)

    async def arecord(self, permit: Permit, failed: bool, slow: bool) -> None:
        if type(permit) is not RedisPermit:
            self._local_record(permit, failed, slow)
        elif permit.counted and self._link.up:
            args = self._outcome_args(permit, failed, slow)
            reply = await self._link.arun(CB_RECORD, self._keys, args)
            if reply is not FAILED:
                self._recorded(reply)

    def release(self, permit: Permit) -> None:
        if type(permit) is not RedisPermit:
            if self._local is not None:
                self._local.release(permit)
        elif permit.trial and self._link.up:
            self._link.run(CB_RELEASE, self._keys, (str(permit.epoch), permit.id))

    async def arelease(self, permit: Permit) -> None:
        if type(permit) is not RedisPermit:
            if self._local is not None:
                self._local.release(permit)
        elif permit.trial and self._link.up:
            await self._link.arun(CB_RELEASE, self._keys, (str(permit.epoch), permit.id))

    # -- manual control and reading ----------------------------------------------------

    def force(self, action: str) -> None:
        if action not in _ACTIONS:
            raise ValueError(f"unknown breaker action {action!r}")
        if self._link.up:
            args = (action, self._idle_ms, self._time())
            reply = self._link.run(CB_FORCE, self._keys, args)
            if reply is not FAILED:
                self.learn(int(reply[0]), int(reply[1]), 0)
                return
        _log.warning(
            "circuit breaker %s: Redis is unreachable; %s applies to this process only",
            self.name,
            action,
        )
        self._local_core().force(action)

    def refresh(self) -> None:
        """Learn the shared state now (a new backend; a listener that may have missed
        messages)."""
        if self._link.up:
            since = self._changes
            reply = self._link.run(CB_STATUS, self._keys, (self._time(),))
            if reply is not FAILED and reply:
                self.learn(int(reply[0]), int(reply[1]), int(reply[2]), since)

    def snapshot(self) -> BreakerMetrics:
        if self._link.up:
            reply = self._link.run(CB_STATUS, self._keys, (self._time(),))
            if reply is not FAILED:
                status = parse_breaker_status(self.name, reply)
                if status is None:
                    return BreakerMetrics(CLOSED, 0, 0, 0, 0.0, 0.0, 0, 0)
                self.learn(int(reply[0]), status.epoch, int(reply[2]))
                return BreakerMetrics(
                    state=status.state,
                    calls=status.calls,
                    failures=status.failures,
                    slow_calls=status.slow_calls,
                    failure_rate=status.failure_rate,
                    slow_call_rate=status.slow_call_rate,
                    consecutive_failures=status.consecutive_failures,
                    consecutive_opens=status.consecutive_opens,
                )
        return self._local_core().snapshot()

    # -- local decisions ---------------------------------------------------------------

    def _local_core(self) -> BreakerCore:
        """The local breaker, started afresh once per link generation from the shared
        state last known here (open stays open until its period ends)."""
        generation = self._link.generation
        core = self._local
        if core is not None and self._local_generation == generation:
            return core
        with self._lock:
            core = self._local
            if core is not None and self._local_generation == generation:
                return core
            if core is None:
                core = BreakerCore(self.settings, self._clock, self._local_transition)
            known = self._state
            self._seeding = True
            try:
                core.force(
                    "open" if known is FORCED_OPEN else "disable" if known is DISABLED else "reset"
                )
            finally:
                self._seeding = False
            self._hold_until = self._open_until if known is OPEN else 0.0
            self._local = core
            self._local_generation = generation
        if not self._link.up and not self._fail_closed:
            self._report(OPEN if self._now() < self._hold_until else core.state)
        return core

    def _local_transition(self, from_state: str, to_state: str) -> None:
        if not self._seeding and not self._link.up:
            self._report(to_state)

    def _local_state(self) -> str:
        if self._fail_closed:
            return OPEN
        core = self._local_core()
        if self._now() < self._hold_until:
            return OPEN
        return core.state

    def _local_acquire(self) -> Permit | None:
        now = self._now()
        if self._fail_closed:
            self._retry_at = now + self._link.retry_hint()
            return None
        core = self._local_core()
        if now < self._hold_until:
            self._retry_at = self._hold_until
            return None
        permit = core.acquire()
        if permit is None:
            retry_after = core.retry_after()
            self._retry_at = None if retry_after is None else now + retry_after
        return permit

    def _local_record(self, permit: Permit, failed: bool, slow: bool) -> None:
        core = self._local
        if core is not None:
            core.record(permit, failed, slow)

    def __repr__(self) -> str:
        return f"RedisBreaker({self.name!r}, state={self.state!r})"
