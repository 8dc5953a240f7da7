"""The bulkhead's decision core: free slots, and a FIFO queue of callers waiting for one.

No I/O, no time and nothing sync- or async-specific: a queued caller is a
:class:`Waiter`, and the drivers in ``_bulkhead`` subclass it with their own way to
sleep (a thread lock, an asyncio future, a trio event) and to be woken (``wake``).

State:

- ``free``: one item per free slot (a list used as a stack of ``None``\\ s);
- ``waiters``: the queued callers, oldest first (an ``OrderedDict`` used as an ordered
  set: O(1) to pop the oldest and to remove one that gives up);
- ``_lock``: taken by every change of ``waiters``, never by the fast paths.

Invariants:

1. ``len(free) + in flight == max_concurrent``, where *in flight* counts slots held by
   running calls and slots granted to waiters that have not woken up yet;
2. ``len(waiters) <= max_queue``;
3. at rest, ``free`` and ``waiters`` are never both non-empty: a slot that comes back
   while someone waits goes to the oldest waiter (it is *granted*: ``granted`` is set,
   the waiter leaves the queue, then it is woken), never back to the pool where a newcomer
   could take it first.

The fast paths take no lock: ``try_acquire`` pops a free slot only when nobody waits,
and ``release`` pushes the slot back then, if someone waits, takes the lock and grants
free slots to waiters (``hand_off``). ``list.pop``/``list.append`` and the truth test of
the queue are atomic (under the GIL, and per object on free-threaded builds). No wakeup
is lost because both sides publish first and look second: a releaser pushes its slot and
then looks at the queue; a caller that must wait enqueues itself (under the lock) and
then looks at the pool (``_grant``, under the lock). Whichever comes second sees the other.

A caller that sees an empty queue and pops a slot may overtake a waiter that enqueued
after it looked: it arrived first, so FIFO order (by arrival) still holds.

Resizing (``resize``, for a config reload) keeps every path above as it is. Growing
adds free slots (granting them to waiters). Shrinking takes free slots away; slots
that are in use cannot be taken, so for each of them a *debt* (a waiter that never
runs) joins the front of the queue: the next slots released go to the debts and so
vanish, and while debts remain the lock-free paths see a queue and step aside.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

__all__ = ["BulkheadCore", "Waiter"]


class Waiter:
    """A queued caller. ``granted`` becomes True (under the core's lock) when a slot is
    handed to it; it then owns that slot and must eventually ``release`` it."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False

    def wake(self) -> bool:
        """Wake the waiter (from any thread); False if it can never run again (its
        event loop is gone), so that its slot goes to someone else."""
        raise NotImplementedError


W = TypeVar("W", bound=Waiter)


class _Debt(Waiter):
    """A slot owed after the bulkhead shrank: the slot granted to it is gone for good."""

    __slots__ = ()

    def wake(self) -> bool:
        return True  # nothing sleeps here


class BulkheadCore:
    """``max_concurrent`` slots and a queue of at most ``max_queue`` waiters."""

    __slots__ = ("_debts", "_lock", "free", "max_concurrent", "max_queue", "waiters")

    #: No I/O anywhere: async drivers call ``try_acquire`` directly.
    nonblocking = True

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.free: list[None] = [None] * max_concurrent
        self.waiters: OrderedDict[Waiter, None] = OrderedDict()
        self._debts = 0  # _Debt waiters in the queue
        self._lock = threading.Lock()

    # -- counts (snapshots, read without the lock) -------------------------------------

    @property
    def in_flight(self) -> int:
        """Slots taken: by running calls, or granted to waiters about to run."""
        return self.max_concurrent + self._debts - len(self.free)

    @property
    def queued(self) -> int:
        return len(self.waiters) - self._debts

    # -- resizing --------------------------------------------------------------------

    def resize(self, max_concurrent: int, max_queue: int) -> None:
        """New limits, in place. Calls running or queued keep their place; when there
        are fewer slots than running calls, the next releases pay the difference."""
        woken: list[Waiter] = []
        with self._lock:
            self.max_queue = max_queue
            change = max_concurrent - self.max_concurrent
            self.max_concurrent = max_concurrent
            waiters = self.waiters
            while change > 0 and self._debts:  # owed slots first: cancel debts
                debt = next(w for w in waiters if isinstance(w, _Debt))
                del waiters[debt]
                self._debts -= 1
                change -= 1
            if change > 0:
                self.free.extend([None] * change)
                self._grant(woken)
            while change < 0:
                try:
                    self.free.pop()
                except IndexError:  # in use: owed by whoever releases next
                    debt = _Debt()
                    waiters[debt] = None
                    waiters.move_to_end(debt, last=False)
                    self._debts += 1
                change += 1
        if woken:
            self._wake(woken)

    # -- acquiring -----------------------------------------------------------------------

    def overdraw(self) -> int:
        """Take a slot even when none is free (a shadow-mode bulkhead lets every call
        in): a free one if there is one by now (0), else one over the limit, owed by
        the caller as a debt that the next release pays, as after a ``resize``; then
        how many calls are over the limit now."""
        woken: list[Waiter] = []
        try:
            with self._lock:
                self._grant(woken)
                waiters = self.waiters
                if not waiters:
                    try:
                        self.free.pop()
                    except IndexError:
                        pass
                    else:
                        return 0
                debt = _Debt()
                waiters[debt] = None
                waiters.move_to_end(debt, last=False)
                self._debts += 1
                # A slot pushed back after we looked, by a releaser that saw no waiter:
                # it pays the debt at once (publish first, look second, as in admit).
                self._grant(woken)
                return 0 if debt.granted else max(1, self.in_flight - self.max_concurrent)
        finally:
            if woken:
                self._wake(woken)

    def try_acquire(self) -> bool:
        """Take a free slot if there is one and nobody waits (lock-free)."""
        if self.waiters:
            return False
        try:
            self.free.pop()
        except IndexError:
            return False
        return True

    async def atry_acquire(self) -> bool:
        """``try_acquire``, for the ``BulkheadBackend`` protocol (drivers call the sync
        one, since the core is ``nonblocking``)."""
        return self.try_acquire()

    def admit(self, make_waiter: Callable[[], W]) -> W | bool:
        """The slow path of acquiring: True when a slot was taken, False when the queue
        is full (reject the caller), else a new waiter, queued: wait until it is woken
        (``granted`` is then True), and ``withdraw`` it if you stop waiting first.
        ``make_waiter`` runs under the lock, and only when the caller is to be queued.
        """
        woken: list[Waiter] = []
        try:
            with self._lock:
                return self._admit_locked(make_waiter, woken)
        finally:
            if woken:  # outside the lock, even if make_waiter raised
                self._wake(woken)

    def _admit_locked(self, make_waiter: Callable[[], W], woken: list[Waiter]) -> W | bool:
        # Slots pushed back by releasers that have not handed them off yet go to the
        # waiters first: a newcomer never overtakes someone already queued.
        self._grant(woken)
        waiters = self.waiters
        if not waiters:
            try:
                self.free.pop()
            except IndexError:
                pass
            else:
                return True
        if len(waiters) - self._debts >= self.max_queue:
            return False
        waiter = make_waiter()
        waiters[waiter] = None
        # A slot pushed back after we looked at the pool, by a releaser that saw no
        # waiter and so will not hand it off: ours, or an elder waiter's.
        self._grant(woken)
        if waiter.granted:
            woken.remove(waiter)  # it is running, not sleeping: nothing to wake
            return True
        return waiter

    def withdraw(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out of the queue (it timed out or was cancelled). True if a
        slot had been granted to it meanwhile: it owns that slot, to use or release."""
        with self._lock:
            if waiter in self.waiters:
                del self.waiters[waiter]
                return False
        return True

    # -- releasing -------------------------------------------------------------------------

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if there is one, else to the pool."""
        self.free.append(None)
        if self.waiters:
            self.hand_off()

    def hand_off(self) -> None:
        """Grant free slots to waiters, oldest first; call after ``free.append(None)``
        when ``waiters`` is not empty."""
        woken: list[Waiter] = []
        with self._lock:
            self._grant(woken)
        if woken:
            self._wake(woken)

    def _grant(self, woken: list[Waiter]) -> None:
        """Under the lock: move free slots to the oldest waiters, adding them to ``woken``."""
        waiters, free = self.waiters, self.free
        while waiters and free:
            try:
                free.pop()
            except IndexError:  # taken by a lock-free try_acquire since we looked
                break
            waiter = waiters.popitem(last=False)[0]
            waiter.granted = True
            if type(waiter) is _Debt:
                self._debts -= 1  # paid: the slot is gone
            else:
                woken.append(waiter)

    def _wake(self, woken: list[Waiter]) -> None:
        """Outside the lock: wake granted waiters. A waiter that can never run again
        (its event loop is gone) passes its slot on."""
        for waiter in woken:
            if not waiter.wake():
                self.release()
