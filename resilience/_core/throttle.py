"""The adaptive throttle's decision core: requests and accepts over a sliding window.

Client-side adaptive throttling, from the Google SRE book ("Handling Overload"): a
client counts, over the last ``window`` seconds, the *requests* it made (including
those it rejected itself) and the *accepts* (requests the backend accepted), and
rejects a new request locally with probability

    p = max(0, (requests - k * accepts) / (requests + 1))

While the backend accepts everything, ``requests <= k * accepts`` and p is 0. When it
starts refusing, p grows so that the requests that still reach it are about ``k`` times
what it accepts; as it recovers, accepts grow and p falls back to 0.

The window is ``BUCKETS`` time buckets with running totals, so every decision is O(1):
moving to a new bucket subtracts the buckets that aged out. No I/O, nothing sync- or
async-specific; the draw (a uniform number in [0, 1)) comes from the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .windows import BUCKETS

__all__ = ["ThrottleCore"]


class ThrottleCore:
    """Requests and accepts of the last ``window`` seconds, and the rejection rule."""

    __slots__ = (
        "_accepts",
        "_head",
        "_lock",
        "_now",
        "_requests",
        "_width",
        "accepts",
        "k",
        "requests",
    )

    def __init__(self, k: float, window: float, now: Callable[[], float]) -> None:
        self.k = k
        self._width = window / BUCKETS
        self._now = now
        self._lock = threading.Lock()
        # Per bucket (a ring, indexed by bucket number modulo BUCKETS), and in total.
        self._requests = [0] * BUCKETS
        self._accepts = [0] * BUCKETS
        self.requests = 0
        self.accepts = 0
        self._head = int(now() // self._width)

    def _advance(self) -> None:
        """Under the lock: move to the present bucket, forgetting those that aged out."""
        current = int(self._now() // self._width)
        head = self._head
        if current <= head:
            return
        requests, accepts = self._requests, self._accepts
        for number in range(max(head + 1, current - BUCKETS + 1), current + 1):
            slot = number % BUCKETS
            self.requests -= requests[slot]
            self.accepts -= accepts[slot]
            requests[slot] = accepts[slot] = 0
        self._head = current

    def _probability(self) -> float:
        requests = self.requests
        rejecting = requests - self.k * self.accepts
        return rejecting / (requests + 1) if rejecting > 0 else 0.0

    def probability(self) -> float:
        """The probability that a request made now is rejected locally."""
        with self._lock:
            self._advance()
            return self._probability()

    def admit(self, draw: float, count: bool = True) -> float | None:
        """Decide a request, given a uniform ``draw`` in [0, 1): None to let it through,
        or the probability it was rejected with (then counted as a request, unless not
        ``count``: shadow mode lets it through, and records its outcome later)."""
        with self._lock:
            self._advance()
            p = self._probability()
            if draw >= p:
                return None
            if count:
                self._requests[self._head % BUCKETS] += 1
                self.requests += 1
            return p

    def record(self, accepted: bool) -> None:
        """A request that went through ended: accepted by the backend, or not."""
        with self._lock:
            self._advance()
            slot = self._head % BUCKETS
            self._requests[slot] += 1
            self.requests += 1
            if accepted:
                self._accepts[slot] += 1
                self.accepts += 1

    def totals(self) -> tuple[int, int]:
        """(requests, accepts) in the window now."""
        with self._lock:
            self._advance()
            return self.requests, self.accepts
