"""CircuitBreaker: transitions, windows, classification, manual control, metrics, events.

Time is virtual (``FakeClock``): it only moves when a test, or the called function,
advances it. A function that calls ``clock.advance(d)`` simulates a call lasting ``d``.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from dataclasses import FrozenInstanceError
from datetime import timedelta
from fractions import Fraction
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilience
from resilience import (
    BreakerMetrics,
    CallOutcome,
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    Rejected,
    ResilienceError,
    StateChange,
)
from resilience.testing import FakeClock

# -- helpers ------------------------------------------------------------------------


class Boom(Exception):
    """The called function failed."""


class Benign(Exception):
    """An exception that a breaker configured with ``failure_on=(Boom,)`` treats as a success."""


class Skip(Exception):
    """An exception configured as ``ignore``d."""


class Abandoned(BaseException):
    """Not an ``Exception``: like a cancellation or an interrupt."""


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("down")


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        assert breaker.call(ok) == "ok"


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def slow(clock: FakeClock, seconds: float, result: Any = "ok") -> Any:
    """A call that lasts ``seconds`` of virtual time."""
    clock.advance(seconds)
    return result


def slow_boom(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    raise Boom("slow and down")


def move_to(clock: FakeClock, when: float) -> None:
    clock.advance(when - clock.monotonic())


def tripped(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    """A breaker that one failure opens, already opened by one failure."""
    kwargs.setdefault("minimum_calls", 1)
    kwargs.setdefault("window", CountWindow(10))
    breaker = CircuitBreaker("dep", clock=clock, **kwargs)
    fail(breaker)
    assert breaker.state == "open"
    return breaker


def half_open(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    breaker = tripped(clock, **kwargs)
    clock.advance(breaker.settings.open_duration(1, 0.0))
    assert breaker.state == "half_open"
    return breaker


def rejection(breaker: CircuitBreaker) -> CircuitOpen:
    called = []
    with pytest.raises(CircuitOpen) as info:
        breaker.call(called.append, 1)
    assert called == [], "a rejected call must not run the function"
    return info.value


def window_counts(breaker: CircuitBreaker) -> tuple[int, int, int]:
    m = breaker.metrics()
    return m.calls, m.failures, m.slow_calls


# -- construction ---------------------------------------------------------------------


def test_defaults(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    s = breaker.settings
    assert (s.failure_rate, s.minimum_calls, s.consecutive_failures) == (0.5, 10, None)
    assert (s.window, s.slow_call_duration, s.slow_call_rate) == (60.0, None, 1.0)
    assert (s.open_for, s.half_open_calls) == (30.0, 1)
    assert breaker.name is None
    assert breaker.state == "closed"
    assert breaker.metrics() == BreakerMetrics("closed", 0, 0, 0, 0.0, 0.0, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"failure_rate": 1.5}, ValueError, "failure_rate"),
        ({"failure_rate": 0.0}, ValueError, "failure_rate"),
        ({"failure_rate": "half"}, TypeError, "failure_rate"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
        ({"minimum_calls": 2.5}, TypeError, "minimum_calls"),
        ({"consecutive_failures": 0}, ValueError, "consecutive_failures"),
        ({"window": 0}, ValueError, "window"),
        ({"window": -5.0}, ValueError, "window"),
        ({"slow_call_duration": 0}, ValueError, "slow_call_duration"),
        ({"slow_call_rate": 2}, ValueError, "slow_call_rate"),
        ({"open_for": -1}, ValueError, "open_for"),
        ({"open_for": lambda n: -1.0}, ValueError, "open_for"),
        ({"half_open_calls": 0}, ValueError, "half_open_calls"),
        ({"failure_on": "Boom"}, TypeError, "failure_on"),
        ({"failure_on": (Boom, 3)}, TypeError, "failure_on"),
        ({"ignore": 42}, TypeError, "ignore"),
        ({"failure_if": 503}, TypeError, "failure_if"),
        ({"store": object()}, TypeError, "store"),
        ({"failure_rate": None}, ValueError, "failure_rate"),
    ],
)
def test_invalid_arguments_name_the_parameter(
    clock: FakeClock, kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    with pytest.raises(error, match=param):
        CircuitBreaker(clock=clock, **kwargs)


def test_count_window_size_is_validated() -> None:
    with pytest.raises(ValueError, match=r"CountWindow\.size"):
        CountWindow(0)


def test_failure_rate_none_is_allowed_with_another_trigger(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=2, minimum_calls=1, clock=clock
    )
    for _ in range(5):  # 50% failures, never two in a row: the rate trigger is off
        fail(breaker)
        succeed(breaker)
    assert breaker.state == "closed"
    fail(breaker, 2)
    assert breaker.state == "open"


def test_timedelta_arguments(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=1,
        window=timedelta(seconds=10),
        open_for=timedelta(seconds=5),
        slow_call_duration=timedelta(milliseconds=500),
        clock=clock,
    )
    assert breaker.settings.window == 10.0
    assert breaker.settings.slow_call_duration == 0.5
    fail(breaker)
    assert rejection(breaker).retry_after == 5.0
    clock.advance(5)
    assert breaker.state == "half_open"


# -- closed -> open ---------------------------------------------------------------------

WINDOWS = [pytest.param(CountWindow(100), id="count"), pytest.param(60.0, id="time")]


@pytest.mark.parametrize("window", WINDOWS)
def test_minimum_calls_gates_the_failure_rate(clock: FakeClock, window: Any) -> None:
    breaker = CircuitBreaker(minimum_calls=10, failure_rate=0.5, window=window, clock=clock)
    fail(breaker, 9)  # 100% failures, but too few calls to judge
    assert breaker.state == "closed"
    assert window_counts(breaker) == (9, 9, 0)
    fail(breaker)
    assert breaker.state == "open"


@pytest.mark.parametrize("window", WINDOWS)
def test_opens_when_failure_rate_reached(clock: FakeClock, window: Any) -> None:
    breaker = CircuitBreaker(minimum_calls=10, failure_rate=0.5, window=window, clock=clock)
    succeed(breaker, 6)
    fail(breaker, 3)
    assert window_counts(breaker) == (9, 3, 0)
    fail(breaker)  # 4 of 10: below the rate
    assert breaker.state == "closed"
    succeed(breaker, 2)
    fail(breaker)  # 5 of 13
    assert breaker.state == "closed"
    fail(breaker)  # 6 of 14
    assert breaker.state == "closed"
    fail(breaker)  # 7 of 15
    assert breaker.state == "closed"
    fail(breaker)  # 8 of 16 = 50%
    assert breaker.state == "open"


@pytest.mark.parametrize("window", WINDOWS)
def test_a_success_never_opens_the_breaker(clock: FakeClock, window: Any) -> None:
    breaker = CircuitBreaker(minimum_calls=10, failure_rate=0.5, window=window, clock=clock)
    fail(breaker, 6)  # 6 failures, too few calls to judge
    succeed(breaker, 4)  # now 6 of 10 have failed, but only failures are evaluated
    assert breaker.state == "closed"
    assert window_counts(breaker) == (10, 6, 0)
    fail(breaker)
    assert breaker.state == "open"


@pytest.mark.parametrize(
    ("rate", "calls"),
    [(0.5, 10), (0.25, 8), (0.28, 25), (0.55, 100), (0.07, 100)],
)
def test_failure_rate_threshold_is_inclusive(clock: FakeClock, rate: float, calls: int) -> None:
    """The contract: open when failures/calls >= failure_rate. With exactly that many
    failures the breaker must open; with one fewer it must not."""
    needed = next(k for k in range(calls + 1) if Fraction(k, calls) >= Fraction(str(rate)))
    assert needed / calls >= rate  # the ratio as Python computes it, too

    def run(failures: int) -> str:
        breaker = CircuitBreaker(
            minimum_calls=calls, failure_rate=rate, window=CountWindow(calls), clock=clock
        )
        succeed(breaker, calls - failures)
        fail(breaker, failures)
        return breaker.state

    assert run(needed - 1) == "closed"
    assert run(needed) == "open"


def test_consecutive_failures_open_regardless_of_minimum_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, minimum_calls=100, clock=clock)
    fail(breaker, 2)
    assert breaker.metrics().consecutive_failures == 2
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, minimum_calls=100, clock=clock)
    fail(breaker, 2)
    succeed(breaker)
    assert breaker.metrics().consecutive_failures == 0
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_a_non_failure_exception_is_a_success_and_resets_the_streak(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        consecutive_failures=3, minimum_calls=100, failure_on=(Boom,), clock=clock
    )
    fail(breaker, 2)
    error = Benign("not a failure")
    with pytest.raises(Benign) as info:
        breaker.call(_raise, error)
    assert info.value is error
    assert breaker.metrics().consecutive_failures == 0
    assert window_counts(breaker) == (3, 2, 0)
    fail(breaker, 2)
    assert breaker.state == "closed"


def test_an_ignored_exception_neither_counts_nor_resets_the_streak(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, minimum_calls=100, ignore=Skip, clock=clock)
    fail(breaker, 2)
    with pytest.raises(Skip):
        breaker.call(_raise, Skip())
    assert window_counts(breaker) == (2, 2, 0)
    assert breaker.metrics().consecutive_failures == 2
    fail(breaker)
    assert breaker.state == "open"


def _raise(exc: BaseException) -> None:
    raise exc


# -- count window -------------------------------------------------------------------


def test_count_window_keeps_only_the_last_n_outcomes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=4, failure_rate=0.75, window=CountWindow(4), clock=clock)
    fail(breaker, 2)
    succeed(breaker, 2)
    assert window_counts(breaker) == (4, 2, 0)
    succeed(breaker)  # F S S S
    assert window_counts(breaker) == (4, 1, 0)
    succeed(breaker)  # S S S S
    assert window_counts(breaker) == (4, 0, 0)
    fail(breaker, 2)  # S S F F: 50%
    assert (breaker.state, window_counts(breaker)) == ("closed", (4, 2, 0))
    fail(breaker)  # S F F F: 75%
    assert breaker.state == "open"


OUTCOMES = st.sampled_from(["ok", "fail", "slow_ok", "slow_fail", "ignored", "benign"])
FRACTIONS = st.sampled_from([0.25, 0.5, 0.75, 1.0])


@settings(max_examples=150, deadline=None, database=None)
@given(
    size=st.integers(1, 8),
    minimum_calls=st.integers(1, 8),
    rate=FRACTIONS,
    slow_rate=FRACTIONS,
    consecutive=st.none() | st.integers(1, 4),
    outcomes=st.lists(OUTCOMES, max_size=40),
)
def test_closed_state_matches_a_reference_model(
    size: int,
    minimum_calls: int,
    rate: float,
    slow_rate: float,
    consecutive: int | None,
    outcomes: list[str],
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        minimum_calls=minimum_calls,
        failure_rate=rate,
        consecutive_failures=consecutive,
        window=CountWindow(size),
        slow_call_duration=1.0,
        slow_call_rate=slow_rate,
        failure_on=(Boom,),
        ignore=(Skip,),
        clock=clock,
    )
    window: deque[tuple[bool, bool]] = deque(maxlen=size)
    # A count window never holds more than `size` calls: minimum_calls is capped there,
    # as in resilience4j, so the rate rules still apply.
    minimum_calls = min(minimum_calls, size)
    streak = 0
    for outcome in outcomes:
        duration = 1.0 if outcome.startswith("slow") else 0.5
        if outcome in ("ok", "slow_ok"):
            breaker.call(slow, clock, duration)
        else:
            exc = {"ignored": Skip, "benign": Benign}.get(outcome, Boom)
            with pytest.raises(exc):
                breaker.call(_slow_raise, clock, duration, exc)
        if outcome == "ignored":
            pass
        else:
            failed, is_slow = outcome in ("fail", "slow_fail"), duration >= 1.0
            window.append((failed, is_slow))
            streak = streak + 1 if failed else 0
            calls = len(window)
            failures = sum(f for f, _ in window)
            slow_calls = sum(s for _, s in window)
            if (failed or is_slow) and (
                (consecutive is not None and streak >= consecutive)
                or (
                    calls >= minimum_calls
                    and (failures / calls >= rate or slow_calls / calls >= slow_rate)
                )
            ):
                assert breaker.state == "open"
                assert breaker.metrics().consecutive_opens == 1
                return
        m = breaker.metrics()
        assert m.state == "closed"
        assert (m.calls, m.failures, m.slow_calls) == (
            len(window),
            sum(f for f, _ in window),
            sum(s for _, s in window),
        )
        assert m.consecutive_failures == streak


def _slow_raise(clock: FakeClock, seconds: float, exc: type[BaseException]) -> None:
    clock.advance(seconds)
    raise exc()


# -- time window ----------------------------------------------------------------------


def test_time_window_outcomes_age_out(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=4, failure_rate=0.5, window=10.0, clock=clock)
    move_to(clock, 0.5)
    fail(breaker, 3)  # too few calls to judge
    move_to(clock, 9.5)
    succeed(breaker, 3)
    assert window_counts(breaker) == (6, 3, 0)
    move_to(clock, 10.25)  # the failures of t=0.5 are gone
    assert window_counts(breaker) == (3, 0, 0)
    fail(breaker)  # 1 of 4; had the old failures stayed it would be 4 of 7
    assert breaker.state == "closed"
    assert window_counts(breaker) == (4, 1, 0)


def test_time_window_successes_age_out_too(clock: FakeClock) -> None:
    breaker = CircuitBreaker(window=10.0, clock=clock)
    move_to(clock, 0.5)
    succeed(breaker, 3)
    move_to(clock, 1.5)
    succeed(breaker, 2)
    fail(breaker)
    assert window_counts(breaker) == (6, 1, 0)
    move_to(clock, 10.5)
    assert window_counts(breaker) == (3, 1, 0)
    move_to(clock, 11.0)
    assert window_counts(breaker) == (0, 0, 0)
    succeed(breaker)
    assert window_counts(breaker) == (1, 0, 0)


@pytest.mark.parametrize(
    ("window", "start", "when"),
    [
        (10.0, 0.0, 0.0),  # at the start of a bucket: kept for the whole window
        (10.0, 0.0, 0.5),
        (10.0, 0.0, 0.75),
        (10.0, 3.5, 3.5),  # buckets align on clock time, not on the first call
        (10.0, 100.0, 104.25),
        (60.0, 0.0, 7.5),
    ],
)
def test_time_window_forgets_an_outcome_between_90_and_100_percent_of_the_window(
    window: float, start: float, when: float
) -> None:
    clock = FakeClock(start)
    width = window / 10
    bucket_end = (when // width + 1) * width
    forgotten_at = bucket_end + 9 * width
    assert 0.9 * window <= forgotten_at - when <= window

    breaker = CircuitBreaker(window=window, clock=clock)
    move_to(clock, when)
    fail(breaker)
    move_to(clock, forgotten_at - 0.25)
    assert window_counts(breaker) == (1, 1, 0)
    move_to(clock, forgotten_at)
    assert window_counts(breaker) == (0, 0, 0)


def test_time_window_counts_all_ten_buckets(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=10, failure_rate=0.5, window=10.0, clock=clock)
    for second in range(9):  # one failure in each of nine buckets
        move_to(clock, second + 0.5)
        fail(breaker)
    move_to(clock, 9.75)
    assert window_counts(breaker) == (9, 9, 0)
    assert breaker.state == "closed"
    fail(breaker)  # the tenth bucket: 10 calls now, the one of t=0.5 included
    assert breaker.state == "open"


# -- slow calls -----------------------------------------------------------------------


def test_slow_calls_open_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=4,
        failure_rate=1.0,
        slow_call_duration=2.0,
        slow_call_rate=0.5,
        window=CountWindow(10),
        clock=clock,
    )
    assert breaker.call(slow, clock, 0.5, "a") == "a"
    assert breaker.call(slow, clock, 2.0, "b") == "b"  # exactly the threshold: slow
    assert breaker.call(slow, clock, 1.99, "c") == "c"  # just under: not slow
    assert window_counts(breaker) == (3, 0, 1)
    assert breaker.state == "closed"
    breaker.call(slow, clock, 3.0)  # 2 slow of 4
    assert breaker.state == "open"


def test_slow_calls_below_the_rate_keep_it_closed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=4, slow_call_duration=1.0, slow_call_rate=0.75, clock=clock
    )
    for _ in range(3):
        breaker.call(slow, clock, 0.0)
        breaker.call(slow, clock, 5.0)
    assert window_counts(breaker) == (6, 0, 3)
    assert breaker.metrics().slow_call_rate == 0.5
    assert breaker.state == "closed"


def test_a_slow_failure_counts_as_failure_and_as_slow(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=10, slow_call_duration=1.0, clock=clock)
    with pytest.raises(Boom):
        breaker.call(slow_boom, clock, 1.5)
    assert window_counts(breaker) == (1, 1, 1)


def test_slow_call_rate_threshold_is_inclusive(clock: FakeClock) -> None:
    """7 slow calls of 25 is a slow-call rate of 0.28: that reaches slow_call_rate=0.28."""
    assert 7 / 25 >= 0.28
    breaker = CircuitBreaker(
        minimum_calls=25,
        slow_call_duration=1.0,
        slow_call_rate=0.28,
        window=CountWindow(25),
        clock=clock,
    )
    for _ in range(18):
        breaker.call(slow, clock, 0.0)
    for _ in range(7):
        breaker.call(slow, clock, 1.0)
    assert breaker.state == "open"


@pytest.mark.anyio
async def test_slow_async_calls_open_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=2, slow_call_duration=1.0, slow_call_rate=0.5, clock=clock
    )

    async def call(seconds: float) -> float:
        await clock.asleep(seconds)
        return seconds

    assert await breaker.acall(call, 0.25) == 0.25
    assert window_counts(breaker) == (1, 0, 0)
    assert await breaker.acall(call, 1.0) == 1.0
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await breaker.acall(call, 0.0)


@pytest.mark.anyio
async def test_slow_async_failure_counts_both(clock: FakeClock) -> None:
    breaker = CircuitBreaker(slow_call_duration=1.0, clock=clock)

    async def call() -> None:
        await clock.asleep(3)
        raise Boom

    with pytest.raises(Boom):
        await breaker.acall(call)
    assert window_counts(breaker) == (1, 1, 1)


# -- open -----------------------------------------------------------------------------


def test_open_rejects_without_calling_and_says_when_to_retry(clock: FakeClock) -> None:
    clock.advance(5)
    breaker = tripped(clock, open_for=30.0)
    error = rejection(breaker)
    assert isinstance(error, ResilienceError)
    assert (error.name, error.retry_after, error.state) == ("dep", 30.0, "open")
    clock.advance(12)
    assert rejection(breaker).retry_after == 18.0
    clock.advance(17.75)
    assert rejection(breaker).retry_after == 0.25
    assert breaker.state == "open"
    clock.advance(0.25)
    assert breaker.state == "half_open"
    assert breaker.metrics().state == "half_open"
    succeed(breaker)
    assert breaker.state == "closed"


def test_rejections_are_not_counted(clock: FakeClock) -> None:
    breaker = tripped(clock)
    for _ in range(5):
        rejection(breaker)
    assert window_counts(breaker) == (0, 0, 0)
    assert breaker.metrics().consecutive_opens == 1


def test_open_state_survives_until_open_for_elapses(clock: FakeClock) -> None:
    breaker = tripped(clock, open_for=10.0)
    clock.advance(9.75)
    rejection(breaker)
    clock.advance(0.25)
    succeed(breaker)
    assert breaker.state == "closed"


# -- half open ------------------------------------------------------------------------


def test_trial_success_closes_with_a_fresh_window(clock: FakeClock) -> None:
    breaker = half_open(clock, consecutive_failures=5)
    fail(breaker)  # a trial failure reopens
    clock.advance(30)
    succeed(breaker)
    assert breaker.metrics() == BreakerMetrics("closed", 0, 0, 0, 0.0, 0.0, 0, 0)


def test_after_closing_the_old_failures_are_forgotten(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=3, failure_rate=0.5, window=CountWindow(10), clock=clock)
    succeed(breaker)
    fail(breaker, 2)  # 2 of 3
    assert breaker.state == "open"
    clock.advance(30)
    succeed(breaker)
    assert breaker.state == "closed"
    succeed(breaker, 2)
    fail(breaker)  # 1 of 3; with the old window it would be 3 of 7
    assert breaker.state == "closed"
    assert window_counts(breaker) == (3, 1, 0)


def test_trial_failure_reopens_for_a_full_open_for(clock: FakeClock) -> None:
    breaker = half_open(clock, open_for=30.0)
    clock.advance(7)  # the trial comes late: open_for counts from the reopening
    fail(breaker)
    assert breaker.state == "open"
    error = rejection(breaker)
    assert (error.retry_after, error.state) == (30.0, "open")
    assert breaker.metrics().consecutive_opens == 2


def test_all_half_open_calls_must_succeed(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=3)
    succeed(breaker, 2)
    assert breaker.state == "half_open"
    succeed(breaker)
    assert breaker.state == "closed"

    breaker = half_open(clock, half_open_calls=3)
    succeed(breaker, 2)
    fail(breaker)
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2


def test_half_open_rejects_calls_beyond_the_trials_with_zero_retry_after(
    clock: FakeClock,
) -> None:
    breaker = half_open(clock)
    seen: list[CircuitOpen] = []

    def trial() -> str:
        seen.append(rejection(breaker))
        return "ok"

    assert breaker.call(trial) == "ok"
    (error,) = seen
    assert (error.retry_after, error.state, error.name) == (0.0, "half_open", "dep")
    assert breaker.state == "closed"


def test_half_open_permits_count_trials_in_flight_and_succeeded(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=3)
    succeed(breaker)  # 1 succeeded
    inner_results: list[str] = []

    def trial() -> str:  # 1 succeeded + this one in flight: one more fits
        inner_results.append(breaker.call(ok))  # 2 succeeded + this one in flight: full
        rejection(breaker)
        return "ok"

    assert breaker.call(trial) == "ok"
    assert inner_results == ["ok"]
    assert breaker.state == "closed"


def test_an_ignored_trial_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = half_open(clock, ignore=(Skip,), half_open_calls=1)
    with pytest.raises(Skip):
        breaker.call(_raise, Skip())
    assert breaker.state == "half_open"
    succeed(breaker)
    assert breaker.state == "closed"


@pytest.mark.parametrize("interrupt", [Abandoned, KeyboardInterrupt, GeneratorExit])
def test_an_interrupted_trial_gives_its_permit_back(
    clock: FakeClock, interrupt: type[BaseException]
) -> None:
    breaker = half_open(clock, half_open_calls=1)
    with pytest.raises(interrupt):
        breaker.call(_raise, interrupt())
    assert breaker.state == "half_open"
    assert breaker.metrics().consecutive_opens == 1
    succeed(breaker)
    assert breaker.state == "closed"


def test_a_trial_raising_a_non_failure_exception_closes(clock: FakeClock) -> None:
    breaker = half_open(clock, failure_on=(Boom,))
    with pytest.raises(Benign):
        breaker.call(_raise, Benign())
    assert breaker.state == "closed"


def test_a_trial_whose_result_is_a_failure_reopens(clock: FakeClock) -> None:
    breaker = half_open(clock, failure_if=lambda result: result == 503)
    assert breaker.call(lambda: 503) == 503
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2


@pytest.mark.parametrize(
    ("slow_call_rate", "durations", "final"),
    [
        (0.5, [2.0, 0.0], "open"),  # 1 slow of 2 >= 50%
        (0.5, [0.0, 0.5], "closed"),
        (1.0, [2.0, 0.0], "closed"),  # 1 slow of 2 < 100%
        (1.0, [2.0, 1.0], "open"),  # 1.0 is exactly the threshold: slow
    ],
)
def test_slow_trials_reopen(
    clock: FakeClock, slow_call_rate: float, durations: list[float], final: str
) -> None:
    breaker = half_open(
        clock, half_open_calls=2, slow_call_duration=1.0, slow_call_rate=slow_call_rate
    )
    breaker.call(slow, clock, durations[0])
    assert breaker.state == "half_open"
    breaker.call(slow, clock, durations[1])
    assert breaker.state == final
    assert breaker.metrics().consecutive_opens == (2 if final == "open" else 0)


def test_slow_trial_rate_threshold_is_inclusive(clock: FakeClock) -> None:
    """7 slow trials of 25 is a slow-call rate of 0.28: that reaches slow_call_rate=0.28."""
    assert 7 / 25 >= 0.28
    breaker = half_open(clock, half_open_calls=25, slow_call_duration=1.0, slow_call_rate=0.28)
    for _ in range(18):
        breaker.call(slow, clock, 0.0)
    for _ in range(7):
        breaker.call(slow, clock, 1.0)
    assert breaker.state == "open"


def test_slow_trials_ignored_without_slow_call_duration(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=2)
    breaker.call(slow, clock, 100.0)
    breaker.call(slow, clock, 100.0)
    assert breaker.state == "closed"


# -- growing open durations -------------------------------------------------------------


def test_open_for_callable_grows_with_consecutive_opens(clock: FakeClock) -> None:
    asked: list[int] = []

    def open_for(opens: int) -> float:
        asked.append(opens)
        return 10.0 * opens

    breaker = CircuitBreaker(minimum_calls=1, open_for=open_for, clock=clock)
    asked.clear()  # the constructor may probe open_for(1) to validate it
    fail(breaker)
    assert rejection(breaker).retry_after == 10.0
    clock.advance(10.0)
    for opens, duration in [(2, 20.0), (3, 30.0), (4, 40.0)]:
        fail(breaker)  # the trial fails
        assert breaker.metrics().consecutive_opens == opens
        assert rejection(breaker).retry_after == duration
        clock.advance(duration - 0.5)
        assert rejection(breaker).retry_after == 0.5
        clock.advance(0.5)
        assert breaker.state == "half_open"
    succeed(breaker)  # closes; the streak resets
    assert breaker.state == "closed"
    assert breaker.metrics().consecutive_opens == 0
    fail(breaker)
    assert rejection(breaker).retry_after == 10.0
    assert asked == [1, 2, 3, 4, 1]


def test_open_for_callable_may_return_a_timedelta(clock: FakeClock) -> None:
    breaker = tripped(clock, open_for=lambda opens: timedelta(minutes=opens))
    assert rejection(breaker).retry_after == 60.0
    clock.advance(60)
    fail(breaker)
    assert rejection(breaker).retry_after == 120.0


def test_a_failing_open_for_callable_keeps_the_last_duration(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def open_for(opens: int) -> float:
        if opens > 1:
            raise RuntimeError("bad config")
        return 10.0

    breaker = tripped(clock, open_for=open_for)
    clock.advance(10)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        fail(breaker)  # the caller sees its own exception, not the callable's
    assert breaker.state == "open"
    assert rejection(breaker).retry_after == 10.0
    assert any("open_for" in record.getMessage() for record in caplog.records)


def test_close_resets_the_open_streak(clock: FakeClock) -> None:
    breaker = tripped(clock, open_for=lambda opens: 10.0 * opens)
    clock.advance(10)
    fail(breaker)
    assert breaker.metrics().consecutive_opens == 2
    breaker.close()
    assert breaker.metrics().consecutive_opens == 0
    fail(breaker)
    assert rejection(breaker).retry_after == 10.0


# -- manual control -------------------------------------------------------------------


def test_open_forces_the_breaker_open_until_closed_by_hand(clock: FakeClock) -> None:
    breaker = CircuitBreaker("dep", clock=clock)
    breaker.open()
    assert breaker.state == "forced_open"
    error = rejection(breaker)
    assert (error.name, error.retry_after, error.state) == ("dep", None, "forced_open")
    clock.advance(1e6)  # time does not close it
    assert breaker.state == "forced_open"
    assert rejection(breaker).retry_after is None
    assert breaker.metrics().state == "forced_open"
    breaker.close()
    assert breaker.state == "closed"
    succeed(breaker)


def test_open_from_open_or_half_open_forces_it_open(clock: FakeClock) -> None:
    breaker = tripped(clock)
    breaker.open()
    assert breaker.state == "forced_open"
    breaker = half_open(clock)
    breaker.open()
    assert rejection(breaker).retry_after is None


def test_close_from_open_gives_a_fresh_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=2, window=CountWindow(10), clock=clock)
    succeed(breaker)
    fail(breaker)
    assert breaker.state == "open"
    breaker.close()
    assert breaker.state == "closed"
    assert window_counts(breaker) == (0, 0, 0)
    fail(breaker)  # would be 2 of 3 in the old window; 1 call is below minimum_calls
    assert breaker.state == "closed"


def test_close_when_closed_keeps_the_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, clock=clock)
    events: list[Event] = []
    breaker.listen(events.append)
    succeed(breaker)
    fail(breaker, 2)
    breaker.close()
    assert breaker.state == "closed"
    assert window_counts(breaker) == (3, 2, 0)
    assert breaker.metrics().consecutive_failures == 2
    assert [e for e in events if e.type == "state_change"] == []


def test_reset_when_closed_clears_the_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=3, clock=clock)
    succeed(breaker)
    fail(breaker, 2)
    breaker.reset()
    assert breaker.metrics() == BreakerMetrics("closed", 0, 0, 0, 0.0, 0.0, 0, 0)
    fail(breaker, 2)
    assert breaker.state == "closed"


@pytest.mark.parametrize("setup", ["open", "half_open", "forced_open", "disabled"])
def test_reset_from_any_state(clock: FakeClock, setup: str) -> None:
    breaker = tripped(clock, open_for=lambda opens: 10.0 * opens)
    clock.advance(10)
    fail(breaker)  # second open in a row
    if setup == "half_open":
        clock.advance(20)
    elif setup == "forced_open":
        breaker.open()
    elif setup == "disabled":
        breaker.disable()
    assert breaker.state == setup
    breaker.reset()
    assert breaker.metrics() == BreakerMetrics("closed", 0, 0, 0, 0.0, 0.0, 0, 0)
    fail(breaker)
    assert rejection(breaker).retry_after == 10.0  # the streak starts over


def test_disable_admits_everything_and_records_nothing(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, minimum_calls=1, clock=clock)
    breaker.disable()
    assert breaker.state == "disabled"
    fail(breaker, 20)
    succeed(breaker, 5)
    with pytest.raises(Benign):
        breaker.call(_raise, Benign())
    assert breaker.state == "disabled"
    assert breaker.metrics() == BreakerMetrics("disabled", 0, 0, 0, 0.0, 0.0, 0, 0)
    breaker.close()
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_disable_an_open_breaker(clock: FakeClock) -> None:
    breaker = tripped(clock)
    breaker.disable()
    assert breaker.state == "disabled"
    fail(breaker, 3)
    succeed(breaker)
    assert breaker.metrics() == BreakerMetrics("disabled", 0, 0, 0, 0.0, 0.0, 0, 0)


def test_disabled_slow_calls_are_not_recorded(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=1, slow_call_duration=1.0, clock=clock)
    breaker.disable()
    breaker.call(slow, clock, 5.0)
    assert breaker.state == "disabled"
    assert window_counts(breaker) == (0, 0, 0)


def test_open_and_reset_from_disabled(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    breaker.disable()
    breaker.open()
    assert breaker.state == "forced_open"
    breaker.disable()
    breaker.reset()
    assert breaker.state == "closed"


def test_manual_transitions_emit_state_changes_only_when_the_state_changes(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(clock=clock)
    changes: list[tuple[str, str]] = []

    def on_event(e: Event) -> None:
        if e.type == "state_change":
            assert isinstance(e.details, StateChange)
            changes.append((e.details.from_state, e.details.to_state))

    breaker.listen(on_event)
    breaker.close()
    breaker.reset()
    breaker.open()
    breaker.open()
    breaker.close()
    breaker.close()
    breaker.disable()
    breaker.disable()
    breaker.reset()
    assert changes == [
        ("closed", "forced_open"),
        ("forced_open", "closed"),
        ("closed", "disabled"),
        ("disabled", "closed"),
    ]


# -- stale epochs ---------------------------------------------------------------------


def test_an_outcome_from_an_earlier_closed_epoch_is_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, minimum_calls=1, clock=clock)

    def call() -> None:
        breaker.open()
        breaker.close()  # closed again, but a new epoch with a fresh window
        raise Boom

    with pytest.raises(Boom):
        breaker.call(call)
    assert breaker.state == "closed"
    assert window_counts(breaker) == (0, 0, 0)


def test_a_call_admitted_before_the_breaker_opened_does_not_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, minimum_calls=100, open_for=30, clock=clock)

    def call() -> None:
        fail(breaker, 2)  # others trip the breaker while this call runs
        assert breaker.state == "open"
        clock.advance(30)
        succeed(breaker)  # a trial closes it again
        raise Boom  # this call started two epochs ago

    with pytest.raises(Boom):
        breaker.call(call)
    assert breaker.state == "closed"
    assert window_counts(breaker) == (0, 0, 0)
    assert breaker.metrics().consecutive_failures == 0


def test_a_success_admitted_while_closed_cannot_close_a_half_open_breaker(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_for=30, clock=clock)

    def call() -> str:
        fail(breaker)
        clock.advance(30)
        assert breaker.state == "half_open"
        return "late"

    assert breaker.call(call) == "late"
    assert breaker.state == "half_open"
    # The trial permit is still free: the late success did not use it up.
    seen: list[str] = []
    assert breaker.call(lambda: seen.append("trial") or "ok") == "ok"
    assert seen == ["trial"]
    assert breaker.state == "closed"


def test_a_stale_trial_outcome_is_ignored(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=2, open_for=30.0)

    def first_trial() -> str:
        fail(breaker)  # the second trial fails and reopens
        assert breaker.state == "open"
        return "ok"  # this success belongs to the previous half-open epoch

    assert breaker.call(first_trial) == "ok"
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2
    assert rejection(breaker).retry_after == 30.0


def test_a_trial_outcome_after_a_manual_close_is_ignored(clock: FakeClock) -> None:
    breaker = half_open(clock)

    def trial() -> None:
        breaker.close()
        raise Boom

    with pytest.raises(Boom):
        breaker.call(trial)
    assert breaker.state == "closed"
    assert window_counts(breaker) == (0, 0, 0)


# -- classification -------------------------------------------------------------------


def test_failure_on_types(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_on=(ConnectionError, TimeoutError), clock=clock)
    for exc in (ConnectionResetError(), TimeoutError(), ValueError(), KeyError()):
        with pytest.raises(type(exc)):
            breaker.call(_raise, exc)
    assert window_counts(breaker) == (4, 2, 0)


def test_failure_on_a_single_type(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_on=Boom, clock=clock)
    fail(breaker)
    with pytest.raises(ValueError):
        breaker.call(_raise, ValueError())
    assert window_counts(breaker) == (2, 1, 0)


class Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def test_failure_on_a_predicate(clock: FakeClock) -> None:
    seen: list[BaseException] = []

    def server_error(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, Status) and exc.status >= 500

    breaker = CircuitBreaker(failure_on=server_error, clock=clock)
    errors = [Status(503), Status(404), Status(500), ValueError()]
    for exc in errors:
        with pytest.raises(type(exc)):
            breaker.call(_raise, exc)
    assert seen == errors
    assert window_counts(breaker) == (4, 2, 0)


def test_ignore_types(clock: FakeClock) -> None:
    breaker = CircuitBreaker(ignore=(Skip, LookupError), clock=clock)
    for exc in (Skip(), KeyError(), IndexError(), Boom()):
        with pytest.raises(type(exc)):
            breaker.call(_raise, exc)
    assert window_counts(breaker) == (1, 1, 0)


def test_ignore_a_predicate(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        ignore=lambda exc: isinstance(exc, Status) and exc.status == 404, clock=clock
    )
    for exc in (Status(404), Status(503)):
        with pytest.raises(Status):
            breaker.call(_raise, exc)
    assert window_counts(breaker) == (1, 1, 0)


def test_ignore_wins_over_failure_on(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_on=(OSError,), ignore=(TimeoutError,), clock=clock)
    with pytest.raises(TimeoutError):
        breaker.call(_raise, TimeoutError())
    with pytest.raises(ConnectionError):
        breaker.call(_raise, ConnectionError())
    assert window_counts(breaker) == (1, 1, 0)

    breaker = CircuitBreaker(failure_on=lambda exc: True, ignore=lambda exc: True, clock=clock)
    fail(breaker)
    assert window_counts(breaker) == (0, 0, 0)


def test_failure_if_makes_a_result_a_failure(clock: FakeClock) -> None:
    results: list[object] = []

    def unavailable(result: object) -> bool:
        results.append(result)
        return result == 503

    breaker = CircuitBreaker(consecutive_failures=2, failure_if=unavailable, clock=clock)
    assert breaker.call(lambda: 503) == 503  # the result is still returned
    assert breaker.call(lambda: 200) == 200
    assert breaker.call(lambda: 503) == 503
    assert results == [503, 200, 503]
    assert window_counts(breaker) == (3, 2, 0)
    assert breaker.state == "closed"
    assert breaker.call(lambda: 503) == 503
    assert breaker.state == "open"


def test_failure_if_is_not_asked_about_exceptions(clock: FakeClock) -> None:
    asked: list[object] = []
    breaker = CircuitBreaker(failure_if=lambda r: asked.append(r) or False, clock=clock)
    fail(breaker)
    assert asked == []
    assert window_counts(breaker) == (1, 1, 0)


@pytest.mark.anyio
async def test_failure_if_async(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=2, failure_if=lambda r: r is None, clock=clock)

    async def returns(value: object) -> object:
        await anyio.lowlevel.checkpoint()
        return value

    assert await breaker.acall(returns, 1) == 1
    assert await breaker.acall(returns, None) is None
    assert breaker.state == "open"


def test_exceptions_propagate_unchanged(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    error = Boom("exact")
    with pytest.raises(Boom) as info:
        breaker.call(_raise, error)
    assert info.value is error


# -- metrics --------------------------------------------------------------------------


def test_metrics_snapshot(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=100, slow_call_duration=1.0, window=CountWindow(50), clock=clock
    )
    succeed(breaker, 3)
    breaker.call(slow, clock, 2.0)
    fail(breaker, 2)
    with pytest.raises(Boom):
        breaker.call(slow_boom, clock, 1.0)
    m = breaker.metrics()
    assert isinstance(m, BreakerMetrics)
    assert m == BreakerMetrics(
        state="closed",
        calls=7,
        failures=3,
        slow_calls=2,
        failure_rate=3 / 7,
        slow_call_rate=2 / 7,
        consecutive_failures=3,
        consecutive_opens=0,
    )
    with pytest.raises(FrozenInstanceError):
        m.calls = 0  # type: ignore[misc]
    succeed(breaker)
    assert m.calls == 7  # a snapshot, not a live view
    assert breaker.metrics().calls == 8


def test_metrics_in_open_and_half_open(clock: FakeClock) -> None:
    breaker = tripped(clock, open_for=10.0)
    m = breaker.metrics()
    assert (m.state, m.calls, m.consecutive_opens) == ("open", 0, 1)
    clock.advance(10)
    assert breaker.metrics().state == "half_open"


# -- events ---------------------------------------------------------------------------


def test_events_through_a_whole_cycle(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "payments", minimum_calls=2, open_for=10.0, ignore=(Skip,), clock=clock
    )
    events: list[Event] = []
    unsubscribe = breaker.listen(events.append)

    breaker.call(slow, clock, 1.5)
    with pytest.raises(Skip):
        breaker.call(_slow_raise, clock, 0.25, Skip)
    error = Boom()
    with pytest.raises(Boom):
        breaker.call(_raise, error)
    clock.advance(4)
    rejection(breaker)
    clock.advance(6)
    succeed(breaker)

    assert all(e.kind == "circuit_breaker" and e.name == "payments" for e in events)
    summary = [(e.type, e.details) for e in events]
    assert summary == [
        ("success", CallOutcome(duration=1.5)),
        ("ignored", CallOutcome(duration=0.25)),
        ("state_change", StateChange(from_state="closed", to_state="open")),
        ("failure", CallOutcome(duration=0.0)),
        ("rejected", Rejected(retry_after=6.0)),
        ("state_change", StateChange(from_state="open", to_state="half_open")),
        ("state_change", StateChange(from_state="half_open", to_state="closed")),
        ("success", CallOutcome(duration=0.0)),
    ]
    success, ignored, _, failure, rejected, *_ = events
    assert success.exception is None
    assert isinstance(ignored.exception, Skip)
    assert failure.exception is error
    assert rejected.exception is None
    assert events[-1].time == clock.monotonic()

    unsubscribe()
    unsubscribe()  # harmless
    fail(breaker)
    assert len(events) == 8


def test_global_listeners_see_breaker_events(clock: FakeClock) -> None:
    events: list[Event] = []
    unsubscribe = resilience.listen(events.append)
    try:
        breaker = CircuitBreaker("global", consecutive_failures=1, clock=clock)
        fail(breaker)
        rejection(breaker)
    finally:
        unsubscribe()
    assert [(e.name, e.type) for e in events] == [
        ("global", "state_change"),
        ("global", "failure"),
        ("global", "rejected"),
    ]


def test_a_failing_listener_does_not_break_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    seen: list[str] = []

    def bad(event: Event) -> None:
        raise RuntimeError("listener bug")

    breaker.listen(bad)
    breaker.listen(lambda e: seen.append(e.type))
    with caplog.at_level(logging.ERROR, logger="resilience"):
        succeed(breaker)
        fail(breaker)
    assert breaker.state == "open"
    assert seen == ["success", "state_change", "failure"]
    assert caplog.records


@pytest.mark.anyio
async def test_async_events(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    events: list[Event] = []
    breaker.listen(events.append)

    async def call(seconds: float, exc: BaseException | None = None) -> None:
        await clock.asleep(seconds)
        if exc is not None:
            raise exc

    await breaker.acall(call, 2.0)
    with pytest.raises(Boom):
        await breaker.acall(call, 0.5, Boom())
    with pytest.raises(CircuitOpen):
        await breaker.acall(call, 0.0)
    assert [(e.type, e.details) for e in events if e.type != "state_change"] == [
        ("success", CallOutcome(duration=2.0)),
        ("failure", CallOutcome(duration=0.5)),
        ("rejected", Rejected(retry_after=30.0)),
    ]
    assert events[-1].details == Rejected(retry_after=30.0)


# -- context managers -------------------------------------------------------------------


def test_with_counts_like_a_call(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=3, failure_rate=0.3, failure_on=(Boom,), ignore=(Skip,), clock=clock
    )
    with breaker:
        pass
    with pytest.raises(Benign), breaker:
        raise Benign
    with pytest.raises(Skip), breaker:
        raise Skip
    assert window_counts(breaker) == (2, 0, 0)
    error = Boom()
    with pytest.raises(Boom) as info, breaker:
        raise error
    assert info.value is error
    assert breaker.state == "open"
    ran = []
    with pytest.raises(CircuitOpen) as rejected, breaker:
        ran.append(1)
    assert ran == []
    assert rejected.value.retry_after == 30.0


def test_with_measures_slow_blocks(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        minimum_calls=1, slow_call_duration=1.0, slow_call_rate=0.5, clock=clock
    )
    with breaker:
        clock.advance(0.5)
    assert window_counts(breaker) == (1, 0, 0)
    with breaker:
        clock.advance(1.0)
    assert breaker.state == "open"


def test_with_as_a_trial(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=1)
    with breaker, pytest.raises(CircuitOpen), breaker:  # the only trial permit is taken
        pytest.fail("a second trial must not be admitted")
    assert breaker.state == "closed"

    breaker = half_open(clock)
    with pytest.raises(Abandoned), breaker:
        raise Abandoned
    assert breaker.state == "half_open"
    with pytest.raises(Boom), breaker:
        raise Boom
    assert breaker.state == "open"


def test_nested_with_blocks_record_their_own_outcomes(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=2)
    states = []

    def nested() -> None:
        with breaker:
            with breaker:
                pass  # one trial succeeds
            states.append(breaker.state)
            raise Boom  # the outer trial fails

    with pytest.raises(Boom):
        nested()
    assert states == ["half_open"]
    assert breaker.state == "open"


def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    with pytest.raises(RuntimeError):
        breaker.__exit__(None, None, None)


@pytest.mark.anyio
async def test_async_with_counts_like_a_call(clock: FakeClock) -> None:
    breaker = CircuitBreaker(minimum_calls=2, slow_call_duration=5.0, clock=clock)
    async with breaker:
        await clock.asleep(1)
    assert window_counts(breaker) == (1, 0, 0)

    async def slow_failure() -> None:
        async with breaker:
            await clock.asleep(5)
            raise Boom

    with pytest.raises(Boom):
        await slow_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        async with breaker:
            pytest.fail("the body of a rejected block must not run")
    clock.advance(30)
    async with breaker:
        await anyio.lowlevel.checkpoint()
    assert breaker.state == "closed"


@pytest.mark.anyio
async def test_async_with_cancelled_trial_gives_its_permit_back(clock: FakeClock) -> None:
    breaker = half_open(clock)
    with anyio.CancelScope() as scope:
        async with breaker:
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert breaker.state == "half_open"
    async with breaker:
        pass
    assert breaker.state == "closed"


@pytest.mark.anyio
async def test_async_with_in_concurrent_tasks_keeps_permits_apart(clock: FakeClock) -> None:
    breaker = half_open(clock, half_open_calls=2)
    entered = anyio.Event()
    failing_done = anyio.Event()
    both_in = [0]

    async def succeeding() -> None:
        async with breaker:
            both_in[0] += 1
            await entered.wait()
            await failing_done.wait()

    async def fail_inside() -> None:
        async with breaker:
            both_in[0] += 1
            while both_in[0] < 2:
                await anyio.lowlevel.checkpoint()
            entered.set()
            raise Boom

    async def failing() -> None:
        with pytest.raises(Boom):
            await fail_inside()
        failing_done.set()

    with anyio.fail_after(5):  # a guard against a hang, not a timing assertion
        async with anyio.create_task_group() as tg:
            tg.start_soon(succeeding)
            tg.start_soon(failing)
    # The failing trial reopened it; the other trial's late success is stale.
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2


# -- call, acall, decorator -------------------------------------------------------------


def test_call_passes_arguments(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.call(lambda a, b=0, *, c: (a, b, c), 1, b=2, c=3) == (1, 2, 3)
    assert window_counts(breaker) == (1, 0, 0)


def test_decorator_on_sync_and_async_functions(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, clock=clock)

    @breaker
    def fetch(x: int) -> int:
        """Fetch x."""
        if x < 0:
            raise Boom
        return x * 2

    @breaker
    async def afetch(x: int) -> int:
        return x

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch x."
    assert inspect.iscoroutinefunction(afetch)
    assert not inspect.iscoroutinefunction(fetch)
    assert fetch(4) == 8
    with pytest.raises(Boom):
        fetch(-1)
    assert window_counts(breaker) == (2, 1, 0)
    with pytest.raises(Boom):
        fetch(-1)
    with pytest.raises(CircuitOpen):
        fetch(1)


def test_decorated_method(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @breaker
        def get(self, fail: bool) -> int:
            self.calls += 1
            if fail:
                raise Boom
            return self.calls

    client = Client()
    assert client.get(False) == 1
    with pytest.raises(Boom):
        client.get(True)
    with pytest.raises(CircuitOpen):
        client.get(False)
    assert client.calls == 2


@pytest.mark.anyio
async def test_acall_and_async_decorator(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, clock=clock)
    ran: list[int] = []

    @breaker
    async def fetch(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        ran.append(x)
        if x < 0:
            raise Boom
        return x

    assert await fetch(3) == 3
    assert await breaker.acall(fetch.__wrapped__, 4) == 4
    with pytest.raises(Boom):
        await fetch(-1)
    with pytest.raises(Boom):
        await breaker.acall(fetch.__wrapped__, -2)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await fetch(5)
    assert ran == [3, 4, -1, -2]


@pytest.mark.anyio
async def test_a_cancelled_async_call_records_nothing(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await breaker.acall(anyio.sleep_forever)
    assert scope.cancelled_caught
    assert breaker.state == "closed"
    assert window_counts(breaker) == (0, 0, 0)
