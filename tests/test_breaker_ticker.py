"""Time buckets ended by a ticker: a plain success reads no clock, and still lands in
the bucket of the time it ended.

With ``FakeClock`` the ticker runs whenever virtual time moves; with the real clock a
daemon thread runs it (``SYSTEM_TICKER``), which the last tests here exercise.
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
import time
from typing import Any

import anyio
import pytest

from resilience import CircuitBreaker
from resilience._core.ticker import SYSTEM_TICKER, SystemTicker, Ticker, ticker_for
from resilience.testing import FakeClock


class CountingClock(FakeClock):
    """A fake clock that counts how often policies read it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return super().monotonic()


def ok() -> str:
    return "ok"


async def aok() -> str:
    return "ok"


def boom() -> None:
    raise ConnectionError("down")


# -- the hot path reads no clock ---------------------------------------------------------


def test_a_plain_success_reads_no_clock_across_bucket_ends() -> None:
    clock = CountingClock()
    breaker = CircuitBreaker(window=10.0, clock=clock)
    call = breaker(ok)
    call()  # the first success buckets the new window (one locked call)
    for second in range(25):  # 2.5 windows: every bucket ends under the calls
        reads = clock.reads
        for _ in range(4):
            assert call() == "ok"
        assert clock.reads == reads, f"a success read the clock at t={second}"
        clock.advance(1.0)
    # At t=25 the window holds the current bucket (empty) and the 9 before it, with 4
    # successes each; the older ones aged out.
    assert breaker.metrics().calls == 36


@pytest.mark.anyio
async def test_a_plain_async_success_reads_no_clock_across_bucket_ends() -> None:
    clock = CountingClock()
    breaker = CircuitBreaker(window=10.0, clock=clock)
    call = breaker(aok)
    await call()
    for _ in range(25):
        reads = clock.reads
        assert await call() == "ok"
        assert clock.reads == reads
        clock.advance(1.0)
    assert breaker.metrics().calls == 9


def test_a_long_call_counts_in_the_bucket_where_it_ended() -> None:
    """A success is dated when it ends: a call that started in an old bucket and ends
    after the ticker moved on is counted in the new bucket, so it ages out on time."""
    clock = FakeClock()
    breaker = CircuitBreaker(window=10.0, minimum_calls=1, clock=clock)
    breaker.call(ok)  # t=0, bucket [0, 1)

    def slow() -> str:
        clock.advance(5.5)  # ends in bucket [5, 6)
        return "ok"

    breaker.call(slow)
    clock.advance(5.0)  # t=10.5: bucket [0, 1) aged out, [5, 6) is still in
    assert breaker.metrics().calls == 1
    clock.advance(5.0)  # t=15.5: [5, 6) too
    assert breaker.metrics().calls == 0


def test_failures_and_ticked_successes_share_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(window=10.0, minimum_calls=10, failure_rate=0.5, clock=clock)
    call = breaker(ok)
    for _ in range(5):  # one success at each of t = 0, 1, 2, 3, 4
        call()
        clock.advance(1.0)
    for _ in range(4):  # t = 5
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.metrics().calls == 9
    clock.advance(6.5)  # t = 11.5: the buckets ending at 1 and 2 have aged out
    assert (breaker.metrics().calls, breaker.metrics().failures) == (7, 4)
    with pytest.raises(ConnectionError):
        breaker.call(boom)  # 5 of 8: below minimum_calls
    call()
    call()  # 10 calls, but a success never opens the breaker
    assert breaker.state == "closed"
    with pytest.raises(ConnectionError):
        breaker.call(boom)  # 6 of 11
    assert breaker.state == "open"


# -- an idle breaker costs the ticker nothing -----------------------------------------------


def test_an_idle_breaker_stops_ticking_and_resumes_on_the_next_call() -> None:
    clock = CountingClock()
    breaker = CircuitBreaker(window=10.0, clock=clock)
    call = breaker(ok)
    call()
    assert len(clock._ticker) == 1  # the end of the current bucket
    clock.advance(1.0)  # that bucket had a call: tick again at the next end
    assert len(clock._ticker) == 1
    clock.advance(1.0)  # nobody called in [1, 2): stop
    assert len(clock._ticker) == 0
    clock.advance(100.0)
    assert len(clock._ticker) == 0
    call()  # an idle breaker's success reads the clock, and arms the ticker again
    assert len(clock._ticker) == 1
    assert breaker.metrics().calls == 1
    for step in (0.01, 1.0):  # within the bucket, then into the next one
        clock.advance(step)
        reads = clock.reads
        call()
        assert clock.reads == reads  # hot again
    assert breaker.metrics().calls == 3


def test_a_transition_drops_the_old_buckets_tick() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(window=10.0, consecutive_failures=1, open_for=2.0, clock=clock)
    breaker.call(ok)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    assert breaker.state == "open"
    clock.advance(2.5)  # the old bucket's tick is due, for a window that is gone
    assert breaker.call(ok) == "ok"  # the trial closes it: a fresh window
    assert breaker.state == "closed"
    assert breaker.metrics().calls == 0
    breaker.call(ok)
    assert breaker.metrics().calls == 1


