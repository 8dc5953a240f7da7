"""The token bucket's decision core: GCRA over one number and a clock.

A token bucket of ``burst`` tokens refilled at one token every ``interval = per / rate``
seconds is kept as its *theoretical arrival time* ``tat`` (GCRA): the bucket holds
``burst - (tat - now) / interval`` tokens, and is full whenever ``tat <= now``. Taking
``cost`` tokens at ``now`` computes

    new = max(tat, now) + interval * cost
    wait = new - tau - now          (tau = interval * burst, the bucket's size in time)

and grants at once when ``wait <= 0``. Otherwise the tokens are free ``wait`` seconds
from now: a caller willing to wait that long *reserves* them (``tat = new`` all the same,
so later callers queue behind it, in arrival order) and sleeps until its slot; any other
is refused with ``retry_after = wait``, leaving the state untouched. That is the whole
algorithm: O(1) state, one short lock per decision, and arithmetic a Redis script can
repeat with the server's clock.

Why the bound holds: every grant (at ``now``, or at ``now + wait`` for a reservation)
leaves ``tat <= grant time + tau``, and every grant adds ``interval * cost`` to ``tat``
(which never goes down on a grant). So the grants of any interval ``[t1, t2]`` add up to
at most ``(t2 - t1 + tau) / interval = burst + rate * (t2 - t1) / per`` tokens, in
whatever order threads reached the lock.

Giving a reservation back. A waiter cancelled before its slot returns its tokens: if it
is the newest entry (``tat`` is still the value it set) ``tat`` goes back to the value
before it, exactly as if it had never come. If later callers have reserved behind it,
their slots cannot move (they are asleep until them), so moving ``tat`` back would let
new callers collide with them; the cancelled reservation becomes a *hole*
(``holes[end] = prev``) instead, and is given back when every reservation after it has
been cancelled too (the tail is unwound through the holes). Once a reservation above a
hole has been granted, no cancellation can reach the hole any more and it is dropped.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from .clock import Clock

__all__ = ["BucketCore", "Decision", "LimiterSettings", "Reservation", "Take"]


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """A token bucket's shape, validated by :class:`~resilience.TokenBucket`.

    ``rate`` tokens every ``per`` seconds, at most ``burst`` in the bucket.
    """

    rate: float
    per: float
    burst: float

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return self.per / self.rate


class Reservation:
    """Tokens granted ``delay`` seconds from now: sleep that long, then go ahead.

    A caller that gives up before then hands it to the backend's ``cancel``. ``end`` and
    ``prev`` are the bucket state after and before the reservation (what ``cancel``
    needs); a store may put its own values there.
    """

    __slots__ = ("delay", "end", "prev")

    def __init__(self, delay: float, end: float, prev: float) -> None:
        self.delay = delay
        self.end = end
        self.prev = prev

    def __repr__(self) -> str:
        return f"Reservation(delay={self.delay!r})"


#: The answer to a request for tokens: ``None`` (granted now), a :class:`Reservation`
#: (granted after a wait of at most ``max_wait``), or a float: refused, and the seconds
#: until the tokens would be free (``retry_after``).
Decision: TypeAlias = Reservation | float | None


class Take(Protocol):
    """``take(cost, max_wait)``, with defaults fixed when it was made."""

    def __call__(self, cost: float = ..., max_wait: float = ...) -> Decision: ...


class BucketCore:
    """One token bucket's state. Safe to share between threads and tasks.

    ``acquire(cost, max_wait)`` decides; ``taker(cost, max_wait)`` returns the same
    function with those arguments as defaults, so a policy's hot path calls it with no
    arguments and no extra frame.
    """

    nonblocking = True

    __slots__ = (
        "_holes",
        "_interval",
        "_lock",
        "_now",
        "_tat",
        "_tau",
        "acquire",
        "settings",
    )

    acquire: Take

    def __init__(self, settings: LimiterSettings, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._now = clock.monotonic
        self._tat = -math.inf  # a full bucket
        self._holes: dict[float, float] = {}
        self._apply(settings)
        self.acquire = self.taker(1.0, 0.0)

    def _apply(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self._interval = settings.interval
        self._tau = self._interval * settings.burst

    # -- deciding --------------------------------------------------------------------

    def taker(self, cost: float, max_wait: float) -> Take:
        """``acquire`` with ``cost`` and ``max_wait`` as defaults (``max_wait`` may be inf)."""
        core = self
        lock = self._lock
        lock_acquire, lock_release = lock.acquire, lock.release
        monotonic = self._now
        holes = self._holes

        def take(cost: float = cost, max_wait: float = max_wait) -> Decision:
            now = monotonic()
            lock_acquire()
            try:
                prev = core._tat
                tat = (prev if prev > now else now) + core._interval * cost
                if tat - core._tau <= now:  # the tokens are there: the common case
                    core._tat = tat
                    return None
                wait = tat - core._tau - now
                if wait > max_wait:  # refused: nothing changes
                    return wait
                if holes and prev - core._tau <= now:
                    # The newest entry has been granted: no cancellation reaches the holes.
                    holes.clear()
                core._tat = tat
                return Reservation(wait, tat, prev)
            finally:
                lock_release()

        return take

    def cancel(self, reservation: Reservation) -> None:
        """Give back the tokens of a reservation whose holder will not use them."""
        now = self._now()
        with self._lock:
            tat = self._tat
            holes = self._holes
            if tat == reservation.end:  # the newest entry: unwind it, and the holes below
                tat = reservation.prev
                while tat in holes:
                    tat = holes.pop(tat)
                self._tat = tat
            elif tat - self._tau > now:  # later reservations still wait: leave a hole
                holes[reservation.end] = reservation.prev
            else:  # a later entry was granted (or the state was reset): nothing to give back
                holes.clear()

    # -- reading and configuring ----------------------------------------------------------

    def available(self) -> float:
        """Tokens free now; negative when waiters have reserved tokens not yet refilled."""
        now = self._now()
        with self._lock:
            tat = self._tat
        return self.settings.burst - max(tat - now, 0.0) / self._interval

    def configure(self, settings: LimiterSettings) -> None:
        """Apply a new shape, keeping the tokens now free (capped by the new ``burst``)."""
        now = self._now()
        with self._lock:
            owed = max(self._tat - now, 0.0) / self._interval  # burst - tokens free
            free = min(self.settings.burst - owed, settings.burst)
            self._apply(settings)
            self._tat = now + (settings.burst - free) * self._interval
            self._holes.clear()  # reservations made under the old shape no longer line up

    # Async twins, for the LimiterBackend protocol: the core never blocks, so async
    # drivers call the sync methods directly (``nonblocking``).
    async def aacquire(self, cost: float, max_wait: float) -> Decision:
        return self.acquire(cost, max_wait)

    async def acancel(self, reservation: Reservation) -> None:
        self.cancel(reservation)

    def __repr__(self) -> str:
        s = self.settings
        return f"BucketCore(rate={s.rate!r}, per={s.per!r}, burst={s.burst!r})"
