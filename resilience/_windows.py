"""Sliding windows of call outcomes for the circuit breaker.

Successes are the hot path, so a window counts them without a lock: each success
takes one ``next()`` on an ``itertools.count`` (atomic in CPython) or one sequence
number. Failures and slow calls are counted by ``add`` under the owner's lock, and the
owner reads the totals (``totals()``) under that lock too. Memory is fixed at
construction: one byte per remembered call for a count window, ten buckets for a time
window, whatever the call rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ._validation import check_positive_int

__all__ = ["BUCKETS", "CountWindow", "NullWindow", "OutcomeWindow", "TimeWindow", "make_window"]

#: Buckets of a time window: an outcome is forgotten between 90% and 100% of the window
#: after it happened (Polly v8 splits its sampling duration the same way).
BUCKETS = 10


@dataclass(frozen=True, slots=True)
class CountWindow:
    """A window over the last ``size`` calls, instead of the last N seconds."""

    size: int

    def __post_init__(self) -> None:
        check_positive_int("CountWindow.size", self.size)


class OutcomeWindow:
    """What the breaker needs from a window."""

    __slots__ = ()

    def success(self) -> bool:
        """Count a fast success without a lock; False if the caller must ``add`` it."""
        raise NotImplementedError

    def successes_ever(self) -> int:
        """Successes counted since this window was made, aged out or not (under the
        owner's lock). It only grows, so a change means "a success happened since"."""
        raise NotImplementedError

    def add(self, failed: bool, slow: bool) -> None:
        """Count an outcome; the owner holds its lock."""
        raise NotImplementedError

    def totals(self) -> tuple[int, int, int]:
        """(calls, failures, slow calls) now in the window; the owner holds its lock."""
        raise NotImplementedError

    def same_shape(self, spec: float | CountWindow) -> bool:
        raise NotImplementedError


_EMPTY = 4  # a slot of a count window that no call has filled yet


class _CountOutcomes(OutcomeWindow):
    # One byte per call: bit 0 failed, bit 1 slow, or _EMPTY. Slots are claimed by an
    # atomic sequence number, so concurrent successes never collide.
    __slots__ = ("_buf", "_ok", "_ok_reads", "_seq", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buf = bytearray([_EMPTY]) * size
        self._seq = itertools.count()
        self._ok = itertools.count()
        self._ok_reads = 0

    def success(self) -> bool:
        next(self._ok)
        self._buf[next(self._seq) % self._size] = 0
        return True

    def add(self, failed: bool, slow: bool) -> None:
        if not failed:
            next(self._ok)
        self._buf[next(self._seq) % self._size] = failed | (slow << 1)

    def successes_ever(self) -> int:
        # Reading an itertools.count is a next() too; those reads are subtracted.
        seen = next(self._ok) - self._ok_reads
        self._ok_reads += 1
        return seen

    def totals(self) -> tuple[int, int, int]:
        buf = self._buf
        both = buf.count(3)
        return (
            self._size - buf.count(_EMPTY),
            buf.count(1) + both,
            buf.count(2) + both,
        )

    def same_shape(self, spec: float | CountWindow) -> bool:
        return isinstance(spec, CountWindow) and spec.size == self._size


class _Bucket:
    __slots__ = ("end", "failures", "ok", "ok_reads", "slow")

    def __init__(self, end: float) -> None:
        self.end = end
        self.ok = itertools.count()  # successes, counted lock-free
        self.ok_reads = 0  # reading ``ok`` is a next() too; these are subtracted
        self.failures = 0
        self.slow = 0

    def successes(self) -> int:
        seen = next(self.ok) - self.ok_reads
        self.ok_reads += 1
        return seen


class TimeWindow(OutcomeWindow):
    """Outcomes of the last ``seconds``, in ``BUCKETS`` buckets."""

    __slots__ = ("_aged_ok", "_buckets", "_cur", "_now", "_width", "seconds")

    def __init__(self, seconds: float, now: Callable[[], float]) -> None:
        self.seconds = seconds
        self._width = seconds / BUCKETS
        self._now = now
        self._buckets: list[_Bucket] = []
        self._aged_ok = 0  # successes of buckets already dropped
        self._cur = _Bucket(-float("inf"))  # already over: the first outcome rotates

    def success(self) -> bool:
        cur = self._cur
        if self._now() < cur.end:
            next(cur.ok)
            return True
        return False

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
                self._aged_ok += bucket.successes()
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
            calls += bucket.successes() + bucket.failures
            failures += bucket.failures
            slow += bucket.slow
        return calls, failures, slow

    def successes_ever(self) -> int:
        self._current()
        return self._aged_ok + sum(bucket.successes() for bucket in self._buckets)

    def same_shape(self, spec: float | CountWindow) -> bool:
        return not isinstance(spec, CountWindow) and spec == self.seconds


class NullWindow(OutcomeWindow):
    """Counts nothing: the window of a disabled breaker."""

    __slots__ = ()

    def success(self) -> bool:
        return True

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
