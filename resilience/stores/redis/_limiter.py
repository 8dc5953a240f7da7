"""A token bucket whose state (one GCRA timestamp) lives in Redis.

One :class:`RedisBucket` per key and store implements the ``LimiterBackend``
protocol: a request for tokens is one ``tb_take`` script, deciding on the server's
clock, so a fleet of processes shares one bucket exactly (``burst + rate * t``). When
Redis cannot be asked, a local :class:`BucketCore` with the same shape decides (or the
request is refused, with ``on_store_error="closed"``), started full once per link
generation.

A cancelled reservation is given back only while it is the newest one (``tat`` is
still the value it set); otherwise its tokens stay spent, which never lets later grants
exceed the bound (the in-memory core can also give back reservations in the middle of
the queue; a shared bucket does not try).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from ..._core.bucket import BucketCore, Decision, LimiterSettings, Reservation, Take
from ..._core.clock import Clock
from ._layout import bucket_key, script_time
from ._link import FAILED, Link
from ._options import StoreOptions
from ._scripts import TB_CANCEL, TB_PEEK, TB_RESHAPE, TB_TAKE

__all__ = ["LeasedBucket", "RedisBucket", "RedisReservation"]


class RedisReservation(Reservation):
    """A reservation made in Redis: ``after``/``before`` are the bucket's stored
    timestamps after and before it, exactly as Redis holds them."""

    __slots__ = ("after", "before")

    def __init__(self, delay: float, after: str, before: str) -> None:
        super().__init__(delay, math.nan, math.nan)
        self.after = after
        self.before = before


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBucket:
    """One shared token bucket: the ``LimiterBackend`` a ``RedisStore`` hands out."""

    nonblocking = False

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        key: str,
        settings: LimiterSettings,
        clock: Clock,
    ) -> None:
        self.key = key
        self._link = link
        self._keys = (bucket_key(options.prefix, key),)
        self._clock = clock
        self._time = script_time(clock)
        self._fail_closed = options.on_store_error == "closed"
        self._lock = threading.Lock()
        self._local: BucketCore | None = None
        self._local_generation = -1
        self._apply(settings)

    def _apply(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self._interval_us = settings.interval * 1e6
        self._shape = (repr(self._interval_us), repr(settings.burst))

    # -- script arguments and replies ---------------------------------------------------

    def _take_args(self, cost: float, max_wait: float) -> tuple[str, ...]:
        wait = "" if max_wait == math.inf else repr(max_wait * 1e6)
        return (*self._shape, repr(cost), wait, self._time())

    @staticmethod
    def _decision(reply: Sequence[Any]) -> Decision:
        verdict = int(reply[0])
        if verdict == 0:
            return None
        wait = int(reply[1]) / 1e6
        if verdict == 2:
            return wait
        return RedisReservation(wait, _text(reply[2]), _text(reply[3]))

    # -- taking ------------------------------------------------------------------------

    def acquire(self, cost: float = 1.0, max_wait: float = 0.0) -> Decision:
        link = self._link
        if not link.up:
            return self._local_take(cost, max_wait)
        reply = link.run(TB_TAKE, self._keys, self._take_args(cost, max_wait))
        if reply is FAILED:
            return self._local_take(cost, max_wait)
        return self._decision(reply)

    async def aacquire(self, cost: float, max_wait: float) -> Decision:
        link = self._link
        if not link.up:
            return self._local_take(cost, max_wait)
        reply = await link.arun(TB_TAKE, self._keys, self._take_args(cost, max_wait))
        if reply is FAILED:
            return self._local_take(cost, max_wait)
        return self._decision(reply)

    def taker(self, cost: float, max_wait: float) -> Take:
        acquire = self.acquire

        def take(cost: float = cost, max_wait: float = max_wait) -> Decision:
            return acquire(cost, max_wait)

        return take

    def cancel(self, reservation: Reservation) -> None:
        if not isinstance(reservation, RedisReservation):
            if self._local is not None:
                self._local.cancel(reservation)
        elif self._link.up:
            args = (reservation.after, reservation.before, self._time())
            self._link.run(TB_CANCEL, self._keys, args)

    async def acancel(self, reservation: Reservation) -> None:
        if not isinstance(reservation, RedisReservation):
            if self._local is not None:
                self._local.cancel(reservation)
        elif self._link.up:
            args = (reservation.after, reservation.before, self._time())
            await self._link.arun(TB_CANCEL, self._keys, args)

    # -- reading and configuring --------------------------------------------------------

    def available(self) -> float:
        if self._link.up:
            reply = self._link.run(TB_PEEK, self._keys, (self._time(),))
            if reply is not FAILED:
                return self.settings.burst - float(_text(reply[0])) / self._interval_us
        return self._local_core().available()

    def configure(self, settings: LimiterSettings) -> None:
        if self._link.up:
            args = (*self._shape, repr(settings.interval * 1e6), repr(settings.burst))
            self._link.run(TB_RESHAPE, self._keys, (*args, self._time()))
        self._apply(settings)
        if self._local is not None:
            self._local.configure(settings)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held it at the
        fork); nothing of the parent's to drop (no state here)."""
        self._lock = threading.Lock()

    # -- local decisions ---------------------------------------------------------------

    def _local_core(self) -> BucketCore:
        generation = self._link.generation
        core = self._local
        if core is None or self._local_generation != generation:
            with self._lock:
                core = self._local
                if core is None or self._local_generation != generation:
                    core = self._local = BucketCore(self.settings, self._clock)
                    self._local_generation = generation
        return core

    def _local_take(self, cost: float, max_wait: float) -> Decision:
        if self._fail_closed:
            return max(self._link.retry_hint(), self.settings.interval * cost)
        return self._local_core().acquire(cost, max_wait)

    def __repr__(self) -> str:
        s = self.settings
        return f"RedisBucket({self.key!r}, rate={s.rate!r}, per={s.per!r}, burst={s.burst!r})"


