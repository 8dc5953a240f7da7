"""Sliding windows of call outcomes for the circuit breaker.

Plain successes are the hot path, so a window lets them be counted without a lock:
``counter()`` hands out ``(ok_until, ok)``, and a success that ends before clock time
``ok_until`` is counted by ``next(ok)`` alone (``itertools.count`` is atomic in CPython).
Failures, slow calls and successes that miss that path go through ``add`` under the
owner's lock, and the owner reads the totals (``totals()``) under that lock too.

Memory is fixed at construction whatever the call rate: a count window remembers the
positions of at most ``size`` failures and slow calls, a time window ten buckets.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .validation import check_positive_int

__all__ = ["BUCKETS", "INF", "CountWindow", "NullWindow", "OutcomeWindow", "TimeWindow"]

#: Buckets of a time window: an outcome is forgotten between 90% and 100% of the window
#: after it happened (Polly v8 splits its sampling duration the same way).
BUCKETS = 10
#: "No time limit" for counting successes lock-free. One object, so that callers can
#: test ``ok_until is INF`` and skip reading the clock.
INF = float("inf")


@dataclass(frozen=True, slots=True)
class CountWindow:
    """A window over the last ``size`` calls, instead of the last N seconds."""

    size: int

    def __post_init__(self) -> None:
        check_positive_int("CountWindow.size", self.size)

    def _described(self) -> dict[str, int]:
        """As ``describe()`` and config files write it."""
        return {"calls": self.size}


class OutcomeWindow:
    """What the breaker needs from a window."""

    __slots__ = ()

    def counter(self) -> tuple[float, itertools.count[int]]:
        """``(ok_until, ok)``: a plain success before clock time ``ok_until`` may be
        counted with ``next(ok)``, without the lock."""
        raise NotImplementedError

    def add(self, failed: bool, slow: bool) -> None:
        """Count an outcome; the owner holds its lock."""
        raise NotImplementedError

    def totals(self) -> tuple[int, int, int]:
        """(calls, failures, slow calls) now in the window; the owner holds its lock."""
        raise NotImplementedError

    def successes_ever(self) -> int:
        """Successes counted since this window was made, aged out or not (under the
        owner's lock). It only grows, so a change means "a success happened since"."""
        raise NotImplementedError

    def same_shape(self, spec: float | CountWindow) -> bool:
        raise NotImplementedError


class _Counted:
    """An ``itertools.count`` read under a lock: each read is a ``next()`` too, and the
    reads are subtracted."""

    __slots__ = ("ok", "reads")

    def __init__(self) -> None:
        self.ok = itertools.count()
        self.reads = 0

    def value(self) -> int:
        seen = next(self.ok) - self.reads
        self.reads += 1
        return seen


class _CountOutcomes(OutcomeWindow, _Counted):
    # Every outcome has a position: the successes and failures before it. Successes
    # are only counted; failures and slow calls keep their positions, so the last
    # ``size`` positions say what is in the window.
    __slots__ = ("_failed", "_failures", "_size", "_slow")

    def __init__(self, size: int) -> None:
        _Counted.__init__(self)
        self._size = size
        self._failures = 0
        self._failed: deque[int] = deque()
        self._slow: deque[int] = deque()

    def counter(self) -> tuple[float, itertools.count[int]]:
        return INF, self.ok

    def add(self, failed: bool, slow: bool) -> None:
        position = self.value() + self._failures
        if failed:
            self._failures += 1
            self._failed.append(position)
        else:
            next(self.ok)
        if slow:
            self._slow.append(position)

    def totals(self) -> tuple[int, int, int]:
        seen = self.value() + self._failures
        oldest = seen - self._size
        for positions in (self._failed, self._slow):
            while positions and positions[0] < oldest:
                positions.popleft()
        return min(seen, self._size), len(self._failed), len(self._slow)

    def successes_ever(self) -> int:
        return self.value()

    def same_shape(self, spec: float | CountWindow) -> bool:
        return isinstance(spec, CountWindow) and spec.size == self._size


class _Bucket(_Counted):
    __slots__ = ("end", "failures", "slow")

    def __init__(self, end: float) -> None:
        super().__init__()
        self.end = end
        self.failures = 0
        self.slow = 0


class TimeWindow(OutcomeWindow):
    """Outcomes of the last ``seconds``, in ``BUCKETS`` buckets."""

    __slots__ = ("_aged_ok", "_buckets", "_cur", "_now", "_width", "seconds")

    def __init__(self, seconds: float, now: Callable[[], float]) -> None:
        self.seconds = seconds
        self._width = seconds / BUCKETS
        self._now = now
        self._buckets: list[_Bucket] = []
        self._aged_ok = 0  # successes of buckets already dropped
        self._cur = _Bucket(-INF)  # already over: the first outcome rotates

    def counter(self) -> tuple[float, itertools.count[int]]:
        cur = self._cur
        return cur.end, cur.ok

    def rotate(self) -> bool:
        """Move to the bucket of the present time (under the owner's lock, once the
        current bucket has ended); True if the bucket that ended saw any success."""
        ended = self._cur
        busy = ended.value() > 0
        self._current()
        return busy

    def _current(self) -> _Bucket:
        now = self._now()
        cur = self._cur
        if now < cur.end:
            return cur
        width = self._width
        end = (now // width + 1) * width
        cur = _Bucket(end)
        kept = []
        for bucket in self._buckets:
            if bucket.end > end - self.seconds:
                kept.append(bucket)
            else:
                self._aged_ok += bucket.value()
        kept.append(cur)
        self._buckets = kept
        self._cur = cur
        return cur

    def add(self, failed: bool, slow: bool) -> None:
        cur = self._current()
        if failed:
            cur.failures += 1
        else:
            next(cur.ok)
        if slow:
            cur.slow += 1

    def totals(self) -> tuple[int, int, int]:
        self._current()  # drop buckets that aged out
        calls = failures = slow = 0
        for bucket in self._buckets:
            calls += bucket.value() + bucket.failures
            failures += bucket.failures
            slow += bucket.slow
        return calls, failures, slow

    def successes_ever(self) -> int:
        self._current()
        return self._aged_ok + sum(bucket.value() for bucket in self._buckets)

    def same_shape(self, spec: float | CountWindow) -> bool:
        return not isinstance(spec, CountWindow) and spec == self.seconds


class NullWindow(OutcomeWindow):
    """Counts nothing: the window of a disabled breaker."""

    __slots__ = ("_void",)

    def __init__(self) -> None:
        self._void = itertools.count()

    def counter(self) -> tuple[float, itertools.count[int]]:
        return INF, self._void

    def add(self, failed: bool, slow: bool) -> None:
        pass

    def totals(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def successes_ever(self) -> int:
        return 0

    def same_shape(self, spec: float | CountWindow) -> bool:
        return False


def make_window(spec: float | CountWindow, now: Callable[[], float]) -> OutcomeWindow:
    if isinstance(spec, CountWindow):
        return _CountOutcomes(spec.size)
    return TimeWindow(spec, now)
