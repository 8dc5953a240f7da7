"""Backoff strategies: the delay before each retry, their bounds, jitter and validation.

``delay(retry, previous)`` is asked for the ``retry``-th retry (1 for the first) with the
delay actually waited before the previous one (0 before the first).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience import Backoff, Constant, DecorrelatedJitter, Exponential, Linear, Retry
from resilience.testing import FakeClock

# Floats drawn by random.uniform(a, b) may land an ulp past b; allow that much.
EPS = 1e-9


def within(value: float, low: float, high: float) -> bool:
    slack = EPS * max(1.0, abs(high))
    return low - slack <= value <= high + slack


def exponential_cap(base: float, factor: float, max_: float, retry: int) -> float:
    """The reference: min(max, base * factor ** (retry - 1)), without overflowing."""
    if base == 0:
        return 0.0
    try:
        return min(max_, base * factor ** (retry - 1))
    except OverflowError:
        return max_


durations = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)
retries = st.integers(min_value=1, max_value=100_000)
jitters = st.sampled_from(["none", "full", "equal"])


# -- Constant --------------------------------------------------------------------------


def test_constant_waits_the_same_delay_before_every_retry() -> None:
    backoff = Constant(0.25)
    assert [backoff.delay(n, previous) for n, previous in [(1, 0.0), (2, 0.25), (50, 9.0)]] == [
        0.25,
        0.25,
        0.25,
    ]


def test_constant_max_defaults_to_ten_seconds_or_the_delay_if_larger() -> None:
    assert Constant(0.5).max == 10.0
    assert Constant(0).max == 10.0
    assert Constant(30).max == 30.0
    assert Constant(30).delay(1, 0.0) == 30.0


def test_constant_max_caps_hints_only_never_the_delay_itself() -> None:
    backoff = Constant(1.0, max=4.0)
    assert backoff.max == 4.0
    assert backoff.delay(1, 0.0) == 1.0


def test_constant_takes_timedelta() -> None:
    backoff = Constant(timedelta(milliseconds=250), max=timedelta(seconds=3))
    assert backoff.delay(1, 0.0) == 0.25
    assert backoff.max == 3.0


@given(delay=durations, retry=retries, previous=durations)
def test_constant_property(delay: float, retry: int, previous: float) -> None:
    assert Constant(delay).delay(retry, previous) == delay


# -- Linear ----------------------------------------------------------------------------


def test_linear_grows_by_step_and_stops_at_max() -> None:
    backoff = Linear(base=1.0, step=0.5, max=2.5)
    assert [backoff.delay(n, 0.0) for n in range(1, 7)] == [1.0, 1.5, 2.0, 2.5, 2.5, 2.5]


def test_linear_defaults() -> None:
    backoff = Linear()
    assert backoff.delay(1, 0.0) == pytest.approx(0.1)
    assert backoff.delay(2, 0.0) == pytest.approx(0.2)
    assert backoff.delay(10, 0.0) == pytest.approx(1.0)
    assert backoff.max == 10.0
    assert backoff.delay(1_000, 0.0) == 10.0


def test_linear_max_defaults_to_base_when_base_is_above_ten() -> None:
    backoff = Linear(base=20.0, step=5.0)
    assert backoff.max == 20.0
    assert backoff.delay(1, 0.0) == 20.0
    assert backoff.delay(3, 0.0) == 20.0


def test_linear_takes_timedelta() -> None:
    backoff = Linear(
        base=timedelta(milliseconds=500), step=timedelta(seconds=1), max=timedelta(seconds=2)
    )
    assert [backoff.delay(n, 0.0) for n in (1, 2, 3)] == [0.5, 1.5, 2.0]


@given(base=durations, step=durations, retry=retries)
def test_linear_property(base: float, step: float, retry: int) -> None:
    backoff = Linear(base=base, step=step)
    assert backoff.delay(retry, 0.0) == min(backoff.max, base + step * (retry - 1))
    assert base <= backoff.delay(retry, 0.0) <= backoff.max


# -- Exponential -----------------------------------------------------------------------


def test_exponential_without_jitter_doubles_up_to_max() -> None:
    backoff = Exponential(base=1.0, factor=2.0, max=5.0, jitter="none")
    assert [backoff.delay(n, 0.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_exponential_factor_one_is_constant() -> None:
    backoff = Exponential(base=0.3, factor=1.0, jitter="none")
    assert {backoff.delay(n, 0.0) for n in (1, 2, 10, 10**9)} == {0.3}


def test_exponential_defaults() -> None:
    backoff = Exponential()
    assert backoff.max == 10.0
    assert "jitter='full'" in repr(backoff)
    assert "factor=2.0" in repr(backoff)
    assert "base=0.1" in repr(backoff)
    # full jitter: never more than base * 2 ** (retry - 1)
    assert all(0.0 <= backoff.delay(3, 0.0) <= 0.4 for _ in range(50))


def test_exponential_max_defaults_to_base_when_base_is_above_ten() -> None:
    assert Exponential(base=20.0, jitter="none").max == 20.0
    assert Exponential(base=20.0, jitter="none").delay(5, 0.0) == 20.0


def test_exponential_takes_timedelta() -> None:
    backoff = Exponential(
        base=timedelta(milliseconds=100), factor=3.0, max=timedelta(seconds=2), jitter="none"
    )
    assert backoff.max == 2.0
    assert [backoff.delay(n, 0.0) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 2.0])


@pytest.mark.parametrize("retry", [1_025, 5_000, 10**6, 10**30])
@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
def test_exponential_huge_retry_numbers_do_not_overflow(retry: int, jitter: str) -> None:
    backoff = Exponential(base=0.5, factor=2.0, max=7.0, jitter=jitter)  # type: ignore[arg-type]
    delay = backoff.delay(retry, 0.0)
    assert math.isfinite(delay)
    low = {"none": 7.0, "full": 0.0, "equal": 3.5}[jitter]
    assert within(delay, low, 7.0)


def test_exponential_zero_base_stays_zero_for_huge_retry_numbers() -> None:
    # base * factor ** (retry - 1) is 0 for a base of 0, however large the retry number;
    # a factor ** n that overflows must not turn it into max.
    backoff = Exponential(base=0.0, factor=2.0, jitter="none")
    assert backoff.delay(5, 0.0) == 0.0
    assert backoff.delay(5_000, 0.0) == 0.0


@given(
    base=st.floats(min_value=0.001, max_value=100.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
    extra=durations,
    retry=retries,
    jitter=jitters,
    previous=durations,
)
def test_exponential_delay_within_jitter_bounds(
    base: float, factor: float, extra: float, retry: int, jitter: str, previous: float
) -> None:
    max_ = base + extra
    backoff = Exponential(base=base, factor=factor, max=max_, jitter=jitter)  # type: ignore[arg-type]
    cap = exponential_cap(base, factor, max_, retry)
    delay = backoff.delay(retry, previous)
    if jitter == "none":
        assert delay == cap
    elif jitter == "full":
        assert within(delay, 0.0, cap)
    else:
        assert within(delay, cap / 2, cap)


def test_exponential_full_jitter_spreads_over_the_whole_range() -> None:
    backoff = Exponential(base=1.0, factor=2.0, max=10.0, jitter="full")
    draws = [backoff.delay(4, 0.0) for _ in range(300)]  # d = 8
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 2.0
    assert max(draws) > 6.0
    assert len(set(draws)) > 250


def test_exponential_equal_jitter_spreads_over_the_upper_half() -> None:
    backoff = Exponential(base=1.0, factor=2.0, max=10.0, jitter="equal")
    draws = [backoff.delay(2, 0.0) for _ in range(300)]  # d = 2
    assert all(1.0 <= d <= 2.0 for d in draws)
    assert min(draws) < 1.25
    assert max(draws) > 1.75
    assert len(set(draws)) > 250


# -- DecorrelatedJitter ----------------------------------------------------------------


@given(
    base=st.floats(min_value=0.001, max_value=10.0),
    extra=durations,
    previous=durations,
    retry=retries,
)
def test_decorrelated_jitter_bounds(base: float, extra: float, previous: float, retry: int) -> None:
    max_ = base + extra
    backoff = DecorrelatedJitter(base=base, max=max_)
    delay = backoff.delay(retry, previous)
    assert within(delay, base, min(max_, 3 * max(previous, base)))


def test_decorrelated_jitter_grows_from_the_previous_delay() -> None:
    backoff = DecorrelatedJitter(base=1.0, max=100.0)
    firsts = [backoff.delay(1, 0.0) for _ in range(200)]
    assert all(1.0 <= d <= 3.0 for d in firsts)  # previous 0 -> uniform(base, 3 * base)
    laters = [backoff.delay(2, 10.0) for _ in range(200)]
    assert all(1.0 <= d <= 30.0 for d in laters)
    assert max(laters) > 20.0  # reaches well past anything drawn from the base alone


def test_decorrelated_jitter_capped_by_max() -> None:
    backoff = DecorrelatedJitter(base=1.0, max=2.0)
    assert all(1.0 <= backoff.delay(5, 50.0) <= 2.0 for _ in range(100))


def test_decorrelated_jitter_defaults_and_timedelta() -> None:
    assert DecorrelatedJitter().max == 10.0
    backoff = DecorrelatedJitter(base=timedelta(milliseconds=200), max=timedelta(seconds=1))
    assert backoff.max == 1.0
    assert all(0.2 <= backoff.delay(1, 0.0) <= 0.6 for _ in range(50))


# -- Backoffs drive Retry's sleeps -----------------------------------------------------


@given(
    attempts=st.integers(min_value=1, max_value=8),
    base=st.floats(min_value=0.001, max_value=5.0),
    factor=st.floats(min_value=1.0, max_value=4.0),
    extra=st.floats(min_value=0.0, max_value=20.0),
    jitter=jitters,
)
def test_retry_sleeps_follow_exponential_bounds(
    attempts: int, base: float, factor: float, extra: float, jitter: str
) -> None:
    clock = FakeClock()
    max_ = base + extra
    backoff = Exponential(base=base, factor=factor, max=max_, jitter=jitter)  # type: ignore[arg-type]
    retry = Retry(attempts, backoff=backoff, clock=clock)
    calls = 0

    def fail() -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        retry.call(fail)
    assert calls == attempts
    assert len(clock.sleeps) == attempts - 1
    for n, slept in enumerate(clock.sleeps, start=1):
        cap = exponential_cap(base, factor, max_, n)
        low = {"none": cap, "full": 0.0, "equal": cap / 2}[jitter]
        assert within(slept, low, cap), (n, slept, cap)
    assert clock.monotonic() == pytest.approx(sum(clock.sleeps))


@given(
    base=st.floats(min_value=0.001, max_value=2.0),
    extra=st.floats(min_value=0.0, max_value=20.0),
)
def test_retry_feeds_decorrelated_jitter_the_previous_sleep(base: float, extra: float) -> None:
    clock = FakeClock()
    max_ = base + extra
    retry = Retry(6, backoff=DecorrelatedJitter(base=base, max=max_), clock=clock)

    def fail() -> None:
        raise OSError

    with pytest.raises(OSError):
        retry.call(fail)
    previous = 0.0
    assert len(clock.sleeps) == 5
    for slept in clock.sleeps:
        assert within(slept, base, min(max_, 3 * max(previous, base)))
        previous = slept


def test_retry_passes_retry_number_and_previous_delay_to_any_backoff() -> None:
    asked: list[tuple[int, float]] = []

    class Recording:
        max = 100.0

        def delay(self, retry: int, previous: float) -> float:
            asked.append((retry, previous))
            return retry * 1.5

    assert isinstance(Recording(), Backoff)
    clock = FakeClock()
    retry = Retry(4, backoff=Recording(), clock=clock)

    def fail() -> None:
        raise OSError

    with pytest.raises(OSError):
        retry.call(fail)
    assert asked == [(1, 0.0), (2, 1.5), (3, 3.0)]
    assert clock.sleeps == [1.5, 3.0, 4.5]


def test_retry_default_backoff_is_exponential_full_jitter() -> None:
    clock = FakeClock()
    retry = Retry(clock=clock)
    assert isinstance(retry.backoff, Exponential)
    assert retry.backoff.max == 10.0

    def fail() -> None:
        raise OSError

    with pytest.raises(OSError):
        retry.call(fail)
    assert len(clock.sleeps) == 2
    assert 0.0 <= clock.sleeps[0] <= 0.1
    assert 0.0 <= clock.sleeps[1] <= 0.2


# -- Validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Constant(-1), ValueError, ["Constant.delay", "-1"]),
        (lambda: Constant(float("nan")), ValueError, ["Constant.delay", "nan"]),
        (lambda: Constant(float("inf")), ValueError, ["Constant.delay", "inf"]),
        (lambda: Constant("1s"), TypeError, ["Constant.delay", "'1s'"]),
        (lambda: Constant(True), TypeError, ["Constant.delay", "True"]),
        (lambda: Constant(2.0, max=1.0), ValueError, ["Constant.max", "1.0"]),
        (lambda: Linear(max=0.01, base=1), ValueError, ["Linear.max", "0.01"]),
        (lambda: Linear(base=-0.5), ValueError, ["Linear.base", "-0.5"]),
        (lambda: Linear(step=-1), ValueError, ["Linear.step", "-1"]),
        (lambda: Linear(step="x"), TypeError, ["Linear.step", "'x'"]),
        (lambda: Exponential(jitter="some"), ValueError, ["Exponential.jitter", "'some'"]),
        (lambda: Exponential(jitter=None), ValueError, ["Exponential.jitter", "None"]),
        (lambda: Exponential(factor=0.5), ValueError, ["Exponential.factor", "0.5"]),
        (lambda: Exponential(factor=float("inf")), ValueError, ["Exponential.factor", "inf"]),
        (lambda: Exponential(factor="2"), TypeError, ["Exponential.factor", "'2'"]),
        (lambda: Exponential(base=-1), ValueError, ["Exponential.base", "-1"]),
        (lambda: Exponential(base=1.0, max=0.5), ValueError, ["Exponential.max", "0.5"]),
        (
            lambda: Exponential(base=timedelta(seconds=-1)),
            ValueError,
            ["Exponential.base", "timedelta"],
        ),
        (lambda: DecorrelatedJitter(base=-0.1), ValueError, ["DecorrelatedJitter.base", "-0.1"]),
        (lambda: DecorrelatedJitter(base=2, max=1), ValueError, ["DecorrelatedJitter.max", "1"]),
    ],
)
def test_bad_arguments_name_the_parameter_and_the_value(
    make: object, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        make()  # type: ignore[operator]
    message = str(excinfo.value)
    for word in words:
        assert re.search(re.escape(word), message), (word, message)


def test_max_equal_to_base_is_allowed() -> None:
    assert Linear(base=1.0, max=1.0).delay(5, 0.0) == 1.0
    assert Exponential(base=2.0, max=2.0, jitter="none").delay(5, 0.0) == 2.0
    assert DecorrelatedJitter(base=2.0, max=2.0).delay(5, 3.0) == 2.0


def test_reprs_show_the_parameters() -> None:
    assert repr(Constant(0.5, max=2)) == "Constant(0.5, max=2.0)"
    assert repr(Linear(1, 2, 5)) == "Linear(base=1.0, step=2.0, max=5.0)"
    assert (
        repr(Exponential(0.5, 3, 4, "equal"))
        == "Exponential(base=0.5, factor=3.0, max=4.0, jitter='equal')"
    )
    assert repr(DecorrelatedJitter(0.5, 4)) == "DecorrelatedJitter(base=0.5, max=4.0)"