class LeasedBucket(RedisBucket):
    """A shared token bucket spent from leases (``sync_mode="local-first"``).

    A call that finds no leased token here takes ``k`` at once from Redis (one
    ``tb_take`` asking for the call's tokens and up to ``k - cost`` more, granted only
    if free now) and later calls spend them with no I/O. ``k`` follows this process's
    own rate: enough tokens for about one ``flush_interval`` of its calls, at least 1
    and at most ``lease_tokens`` (by default, one flush interval of the bucket's rate).

    The bound: every token spent here was granted by Redis within the bucket's limit,
    but may be spent later than it was granted, so over any interval a fleet admits at
    most ``burst + rate * t / per`` plus the tokens leased before it and spent in it:
    ``lease_tokens`` per instance. Calls that must wait (``max_wait``) take their tokens
    from Redis as a strict bucket does; so do all calls while a lease would not fit.
    """

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        key: str,
        settings: LimiterSettings,
        clock: Clock,
    ) -> None:
        self._options = options
        self._tokens = 0.0  # leased here, not spent yet
        self._asked = 0.0  # extra tokens asked for by leases in flight
        self._k = 1.0
        self._spent = 0.0  # since the last estimate of this process's rate
        self._since = clock.monotonic()
        self._generation = link.generation  # of the link the tokens were leased on
        super().__init__(link, options, key, settings, clock)

    def _apply(self, settings: LimiterSettings) -> None:
        super()._apply(settings)
        most = self._options.lease_tokens
        if most is None:  # one flush interval of the whole bucket's rate
            most = math.floor(settings.rate / settings.per * self._options.flush_interval)
        self._most = float(max(1, min(most, math.floor(settings.burst))))

    @property
    def lease_tokens(self) -> float:
        """The most tokens one lease takes (what each instance may add to the bound)."""
        return self._most

    def _spend(self, cost: float) -> float | None:
        """Spend ``cost`` leased tokens (None), or say how many extra tokens a lease
        should ask for now (under the lock)."""
        self._spent += cost
        if self._generation != self._link.generation:
            # Cut off and back since the lease: start over (the local bucket decided
            # in between, and Redis may have lost the bucket).
            self._generation = self._link.generation
            self._tokens = 0.0
        if self._tokens >= cost:
            self._tokens -= cost
            return None
        now = self._clock.monotonic()
        elapsed = now - self._since
        interval = self._options.flush_interval
        if elapsed >= interval:
            # Enough for one flush interval of this process's calls.
            self._k = min(self._most, max(1.0, math.ceil(self._spent / elapsed * interval)))
            self._since, self._spent = now, 0.0
        elif self._spent > 2 * self._k:
            # Spending leases faster than one per interval: grow now, not at the end of
            # the interval (a busy process would otherwise ask per call until then).
            self._k = min(self._most, 2 * self._k)
        extra = max(0.0, math.floor(self._k - cost - self._tokens - self._asked))
        self._asked += extra
        return extra

    def _leased(self, reply: Any, extra: float, cost: float, max_wait: float) -> Decision:
        with self._lock:
            self._asked -= extra
            if reply is not FAILED and int(reply[0]) == 0:
                self._tokens += int(reply[1])
        if reply is FAILED:
            return self._local_take(cost, max_wait)
        return self._decision(reply)

    def acquire(self, cost: float = 1.0, max_wait: float = 0.0) -> Decision:
        link = self._link
        if not link.up:
            return self._local_take(cost, max_wait)
        with self._lock:
            extra = self._spend(cost)
        if extra is None:
            return None
        reply = link.run(TB_TAKE, self._keys, (*self._take_args(cost, max_wait), repr(extra)))
        return self._leased(reply, extra, cost, max_wait)

    async def aacquire(self, cost: float, max_wait: float) -> Decision:
        link = self._link
        if not link.up:
            return self._local_take(cost, max_wait)
        with self._lock:
            extra = self._spend(cost)
        if extra is None:
            return None
        args = (*self._take_args(cost, max_wait), repr(extra))
        reply = await link.arun(TB_TAKE, self._keys, args)
        return self._leased(reply, extra, cost, max_wait)

    def after_fork(self) -> None:
        """In a forked child: the leased tokens are the parent's."""
        super().after_fork()
        self._tokens = 0.0

    def __repr__(self) -> str:
        s = self.settings
        return f"LeasedBucket({self.key!r}, rate={s.rate!r}, per={s.per!r}, burst={s.burst!r})"
