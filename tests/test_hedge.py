"""Hedge: extra attempts for slow calls, first success wins, the rest cancelled."""

from __future__ import annotations

import contextvars
import math
import random
import threading
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from resilience import (
    Event,
    GaveUp,
    Hedge,
    HedgeLaunched,
    HedgeWon,
    LatencyQuantile,
    Pipeline,
    Retry,
    Timeout,
    remaining,
)
from resilience.testing import FakeClock, LoopClock

# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((-1,), {}, ValueError, "delay must be 0 or more seconds, got -1"),
        (("1s",), {}, TypeError, "delay must be a duration"),
        ((1e12,), {}, ValueError, "delay must be at most"),
        ((0.1, 0), {}, ValueError, "max_hedges must be at least 1, got 0"),
        ((0.1, 1.5), {}, TypeError, "max_hedges must be an int"),
        ((0.1,), {"hedge_on": 1}, TypeError, "hedge_on must be an exception type"),
        ((0.1,), {"hedge_if_result": 1}, TypeError, "hedge_if_result must be a callable"),
    ],
)
def test_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Hedge(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"quantile": 1.0}, ValueError, r"quantile must be a number in \(0, 1\), got 1.0"),
        ({"quantile": 0}, ValueError, "quantile must be a number in"),
        ({"samples": 0}, ValueError, "samples must be at least 1"),
        ({"min_samples": 0}, ValueError, "min_samples must be at least 1"),
        ({"samples": 10, "min_samples": 11}, ValueError, r"min_samples must be at most samples"),
        ({"initial": -1}, ValueError, "initial must be 0 or more seconds"),
    ],
)
def test_bad_latency_quantile(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        LatencyQuantile(**kwargs)


def test_settings_and_repr() -> None:
    hedge = Hedge(0.25, 2, name="search")
    assert (hedge.delay, hedge.max_hedges) == (0.25, 2)
    assert repr(hedge) == "Hedge(0.25, max_hedges=2, name='search')"
    learned = Hedge(LatencyQuantile(0.9, initial=2))
    assert learned.delay == 2.0
    assert LatencyQuantile(0.9, initial=2) == LatencyQuantile(0.9, initial=2.0)
    assert repr(LatencyQuantile()) == (
        "LatencyQuantile(0.95, samples=100, min_samples=20, initial=1.0)"
    )


# -- async: who wins, who is cancelled -----------------------------------------------------


class Attempts:
    """A dependency whose attempts are scripted: each one waits for its own gate (or
    returns at once), and every start, end and cancellation is recorded."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.running = 0
        self.peak = 0

    async def __call__(self) -> Any:
        number = len(self.started) + 1
        self.started.append(number)
        self.running += 1
        self.peak = max(self.peak, self.running)
        step = self.script[number - 1]
        try:
            if step == "stall":
                await anyio.sleep_forever()
            if isinstance(step, BaseException):
                raise step
            return step
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(number)
            raise
        finally:
            self.running -= 1


async def test_a_fast_first_attempt_is_never_hedged(anyio_backend: str) -> None:
    dependency = Attempts(["first"])
    hedge = Hedge(10.0, 3)
    seen: list[Event] = []
    hedge.listen(seen.append)
    assert await hedge.acall(dependency) == "first"
    assert dependency.started == [1]
    [won] = seen
    assert won.type == "success"
    assert isinstance(won.details, HedgeWon)
    assert won.details.attempt == 1
    assert won.details.duration >= 0.0


async def test_a_stalled_attempt_is_hedged_and_cancelled_when_the_hedge_wins(
    anyio_backend: str,
) -> None:
    dependency = Attempts(["stall", "second"])
    hedge = Hedge(0.01, 1, name="h")
    seen: list[Event] = []
    hedge.listen(seen.append)
    with anyio.fail_after(5):
        assert await hedge.acall(dependency) == "second"
    assert dependency.started == [1, 2]
    assert dependency.cancelled == [1]  # the loser was cancelled before acall returned
    assert dependency.running == 0
    hedged, won = seen
    assert (hedged.type, hedged.details) == ("hedge", HedgeLaunched(attempt=2, delay=0.01))
    assert won.type == "success"
    assert isinstance(won.details, HedgeWon)
    assert won.details.attempt == 2


async def test_never_more_than_max_hedges_extra_attempts(anyio_backend: str) -> None:
    dependency = Attempts(["stall"] * 10)
    hedge = Hedge(0.001, 3)
    with anyio.move_on_after(0.3):
        await hedge.acall(dependency)  # every attempt stalls: cancelled from outside
    assert dependency.started == [1, 2, 3, 4]
    assert dependency.peak == 4
    assert sorted(dependency.cancelled) == [1, 2, 3, 4]  # nothing left running


async def test_zero_delay_starts_every_attempt_at_once(anyio_backend: str) -> None:
    gate = anyio.Event()
    started = []

    async def slow(n: int) -> int:
        started.append(n)
        await gate.wait()
        return len(started)

    hedge = Hedge(0, 2)
    async with anyio.create_task_group() as tg:
        results = []

        async def call() -> None:
            results.append(await hedge.acall(slow, 1))

        tg.start_soon(call)
        with anyio.fail_after(5):
            while len(started) < 3:
                await anyio.sleep(0)
        gate.set()
    assert results == [3]


async def test_a_failed_attempt_starts_the_next_at_once(anyio_backend: str) -> None:
    dependency = Attempts([ConnectionError("a"), "second"])
    hedge = Hedge(1000.0, 1)  # the delay would never pass within the test
    seen: list[Event] = []
    hedge.listen(seen.append)
    with anyio.fail_after(5):
        assert await hedge.acall(dependency) == "second"
    hedged, won = seen
    assert (hedged.type, hedged.details) == ("hedge", HedgeLaunched(attempt=2, delay=0.0))
    assert isinstance(hedged.exception, ConnectionError)
    assert won.type == "success"
    assert isinstance(won.details, HedgeWon)
    assert won.details.attempt == 2
    assert won.exception is None


async def test_when_every_attempt_fails_the_last_failure_is_raised(anyio_backend: str) -> None:
    dependency = Attempts([ConnectionError("a"), ConnectionError("b"), ConnectionError("c")])
    hedge = Hedge(1000.0, 2, name="geo")
    seen: list[Event] = []
    hedge.listen(seen.append)
    with anyio.fail_after(5), pytest.raises(ConnectionError, match="c") as info:
        await hedge.acall(dependency)
    assert info.value.__notes__ == ["resilience: Hedge geo gave up: all 3 attempts failed"]
    assert (seen[-1].type, seen[-1].details) == ("give_up", GaveUp(attempt=3))
    assert seen[-1].exception is info.value


async def test_a_failure_waits_for_attempts_still_running(anyio_backend: str) -> None:
    gate = anyio.Event()
    calls = []

    async def dependency() -> str:
        calls.append(1)
        if len(calls) == 1:
            await gate.wait()
            return "first, late"
        gate.set()
        raise ConnectionError("second")

    with anyio.fail_after(5):
        assert await Hedge(0.001, 1).acall(dependency) == "first, late"


async def test_an_unhandled_exception_ends_the_call_at_once(anyio_backend: str) -> None:
    dependency = Attempts(["stall", KeyError("fatal"), "unused"])
    hedge = Hedge(0.001, 2, hedge_on=ConnectionError)
    with anyio.fail_after(5), pytest.raises(KeyError):
        await hedge.acall(dependency)
    assert dependency.started == [1, 2]
    assert dependency.cancelled == [1]


async def test_hedge_if_result(anyio_backend: str) -> None:
    dependency = Attempts([503, 200])
    hedge = Hedge(1000.0, 1, hedge_if_result=lambda status: status >= 500)
    with anyio.fail_after(5):
        assert await hedge.acall(dependency) == 200
    every_attempt_bad = Attempts([503, 502])
    with anyio.fail_after(5):
        assert await hedge.acall(every_attempt_bad) == 502  # the last result


async def test_attempts_see_the_callers_context_and_deadline(anyio_backend: str) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("caller")
    seen = []

    async def dependency() -> str:
        seen.append((var.get(), remaining() is not None))
        if len(seen) == 1:
            await anyio.sleep_forever()
        return "ok"

    with anyio.fail_after(5):
        assert await Pipeline(Timeout(3), Hedge(0.001, 1)).acall(dependency) == "ok"
    assert seen == [("caller", True), ("caller", True)]


async def test_cancelling_the_caller_cancels_every_attempt(anyio_backend: str) -> None:
    dependency = Attempts(["stall", "stall"])

    async def cancel_once_both_run(scope: anyio.CancelScope) -> None:
        # Not a fixed delay: on a loaded machine the hedge may start late.
        while dependency.running < 2:
            await anyio.sleep(0.001)
        scope.cancel()

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(cancel_once_both_run, scope)
            await Hedge(0.001, 1).acall(dependency)
    assert scope.cancelled_caught
    assert sorted(dependency.cancelled) == [1, 2]
    assert dependency.running == 0


async def test_decorated_coroutine_function(anyio_backend: str) -> None:
    @Hedge(0.001, 1)
    async def lookup(key: str) -> str:
        """Looks up."""
        return key.upper()

    assert await lookup("a") == "A"
    assert lookup.__name__ == "lookup"


# -- sync: threads -------------------------------------------------------------------------


def test_sync_stalled_attempt_is_hedged() -> None:
    release = threading.Event()
    started = []
    lock = threading.Lock()

    def dependency() -> str:
        with lock:
            started.append(threading.get_ident())
            number = len(started)
        if number == 1:
            release.wait(5)
            return "first"
        return "second"

    hedge = Hedge(0.01, 1)
    try:
        assert hedge.call(dependency) == "second"
        assert len(started) == 2
        assert threading.get_ident() not in started  # attempts run on worker threads
    finally:
        release.set()  # the loser finishes in the background


def test_sync_never_more_than_max_hedges() -> None:
    release = threading.Event()
    running = peak = 0
    lock = threading.Lock()

    def dependency() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        return "late"

    hedge = Hedge(0.005, 2)
    timer = threading.Timer(0.2, release.set)
    timer.start()
    try:
        assert hedge.call(dependency) == "late"
    finally:
        timer.cancel()
        release.set()
    assert peak == 3


def test_sync_failures_and_fatal_exceptions() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)}")
        return "third"

    assert Hedge(1000.0, 2).call(flaky) == "third"
    calls.clear()
    with pytest.raises(ConnectionError, match="attempt 2") as info:
        Hedge(1000.0, 1, name="s").call(flaky)
    assert info.value.__notes__ == ["resilience: Hedge s gave up: all 2 attempts failed"]

    def fatal() -> None:
        raise KeyError("no")

    with pytest.raises(KeyError):
        Hedge(1000.0, 3, hedge_on=ConnectionError).call(fatal)


def test_sync_attempts_see_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("caller")
    assert Hedge(0, 1).call(var.get) == "caller"


# -- the learned delay -----------------------------------------------------------------------


def test_learned_delay_is_the_quantile_of_winning_latencies(clock: FakeClock) -> None:
    hedge = Hedge(LatencyQuantile(0.9, samples=20, min_samples=10, initial=5.0), clock=clock)
    latencies = [0.01 * n for n in range(1, 31)]  # 10 ms ... 300 ms
    random.Random(1).shuffle(latencies)

    def dependency(seconds: float) -> float:
        clock.advance(seconds)  # the attempt takes `seconds` on the policy's clock
        return seconds

    for n, seconds in enumerate(latencies, start=1):
        assert hedge.call(dependency, seconds) == seconds
        if n < 10:
            assert hedge.delay == 5.0  # too few samples: the initial delay
        if n == 10:
            first = sorted(latencies[:10])
            assert hedge.delay == pytest.approx(first[math.ceil(0.9 * 10) - 1])
    last = sorted(latencies[-20:])  # the latest 20
    assert hedge.delay == pytest.approx(last[math.ceil(0.9 * 20) - 1])


async def test_learned_delay_async(clock: FakeClock, anyio_backend: str) -> None:
    hedge = Hedge(LatencyQuantile(0.5, samples=4, min_samples=4, initial=9.0), clock=clock)

    async def dependency(seconds: float) -> None:
        clock.advance(seconds)

    for seconds in (1.0, 4.0, 2.0, 3.0):
        await hedge.acall(dependency, seconds)
    assert hedge.delay == 2.0


# -- the tail: 10% of calls stall ------------------------------------------------------------


STALL = 10.0


def tail_scenario(policy: Any, seed: int) -> tuple[list[float], list[int], int]:
    """2,000 calls from 40 concurrent tasks to a dependency where each attempt takes
    5-50 ms, except 10% that stall for 10 s. Runs on trio's virtual clock (real tasks,
    no real waiting). Returns call latencies, attempts per call, peak attempts."""
    rng = random.Random(seed)
    latencies: list[float] = []
    per_call: list[int] = []
    peak = 0

    async def main() -> None:
        nonlocal peak

        async def worker() -> None:
            nonlocal peak
            for _ in range(50):
                attempts = running = 0

                async def dependency() -> str:
                    nonlocal attempts, running, peak
                    attempts += 1
                    running += 1
                    peak = max(peak, running)
                    try:
                        stall = rng.random() < 0.10
                        await trio.sleep(STALL if stall else rng.uniform(0.005, 0.05))
                        return "ok"
                    finally:
                        running -= 1

                start = trio.current_time()
                assert await policy.acall(dependency) == "ok"
                latencies.append(trio.current_time() - start)
                per_call.append(attempts)

        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(worker)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return latencies, per_call, peak


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def test_hedging_cuts_the_tail_when_10_percent_of_calls_stall() -> None:
    unhedged, _, _ = tail_scenario(Pipeline(), seed=11)
    assert p99(unhedged) >= STALL  # without hedging, the slowest 1% wait out the stall

    fixed, attempts, peak = tail_scenario(Hedge(0.1, 2, clock=LoopClock()), seed=11)
    assert p99(fixed) < 0.3  # well under the 10 s stall
    assert max(attempts) <= 3
    assert peak <= 3  # never more than 1 + max_hedges attempts of one call at once
    assert 0.08 < sum(a > 1 for a in attempts) / len(attempts) < 0.15  # ~10% hedged

    learned = Hedge(LatencyQuantile(0.9), 2, clock=LoopClock())
    adaptive, attempts, peak = tail_scenario(learned, seed=11)
    assert p99(adaptive) < 0.3
    assert max(attempts) <= 3
    assert peak <= 3
    assert 0.04 < learned.delay < 0.06  # the 90th percentile of 5-50 ms attempts


def test_one_hedge_cuts_the_95th_percentile() -> None:
    latencies, attempts, peak = tail_scenario(Hedge(0.1, 1, clock=LoopClock()), seed=5)
    ordered = sorted(latencies)
    assert ordered[math.ceil(0.95 * len(ordered)) - 1] < 0.3
    assert max(attempts) == 2
    assert peak == 2


def test_retry_around_hedge(clock: FakeClock) -> None:
    calls = []

    def dependency() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError
        return "ok"

    pipeline = Pipeline(Retry(2, clock=clock), Hedge(1000.0, 1))
    assert pipeline.call(dependency) == "ok"  # the first call's two attempts failed
    assert len(calls) == 3


def test_sync_calls_do_not_wait_for_losers() -> None:
    gate = threading.Event()
    loser_done = threading.Event()
    calls = []

    def dependency() -> str:
        calls.append(1)
        if len(calls) == 1:
            gate.wait(5)
            loser_done.set()
            return "slow"
        return "fast"

    assert Hedge(0.01, 1).call(dependency) == "fast"
    assert not loser_done.is_set()  # returned while the stalled attempt still ran
    gate.set()
    assert loser_done.wait(5)  # ...which then finished in the background
