"""The circuit breaker's decision core: a state machine over a window and a clock.

No I/O, nothing sync- or async-specific: the breaker policy drives it, the in-memory
store hands it out as-is, and a shared store can fall back to it when its server is
unreachable. Threads and tasks share one core; a short lock guards each decision, and
the closed-state admission reads one attribute without taking it.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .clock import Clock
from .ticker import ticker_for
from .validation import check_duration
from .windows import INF, CountWindow, NullWindow, OutcomeWindow, TimeWindow, make_window

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "OPEN",
    "BreakerCore",
    "BreakerMetrics",
    "BreakerSettings",
    "Permit",
    "TransitionCallback",
]

_log = logging.getLogger("resilience")

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"
FORCED_OPEN: Final = "forced_open"
DISABLED: Final = "disabled"

TransitionCallback = Callable[[str, str], None]
_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """The thresholds a breaker store needs; validated by :class:`CircuitBreaker`."""

    failure_rate: float | None
    minimum_calls: int
    consecutive_failures: int | None
    window: float | CountWindow
    slow_call_duration: float | None
    slow_call_rate: float
    open_for: float | Callable[[int], float]
    half_open_calls: int

    def open_duration(self, consecutive_opens: int, fallback: float) -> float:
        """Seconds to stay open after the ``consecutive_opens``-th open in a row."""
        open_for = self.open_for
        if not callable(open_for):
            return open_for
        try:
            return check_duration("open_for(...)", open_for(consecutive_opens))
        except Exception:
            # A broken callable must not turn the caller's own outcome into our error.
            _log.exception(
                "open_for(%d) failed; staying open %gs as last time", consecutive_opens, fallback
            )
            return fallback


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot of a breaker's state and of the outcomes in its current window."""

    state: str
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    consecutive_opens: int


class Permit:
    """Permission for one call; handed back to the store with the call's outcome.

    Closed-state calls share a standing permit (no allocation per call); trial permits
    (half-open) are one per call.

    ``ok_until`` and ``ok`` let a plain success (not failed, not slow) be counted
    without the store's lock: if it ends before clock time ``ok_until``, ``next(ok)``
    counts it and the store need not be told. Otherwise the outcome goes to ``record``.
    ``ok`` belongs to the permit's own epoch, so a success that lands after the breaker
    moved on counts in a window already discarded. Within its epoch the standing permit
    follows the window: when a time bucket ends, the core points ``ok`` at the next
    bucket's counter. With a clock that a ticker follows, the core is called back when
    the bucket ends, so ``ok_until`` is ``INF`` and a success reads no clock at all.
    """

    __slots__ = ("epoch", "ok", "ok_until", "trial")

    def __init__(
        self,
        epoch: int,
        trial: bool,
        ok_until: float = -INF,
        ok: itertools.count[int] | None = None,
    ) -> None:
        self.epoch = epoch
        self.trial = trial
        self.ok_until = ok_until
        self.ok = ok

    def __repr__(self) -> str:
        return f"Permit(epoch={self.epoch}, trial={self.trial})"


