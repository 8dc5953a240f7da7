"""FakeClock (virtual time for tests), SystemClock, and how policies check a clock."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

from resilience import (
    CircuitBreaker,
    Clock,
    Constant,
    Event,
    Pipeline,
    Policy,
    Retry,
    RetryBudget,
    SystemClock,
)
from resilience.testing import FakeClock

# -- FakeClock ------------------------------------------------------------------------


def test_starts_at_zero_or_at_start() -> None:
    assert FakeClock().monotonic() == 0.0
    clock = FakeClock(start=123.5)
    assert clock.monotonic() == 123.5
    assert FakeClock(7).monotonic() == 7.0
    assert isinstance(FakeClock(7).monotonic(), float)
    assert clock.sleeps == []


@pytest.mark.parametrize("start", ["0", None, True, [1]])
def test_bad_start_type_raises_type_error(start: Any) -> None:
    with pytest.raises(TypeError, match="start"):
        FakeClock(start=start)


@pytest.mark.parametrize("start", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_start_raises_value_error(start: float) -> None:
    with pytest.raises(ValueError, match="start"):
        FakeClock(start=start)


def test_time_stands_still_until_moved() -> None:
    clock = FakeClock(5.0)
    assert clock.monotonic() == clock.monotonic() == 5.0


def test_advance_moves_time_without_recording_a_sleep() -> None:
    clock = FakeClock()
    clock.advance(1.5)
    clock.advance(0)
    clock.advance(2)
    assert clock.monotonic() == 3.5
    assert clock.sleeps == []


def test_advance_accepts_timedelta() -> None:
    clock = FakeClock()
    clock.advance(timedelta(minutes=1, milliseconds=250))
    assert clock.monotonic() == 60.25


def test_sleep_returns_at_once_advances_time_and_is_recorded_in_order() -> None:
    clock = FakeClock(10.0)
    before = time.monotonic()
    clock.sleep(3600.0)
    clock.sleep(0.5)
    clock.sleep(0)
    clock.sleep(2)
    assert time.monotonic() - before < 60  # nothing really waited an hour
    assert clock.monotonic() == 10.0 + 3600.0 + 0.5 + 2
    assert clock.sleeps == [3600.0, 0.5, 0.0, 2.0]
    assert all(isinstance(s, float) for s in clock.sleeps)


def test_sleep_accepts_timedelta_and_records_seconds() -> None:
    clock = FakeClock()
    clock.sleep(timedelta(seconds=1.5))  # type: ignore[arg-type]
    assert clock.sleeps == [1.5]
    assert clock.monotonic() == 1.5


@pytest.mark.parametrize("bad", [-0.001, -1, timedelta(seconds=-1)])
def test_negative_durations_raise_value_error_and_change_nothing(bad: Any) -> None:
    clock = FakeClock(1.0)
    with pytest.raises(ValueError, match="seconds"):
        clock.sleep(bad)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(bad)
    assert clock.monotonic() == 1.0
    assert clock.sleeps == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_durations_raise_value_error(bad: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        clock.sleep(bad)
    with pytest.raises(ValueError):
        clock.advance(bad)
    assert clock.monotonic() == 0.0


@pytest.mark.parametrize("bad", ["1", None, True])
def test_non_number_durations_raise_type_error(bad: Any) -> None:
    clock = FakeClock()
    with pytest.raises(TypeError):
        clock.sleep(bad)
    with pytest.raises(TypeError):
        clock.advance(bad)


@pytest.mark.anyio
async def test_asleep_advances_time_and_records() -> None:
    clock = FakeClock()
    await clock.asleep(2.0)
    await clock.asleep(0)
    await clock.asleep(timedelta(seconds=0.25))  # type: ignore[arg-type]
    assert clock.monotonic() == 2.25
    assert clock.sleeps == [2.0, 0.0, 0.25]


@pytest.mark.anyio
async def test_asleep_negative_raises_value_error() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        await clock.asleep(-1.0)
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_asleep_returns_at_once_in_real_time() -> None:
    clock = FakeClock()
    with anyio.fail_after(30):  # a real one-hour sleep would trip this
        await clock.asleep(3600.0)
    assert clock.monotonic() == 3600.0


@pytest.mark.anyio
async def test_asleep_yields_to_other_tasks() -> None:
    clock = FakeClock()
    log: list[str] = []

    async def worker(tag: str) -> None:
        for i in range(3):
            log.append(f"{tag}{i}")
            await clock.asleep(1.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a")
        tg.start_soon(worker, "b")

    assert sorted(log) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    # Without a yield, one worker would run all its steps before the other started.
    assert log.index("b0") < log.index("a2")
    assert log.index("a0") < log.index("b2")
    assert clock.monotonic() == 6.0
    assert clock.sleeps == [1.0] * 6


@pytest.mark.anyio
async def test_asleep_zero_still_yields() -> None:
    clock = FakeClock()
    flag: list[str] = []

    async def setter() -> None:
        flag.append("set")

    async with anyio.create_task_group() as tg:
        tg.start_soon(setter)
        for _ in range(5):
            if flag:
                break
            await clock.asleep(0)
        assert flag == ["set"]


@pytest.mark.anyio
async def test_asleep_can_be_cancelled() -> None:
    clock = FakeClock()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await clock.asleep(1.0)
        pytest.fail("asleep did not honour cancellation")  # pragma: no cover
    assert scope.cancelled_caught


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_thread_switching")
def test_sleep_and_advance_are_thread_safe() -> None:
    clock = FakeClock()
    threads_n, per_thread = 8, 2000
    barrier = threading.Barrier(threads_n)

    def sleeper(n: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            if n % 2:
                clock.sleep(0.5)
            else:
                clock.advance(0.25)

    threads = [threading.Thread(target=sleeper, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sleepers = threads_n // 2
    assert len(clock.sleeps) == sleepers * per_thread
    assert set(clock.sleeps) == {0.5}
    # Values are exact in binary floating point: the sum is exact too.
    assert clock.monotonic() == sleepers * per_thread * 0.5 + sleepers * per_thread * 0.25


def test_fake_clock_satisfies_the_clock_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert "FakeClock" in repr(FakeClock(2.0))
    assert "2.0" in repr(FakeClock(2.0))


def test_policies_use_the_fake_clock_for_their_waits() -> None:
    clock = FakeClock()
    retry = Retry(4, backoff=Constant(30.0), clock=clock)

    def fails() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry.call(fails)
    assert clock.sleeps == [30.0, 30.0, 30.0]
    assert clock.monotonic() == 90.0


# -- SystemClock ----------------------------------------------------------------------


def test_system_clock_monotonic_follows_real_time() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    assert isinstance(first, float)
    clock.sleep(0.01)
    second = clock.monotonic()
    assert second - first >= 0.01 - 1e-3
    assert abs(second - time.monotonic()) < 1.0
    clock.sleep(0)
    assert clock.monotonic() >= second


def test_system_clock_is_a_clock() -> None:
    assert isinstance(SystemClock(), Clock)
    assert repr(SystemClock()) == "SystemClock()"


@pytest.mark.anyio
async def test_system_clock_asleep_zero_works() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    await clock.asleep(0)
    await clock.asleep(0.001)
    assert clock.monotonic() > before


@pytest.mark.anyio
async def test_system_clock_asleep_honours_cancellation() -> None:
    clock = SystemClock()
    with anyio.move_on_after(0.01) as scope:
        await clock.asleep(60)
    assert scope.cancelled_caught


def test_policies_default_to_a_working_system_clock() -> None:
    assert Retry(2, backoff=Constant(0.0)).call(lambda: 3) == 3
    assert CircuitBreaker().call(lambda: 4) == 4


# -- policies check their clock -------------------------------------------------------


class NoMonotonic:
    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class NoSleep:
    def monotonic(self) -> float:
        return 0.0

    async def asleep(self, seconds: float) -> None: ...


class NoAsleep:
    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None: ...


class NotCallable:
    monotonic = 0.0

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class Complete:
    """The three methods and nothing else: a time no real clock shows (31,700 years of
    uptime), and a record of every call."""

    NOW = 1e12

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []

    def monotonic(self) -> float:
        self.calls.append(("monotonic", None))
        return self.NOW

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))

    async def asleep(self, seconds: float) -> None:
        self.calls.append(("asleep", seconds))


POLICIES: dict[str, Callable[[Any], Policy]] = {
    "CircuitBreaker": lambda clock: CircuitBreaker(clock=clock),
    "Retry": lambda clock: Retry(2, backoff=Constant(0.001), clock=clock),
}


@pytest.mark.parametrize("make", POLICIES.values(), ids=POLICIES.keys())
@pytest.mark.parametrize(
    "bad", [NoMonotonic(), NoSleep(), NoAsleep(), NotCallable(), object(), 1.0, time]
)
def test_policies_reject_an_incomplete_clock(make: Callable[[Any], object], bad: object) -> None:
    with pytest.raises(TypeError, match="clock"):
        make(bad)


@pytest.mark.parametrize("make", POLICIES.values(), ids=POLICIES.keys())
def test_a_clock_class_is_not_a_clock(make: Callable[[Any], object]) -> None:
    with pytest.raises(TypeError, match=r"got <class .*FakeClock'> \(a class: give an instance"):
        make(FakeClock)


@pytest.mark.parametrize("bad", [NoAsleep(), object(), 1, 0, False, [], FakeClock])
def test_retry_budget_checks_its_clock_as_policies_do(bad: object) -> None:
    # It used to take a falsy clock for "none given" and fail later on the others.
    with pytest.raises(
        TypeError, match=r"^clock must have monotonic\(\), sleep\(\) and asleep\(\)"
    ):
        RetryBudget(clock=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", POLICIES.values(), ids=POLICIES.keys())
def test_policies_accept_any_object_with_the_three_methods(
    make: Callable[[Any], Policy],
) -> None:
    # ...and really use it: events are stamped with its time, retries sleep on it.
    complete = Complete()
    policy = make(complete)
    events = _fail_once_then_succeed(policy)
    assert {event.time for event in events} == {Complete.NOW}
    assert ("monotonic", None) in complete.calls
    slept = [seconds for name, seconds in complete.calls if name != "monotonic"]
    assert slept == ([0.001] if isinstance(policy, Retry) else [])

    fake = FakeClock(start=Complete.NOW)
    policy = make(fake)
    events = _fail_once_then_succeed(policy)
    assert events
    assert min(event.time for event in events) >= Complete.NOW
    assert fake.sleeps == ([0.001] if isinstance(policy, Retry) else [])

    for system in (SystemClock(), None):  # None: the system clock
        before = time.monotonic()
        events = _fail_once_then_succeed(make(system))
        after = time.monotonic()
        assert events
        assert before <= min(event.time for event in events)
        assert max(event.time for event in events) <= after


def _fail_once_then_succeed(policy: Policy) -> list[Event]:
    """The events of a call that fails once (a retry retries it; it is called again
    otherwise), then succeeds."""
    failures = [ConnectionError("once")]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    events: list[Event] = []
    stop = policy.listen(events.append)
    try:
        try:
            result = policy.call(flaky)
        except ConnectionError:
            result = policy.call(flaky)
    finally:
        stop()
    assert result == "ok"
    return events


def test_pipeline_of_fake_clocked_policies_never_really_waits() -> None:
    clock = FakeClock()
    pipeline = Pipeline(
        Retry(3, backoff=Constant(100.0, max=1000.0), clock=clock),
        CircuitBreaker(consecutive_failures=1, open_for=1000.0, clock=clock),
    )
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        pipeline.call(_fails)
    assert time.monotonic() - started < 60
    # The second wait honours the open breaker's retry_after (1000 s after it opened).
    assert clock.sleeps == [100.0, 900.0]


def _fails() -> None:
    raise ConnectionError("down")


def test_loop_clock_reads_the_event_loops_virtual_time() -> None:
    import trio.testing

    from resilience.testing import LoopClock

    clock = LoopClock()

    async def main() -> float:
        start = clock.monotonic()
        await clock.asleep(5.0)
        return clock.monotonic() - start

    mock = trio.testing.MockClock(autojump_threshold=0)
    # trio.run, not anyio.run: anyio passes the clock on to trio only from 4.14 on
    assert trio.run(main, clock=mock) == 5.0
    with pytest.raises(RuntimeError, match="LoopClock is for async code"):
        clock.sleep(1)
    assert repr(clock) == "LoopClock()"