def test_reconfiguring_the_window_keeps_ticking_right() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(window=10.0, clock=clock)
    call = breaker(ok)
    call()
    backend: Any = breaker._backend
    backend.configure(breaker.settings.__class__(**{**_fields(breaker.settings), "window": 20.0}))
    for _ in range(30):
        call()
        clock.advance(1.0)
    assert breaker.metrics().calls == 18  # 9 buckets of 2 s, 2 calls each


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}


# -- the ticker itself ---------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.fired = threading.Event()

    def __call__(self, when: float) -> None:
        self.calls.append(when)
        self.fired.set()

    def method(self, when: float) -> None:
        self(when)


def test_ticker_runs_what_is_due_in_time_order() -> None:
    ticker = Ticker()
    recorder = Recorder()
    for when in (3.0, 1.0, 2.0, 5.0):
        ticker.call_at(when, recorder.method)
    assert ticker.next_due() == 1.0
    ticker.run_due(2.5)
    assert recorder.calls == [1.0, 2.0]
    ticker.run_due(2.9)
    assert recorder.calls == [1.0, 2.0]
    ticker.run_due(10.0)
    assert recorder.calls == [1.0, 2.0, 3.0, 5.0]
    assert ticker.next_due() is None


def test_ticker_holds_callbacks_weakly() -> None:
    ticker = Ticker()
    recorder = Recorder()
    ticker.call_at(1.0, recorder.method)
    del recorder
    gc.collect()
    ticker.run_due(2.0)  # nothing to call, nothing raised
    assert len(ticker) == 0


def test_a_collected_breaker_leaves_nothing_behind() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(window=10.0, clock=clock)
    breaker.call(ok)
    assert len(clock._ticker) == 1
    del breaker
    gc.collect()
    clock.advance(5.0)
    assert len(clock._ticker) == 0


def test_ticker_for_clocks() -> None:
    from resilience._core.clock import SYSTEM_CLOCK

    assert ticker_for(SYSTEM_CLOCK) is SYSTEM_TICKER
    fake = FakeClock()
    assert ticker_for(fake) is fake._ticker

    class OwnClock:
        def monotonic(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:
            pass

        async def asleep(self, seconds: float) -> None:
            pass

    assert ticker_for(OwnClock()) is None


def test_a_clock_without_ticker_reads_the_clock_and_counts_right() -> None:
    now = [0.0]

    class OwnClock:
        def monotonic(self) -> float:
            return now[0]

        def sleep(self, seconds: float) -> None:
            now[0] += seconds

        async def asleep(self, seconds: float) -> None:
            now[0] += seconds

    breaker = CircuitBreaker(window=10.0, clock=OwnClock())
    for _ in range(25):
        breaker.call(ok)
        now[0] += 1.0
    assert breaker.metrics().calls == 9


# -- the real clock: the system ticker's thread -----------------------------------------------


def test_system_ticker_calls_back_on_time() -> None:
    ticker = SystemTicker()
    recorder = Recorder()
    when = time.monotonic() + 0.02
    ticker.call_at(when, recorder.method)
    assert recorder.fired.wait(5.0)
    assert recorder.calls == [when]
    assert ticker._thread is not None
    assert ticker._thread.daemon


def test_system_ticker_wakes_for_an_earlier_entry() -> None:
    ticker = SystemTicker()
    late, early = Recorder(), Recorder()
    ticker.call_at(time.monotonic() + 3600.0, late.method)
    ticker.call_at(time.monotonic() + 0.01, early.method)  # the thread sleeps for an hour
    assert early.fired.wait(5.0)
    assert late.calls == []


def _child_schedules_and_waits(queue: Any) -> None:
    recorder = Recorder()
    SYSTEM_TICKER.call_at(time.monotonic() + 0.01, recorder.method)
    queue.put(recorder.fired.wait(5.0))


def test_system_ticker_runs_again_in_a_forked_child() -> None:
    recorder = Recorder()
    SYSTEM_TICKER.call_at(time.monotonic() + 0.01, recorder.method)  # the thread is up
    assert recorder.fired.wait(5.0)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_schedules_and_waits, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=10.0) is True
    finally:
        child.join(10.0)
    assert child.exitcode == 0


def test_real_threads_lose_no_success_across_real_bucket_ends() -> None:
    """Four threads call a breaker with 0.3 s buckets for about 1 s of real time: the
    ticker swaps counters under them about three times, and the window holds every
    success. (Nothing ages out before 2.7 s, which leaves a loaded machine room for
    starting and joining the threads late.)"""
    breaker = CircuitBreaker(window=3.0)
    call = breaker(ok)
    call()
    counts = [0] * 4
    swaps = set()
    deadline = time.monotonic() + 1.0

    def worker(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            call()
            n += 1
            if i == 0:
                standing = breaker._backend.standing  # type: ignore[attr-defined]
                swaps.add(id(standing.ok))
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(swaps) >= 2  # the ticker did move the counter on
    assert breaker.metrics().calls == sum(counts) + 1


@pytest.mark.anyio
async def test_real_tasks_lose_no_success_across_real_bucket_ends() -> None:
    breaker = CircuitBreaker(window=3.0)
    call = breaker(aok)
    await call()
    count = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        await call()
        count += 1
        if count % 50 == 0:
            await anyio.sleep(0)  # let the loop breathe; the ticker is a thread anyway
    assert breaker.metrics().calls == count + 1