class BreakerCore:
    """One breaker's state: CLOSED -> OPEN -> HALF_OPEN -> CLOSED, plus the manual states.

    ``notify(from_state, to_state)`` is called after each transition, outside the lock.
    Every transition starts a new epoch; outcomes of calls admitted in an earlier epoch
    are ignored, so a slow call that started before the breaker opened cannot close it.
    """

    nonblocking = True

    def __init__(self, settings: BreakerSettings, clock: Clock, notify: TransitionCallback) -> None:
        self._lock = threading.Lock()
        self._now = clock.monotonic
        # Calls us back when a time bucket ends (see _tick); None for clocks it can't follow.
        self._ticker = ticker_for(clock)
        self._tick_at: float | None = None
        self._subscribers: list[TransitionCallback] = [notify]
        self._state: str = CLOSED
        self._epoch = 0
        # The permit every call may use without asking (closed or disabled), else None.
        self.standing: Permit | None = None
        self._open_until = 0.0
        self._open_duration = 0.0
        self._opens = 0
        self._consecutive = 0
        self._successes_seen = 0  # the window's successes_ever() at the last failure
        self._trials: set[Permit] = set()
        self._trials_done = 0
        self._trials_slow = 0
        self.settings = settings
        self._window: OutcomeWindow = make_window(settings.window, self._now)
        self.standing = Permit(0, False, *self._window.counter())
        self.configure(settings)

    def configure(self, settings: BreakerSettings) -> None:
        """Apply new thresholds; the window's counts are kept if its shape is unchanged."""
        with self._lock:
            self.settings = settings
            # Disabled thresholds become unreachable numbers so the hot check needs no
            # branch per option.
            self._rate = settings.failure_rate if settings.failure_rate is not None else _NEVER
            self._slow_rate = (
                settings.slow_call_rate if settings.slow_call_duration is not None else _NEVER
            )
            # A count window never holds more than its size: like resilience4j, cap
            # minimum_calls there instead of silently never evaluating the rates.
            window = settings.window
            self._min_calls = (
                min(settings.minimum_calls, window.size)
                if isinstance(window, CountWindow)
                else settings.minimum_calls
            )
            self._consecutive_limit = settings.consecutive_failures or _NEVER
            if self._state is not DISABLED and not self._window.same_shape(settings.window):
                self._window = make_window(settings.window, self._now)
                self._successes_seen = 0
                self._refresh_standing()

    def subscribe(self, notify: TransitionCallback) -> None:
        """Also tell ``notify`` about transitions (another breaker sharing this state)."""
        self._subscribers.append(notify)

    def _notify(self, change: tuple[str, str]) -> None:
        for notify in self._subscribers:
            notify(*change)

    # -- reading -------------------------------------------------------------------

    @property
    def state(self) -> str:
        state = self._state
        if state is OPEN and self._now() >= self._open_until:
            return HALF_OPEN  # it will be on the next call; report what a caller would see
        return state

    def retry_after(self) -> float | None:
        """Seconds until a call could be admitted; None when only a person can open it."""
        state = self._state
        if state is FORCED_OPEN:
            return None
        if state is OPEN:
            return max(0.0, self._open_until - self._now())
        return 0.0

    def snapshot(self) -> BreakerMetrics:
        with self._lock:
            total, failures, slow = self._window.totals()
            self._refresh_standing()
            return BreakerMetrics(
                state=self.state,
                calls=total,
                failures=failures,
                slow_calls=slow,
                failure_rate=failures / total if total else 0.0,
                slow_call_rate=slow / total if total else 0.0,
                consecutive_failures=self._consecutive_failures(),
                consecutive_opens=self._opens,
            )

    # -- calls -----------------------------------------------------------------------

    def acquire(self) -> Permit | None:
        """A permit for one call, or None if the call must be rejected."""
        permit = self.standing
        if permit is not None:
            return permit
        with self._lock:
            permit, change = self._acquire_locked()
        if change is not None:
            self._notify(change)
        return permit

    def _acquire_locked(self) -> tuple[Permit | None, tuple[str, str] | None]:
        state = self._state
        if self.standing is not None:  # closed or disabled again since the unlocked read
            return self.standing, None
        if state is FORCED_OPEN:
            return None, None
        change = None
        if state is OPEN:
            if self._now() < self._open_until:
                return None, None
            change = self._transition(HALF_OPEN)
        if len(self._trials) + self._trials_done < self.settings.half_open_calls:
            permit = Permit(self._epoch, True)
            self._trials.add(permit)
            return permit, change
        return None, change

    def record(self, permit: Permit, failed: bool, slow: bool) -> None:
        """The outcome of a call admitted with ``permit``."""
        if not failed and not slow:
            # A plain success can never trip the breaker (only failures and slow calls
            # do, as in Polly), so the permit counts it without the lock when it can.
            ok_until = permit.ok_until
            if ok_until is INF or self._now() < ok_until:
                next(permit.ok)  # type: ignore[arg-type]
                return
        with self._lock:
            if permit.epoch == self._epoch and not permit.trial:
                change = self._record_closed(failed, slow) if self._state is CLOSED else None
                self._refresh_standing()
            elif permit.trial and permit in self._trials:
                change = self._record_trial(permit, failed, slow)
            else:
                return  # admitted in an earlier epoch: not evidence any more
        if change is not None:
            self._notify(change)

    def _refresh_standing(self) -> None:
        """After the window moved to a new bucket, point the standing permit at that
        bucket's counter: with a ticker, until it calls back (``_tick``) when the bucket
        ends; without one, until the clock time the hot path then checks."""
        standing = self.standing
        if standing is None:
            return
        ok_until, ok = self._window.counter()
        if standing.ok is ok:
            return
        # ``ok`` first: a call that still sees the old ``ok_until`` then takes the
        # locked path, which counts it in the right bucket.
        standing.ok = ok
        if self._ticker is None or ok_until is INF or ok_until == -INF:
            standing.ok_until = ok_until  # -INF: a new window, bucketed on first use
        else:
            standing.ok_until = INF
            self._arm(ok_until)

    def _arm(self, when: float) -> None:
        if self._tick_at != when:
            self._tick_at = when
            self._ticker.call_at(when, self._tick)  # type: ignore[union-attr]

    def _tick(self, when: float) -> None:
        """The ticker's callback: the time bucket that ended at ``when`` is over."""
        with self._lock:
            if when != self._tick_at:
                return  # a transition or a newer bucket superseded this call
            self._tick_at = None
            standing, window = self.standing, self._window
            if standing is None or standing.ok_until is not INF:
                return
            assert isinstance(window, TimeWindow)
            busy = window.rotate()
            ok_until, ok = window.counter()
            standing.ok = ok
            if busy:
                self._arm(ok_until)
            else:
                # Nobody called in the bucket that ended: stop waking up for this
                # breaker. The hot path checks the clock again, and the first success
                # after ``ok_until`` comes through ``record``, which re-arms the ticker.
                standing.ok_until = ok_until

    def _consecutive_failures(self) -> int:
        """Failures since the last success (successes are counted lock-free, so a
        success shows as a change of the window's successes_ever since the last look)."""
        seen = self._window.successes_ever()
        if seen != self._successes_seen:
            self._successes_seen = seen
            self._consecutive = 0
        return self._consecutive

    def _record_closed(self, failed: bool, slow: bool) -> tuple[str, str] | None:
        self._window.add(failed, slow)
        if not failed:
            if not slow:
                return None
        else:
            self._consecutive = self._consecutive_failures() + 1
            if self._consecutive >= self._consecutive_limit:
                return self._transition(OPEN)
        calls, failures, slow_calls = self._window.totals()
        # Compare rates, not products: 7 / 25 >= 0.28 holds, 7 >= 0.28 * 25 does not.
        if calls >= self._min_calls and (
            failures / calls >= self._rate or slow_calls / calls >= self._slow_rate
        ):
            return self._transition(OPEN)
        return None

    def _record_trial(self, permit: Permit, failed: bool, slow: bool) -> tuple[str, str] | None:
        self._trials.discard(permit)
        if failed:
            return self._transition(OPEN)
        self._trials_done += 1
        self._trials_slow += slow
        needed = self.settings.half_open_calls
        if self._trials_done < needed:
            return None
        if self._trials_slow / needed >= self._slow_rate:
            return self._transition(OPEN)
        return self._transition(CLOSED)

    def release(self, permit: Permit) -> None:
        """The call ended with no outcome (cancelled, ignored): free its trial slot."""
        if permit.trial:
            with self._lock:
                self._trials.discard(permit)

    # Async twins for the BreakerBackend protocol. Async drivers skip them because the
    # core is ``nonblocking``; they exist so the core is a complete backend.
    async def aacquire(self) -> Permit | None:
        return self.acquire()

    async def arecord(self, permit: Permit, failed: bool, slow: bool) -> None:
        self.record(permit, failed, slow)

    async def arelease(self, permit: Permit) -> None:
        self.release(permit)

    # -- transitions -----------------------------------------------------------------

    def force(self, action: str) -> None:
        """Manual control: ``open``, ``close``, ``reset`` or ``disable``."""
        change: tuple[str, str] | None
        with self._lock:
            if action == "open":
                change = self._transition(FORCED_OPEN)
            elif action == "disable":
                change = self._transition(DISABLED)
            elif action == "close":
                change = None if self._state is CLOSED else self._transition(CLOSED)
            elif action == "reset":
                change = self._transition(CLOSED)
                self._opens = 0
            else:
                raise ValueError(f"unknown breaker action {action!r}")
        if change is not None and change[0] != change[1]:
            self._notify(change)

    def _transition(self, to: str) -> tuple[str, str]:
        came_from = self._state
        self._state = to
        self._epoch += 1
        self.standing = None
        self._trials.clear()
        self._trials_done = self._trials_slow = 0
        self._consecutive = self._successes_seen = 0
        self._tick_at = None
        # A new window object, not a cleared one: lock-free successes still counting
        # into the old one cannot leak into the new state.
        self._window = (
            NullWindow() if to is DISABLED else make_window(self.settings.window, self._now)
        )
        if to is CLOSED or to is DISABLED:
            self.standing = Permit(self._epoch, False, *self._window.counter())
        if to is OPEN:
            self._opens += 1
            self._open_duration = self.settings.open_duration(self._opens, self._open_duration)
            self._open_until = self._now() + self._open_duration
        elif to is CLOSED or to is DISABLED:
            self._opens = 0
        return came_from, to
