"""A bulkhead whose slots are leases in Redis: a fleet-wide concurrency limit.

One :class:`RedisBulkhead` per key and store implements the ``BulkheadBackend``
protocol. A slot is a lease held by a *holder id* in a sorted set (``bh_sync``): taking
one is a round trip in the caller (``try_acquire``, awaited from async code); everything
else happens on the store's background worker, so that a call never waits for it:

- **Releasing** pushes the holder id to a list the worker sends at once (a cancelled
  call frees its slot without awaiting anything).
- **Renewing**: the worker extends the leases of this process's running calls every
  ``slot_lease / 3``, so a call may run as long as it needs; a process that dies stops
  renewing, and its slots come back when their leases end (``slot_lease`` at most).
- **Queued callers** wait here, in arrival order, on the bulkhead's own waiters; the
  worker asks Redis for slots on behalf of the oldest ones (in the same script as the
  releases, polling with a short backoff while they wait) and hands each slot it gets
  to a waiter, as the in-memory core does.

Slots are interchangeable: a release gives back one of this process's leases, not the
caller's own. Every call of the script also heartbeats this instance; the instances
alive are what the limit is split across when the store is cut off from Redis: then a
local :class:`BulkheadCore` of ``ceil(max_concurrent / instances)`` slots decides, with
the calls already running counted in it, and the calls it admits keep their local slots
after Redis is back (they are released first).

A holder that stalls longer than its lease without renewing (its process frozen) loses
its slot while still running: the limit is a protection against overload, not a lock.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..._core.bulkhead import BulkheadCore, Waiter
from ._background import Worker
from ._layout import Instance, bulkhead_keys
from ._link import FAILED, Link
from ._options import StoreOptions
from ._scripts import BH_SYNC

__all__ = ["RedisBulkhead"]

_log = logging.getLogger("resilience")
W = TypeVar("W", bound=Waiter)
#: How long the worker waits between requests for queued callers: it starts short and
#: doubles up to the longest (a slot released elsewhere is found within that).
_POLL_FIRST, _POLL_LONGEST = 0.002, 0.05


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBulkhead:
    """One shared bulkhead: the ``BulkheadBackend`` a Redis store hands out."""

    #: Taking a slot is a round trip: async drivers await ``atry_acquire``.
    nonblocking = False

    def __init__(
        self,
        link: Link,
        options: StoreOptions,
        instance: Instance,
        worker: Worker,
        key: str,
        max_concurrent: int,
        max_queue: int,
    ) -> None:
        self.key = key
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._link = link
        self._options = options
        self._instance = instance
        self._worker = worker
        self._keys = bulkhead_keys(options.prefix, key)
        self._fail_closed = options.on_store_error == "closed"
        self._lease_us = str(math.ceil(options.slot_lease * 1e6))
        # An instance renews (and so heartbeats) every third of a lease: one that missed
        # three is not alive.
        self._horizon_us = self._lease_us
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._held: list[str] = []  # leases of this process's running calls
        self._releasing: list[str] = []  # given back, for the worker to send
        self._waiters: OrderedDict[Waiter, None] = OrderedDict()
        self._overdrawn = 0  # shadow mode: calls let in without a slot
        self._local: BulkheadCore | None = None  # while cut off (and its holders after)
        self._instances = 1  # alive, as last heard
        self._renew_at = 0.0
        self._poll = _POLL_FIRST

    # -- counts --------------------------------------------------------------------------

    @property
    def settings(self) -> tuple[int, int]:
        """``(max_concurrent, max_queue)``: what instances of one name must agree on."""
        return self.max_concurrent, self.max_queue

    @property
    def in_flight(self) -> int:
        local = self._local
        return len(self._held) + self._overdrawn + (local.in_flight if local else 0)

    @property
    def queued(self) -> int:
        local = self._local
        return len(self._waiters) + (local.queued if local else 0)

    def resize(self, max_concurrent: int, max_queue: int) -> None:
        """New limits: sent with every later request (a running call keeps its slot)."""
        self.max_concurrent, self.max_queue = max_concurrent, max_queue
        local = self._local
        if local is not None:
            local.resize(self._share(), max_queue)
        self._worker.wake()

    # -- the script ------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{self._instance.id}:{next(self._ids)}"

    def _args(
        self, release: Sequence[str], renew: Sequence[str], want: Sequence[str]
    ) -> tuple[object, ...]:
        return (
            self.max_concurrent,
            self._lease_us,
            self._instance.id,
            self._horizon_us,
            "",  # server time: leases are real time, whatever the policy's clock
            " ".join(release),
            " ".join(renew),
            " ".join(want),
        )

    def _replied(self, reply: Sequence[Any]) -> int:
        """Learn from a reply; returns how many of the ids wanting a slot got one."""
        self._instances = max(1, int(reply[0]))
        lost = [_text(item) for item in reply[3:]]
        if lost:
            with self._lock:
                for holder in lost:
                    if holder in self._held:
                        self._held.remove(holder)
            _log.warning(
                "bulkhead %s: %d slot lease(s) ended before they were renewed (a stalled "
                "process?); those calls run on without a slot",
                self.key,
                len(lost),
            )
        return int(reply[2])

    # -- acquiring -------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        if not self._link.up or self._waiters:
            return self._try_locally()
        holder = self._new_id()
        reply = self._link.run(BH_SYNC, self._keys, self._args((), (), (holder,)))
        return self._took(reply, holder)

    async def atry_acquire(self) -> bool:
        if not self._link.up or self._waiters:
            return self._try_locally()
        holder = self._new_id()
        reply = await self._link.arun(BH_SYNC, self._keys, self._args((), (), (holder,)))
        return self._took(reply, holder)

    def _took(self, reply: Any, holder: str) -> bool:
        if reply is FAILED:  # this call could not ask: the local share decides it
            return not self._fail_closed and self._local_core().try_acquire()
        if self._replied(reply) == 0:
            return False
        with self._lock:
            self._held.append(holder)
        return True

    def _try_locally(self) -> bool:
        """Cut off: the local share decides (``on_store_error="closed"``: nobody gets
        in). Up, with callers queued here: nobody overtakes them."""
        if self._link.up or self._fail_closed:
            return False
        return self._local_core().try_acquire()

    def admit(self, make_waiter: Callable[[], W]) -> W | bool:
        if not self._link.up:
            if self._fail_closed:
                return False
            return self._local_core().admit(make_waiter)
        with self._lock:
            if len(self._waiters) >= self.max_queue:
                return False
            waiter = make_waiter()
            self._waiters[waiter] = None
            self._poll = _POLL_FIRST
        self._worker.wake()
        return waiter

    def withdraw(self, waiter: Waiter) -> bool:
        with self._lock:
            if waiter in self._waiters:
                del self._waiters[waiter]
                return False
        if waiter.granted:
            return True
        local = self._local
        return local.withdraw(waiter) if local is not None else True

    def overdraw(self) -> int:
        if not self._link.up:
            return self._local_core().overdraw()
        with self._lock:
            self._overdrawn += 1
            return self._overdrawn

    # -- releasing -------------------------------------------------------------------------

    def release(self) -> None:
        local = self._local
        if local is not None and local.in_flight > 0:
            local.release()  # holders admitted while cut off go first
            return
        with self._lock:
            if self._overdrawn:
                self._overdrawn -= 1
                return
            if not self._held:
                return
            self._releasing.append(self._held.pop())
        self._worker.wake()

    # -- cut off from Redis ----------------------------------------------------------------

    def _share(self) -> int:
        return max(1, math.ceil(self.max_concurrent / self._instances))

    def _local_core(self) -> BulkheadCore:
        local = self._local
        if local is None:
            with self._lock:
                local = self._local
                if local is None:
                    local = self._local = BulkheadCore(self._share(), self.max_queue)
        return local

    def link_changed(self) -> None:
        """Cut off: this process's running calls keep their slots in a local bulkhead
        of its share of the limit (their leases in Redis will end unrenewed). Back: new
        calls take leases again; the local holders release first."""
        if self._link.up:
            self._renew_at = 0.0
            return
        with self._lock:
            running = len(self._held)
            self._held.clear()
            self._releasing.clear()
        local = self._local_core()
        local.resize(self._share(), self.max_queue)
        for _ in range(running):
            local.overdraw()

    def after_fork(self) -> None:
        """In a forked child: the parent's leases and queue are the parent's."""
        self._lock = threading.Lock()
        self._held, self._releasing = [], []
        self._waiters = OrderedDict()
        self._overdrawn = 0
        self._local = None

    # -- background work (the store's worker) ------------------------------------------------

    def sync(self, now: float, force: bool) -> float:
        renew_every = self._options.slot_lease / 3
        if not self._link.up:
            self._serve_locally()
            return now + min(renew_every, 0.1)
        renewing = force or now >= self._renew_at
        with self._lock:
            releasing, self._releasing = self._releasing, []
            waiting = list(itertools.islice(self._waiters, self.max_concurrent))
            renew = list(self._held) if renewing else []
        wanted = [self._new_id() for _ in waiting]
        if not (releasing or waiting or renewing):
            return self._renew_at
        reply = self._link.run(BH_SYNC, self._keys, self._args(releasing, renew, wanted))
        if reply is FAILED:
            with self._lock:  # again next time (their leases end anyway if never sent)
                self._releasing.extend(releasing)
            return now + self._poll
        if renewing:
            self._renew_at = now + renew_every
        granted = self._replied(reply)
        self._grant(waiting[:granted], wanted[:granted])
        if not self._waiters:
            return self._renew_at
        delay, self._poll = self._poll, min(self._poll * 2, _POLL_LONGEST)
        return now + delay * random.uniform(0.5, 1.0)

    def _grant(self, waiters: list[Waiter], holders: list[str]) -> None:
        """Hand the slots Redis granted to the waiters they were asked for; a waiter
        that left meanwhile gives its slot back."""
        woken = []
        with self._lock:
            for waiter, holder in zip(waiters, holders, strict=True):
                if waiter in self._waiters:
                    del self._waiters[waiter]
                    waiter.granted = True
                    self._held.append(holder)
                    woken.append(waiter)
                else:
                    self._releasing.append(holder)
        for waiter in woken:
            if not waiter.wake():  # its event loop is gone: the slot goes on
                self.release()
        if self._releasing:
            self._worker.wake()

    def _serve_locally(self) -> None:
        """Cut off: callers queued here for Redis slots queue for local ones instead
        (failing closed: they wait for Redis, up to their ``max_wait``)."""
        if self._fail_closed:
            return
        with self._lock:
            waiting = list(self._waiters)
            self._waiters.clear()
        local = self._local_core()
        for waiter in waiting:
            got = local.admit(lambda waiter=waiter: waiter)  # type: ignore[misc]
            if got is True:  # a local slot at once: hand it over
                waiter.granted = True
                if not waiter.wake():
                    local.release()
            elif got is False:  # the local queue is full: wait here for Redis
                with self._lock:
                    self._waiters[waiter] = None

    def __repr__(self) -> str:
        return f"RedisBulkhead({self.key!r}, max_concurrent={self.max_concurrent})"
