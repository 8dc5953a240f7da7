"""Local-first breakers (``sync_mode="local-first"``): decisions from a local copy with
no I/O, outcome counts reported in the background, half-open trials still exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from redis_helpers import Boom, eventually, fail

from resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    RateLimited,
    RetryBudget,
    TokenBucket,
)
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import FakeClock, RedisServer


class Calls:
    """The scripts a store runs, and in which threads."""

    def __init__(self, store: RedisStore | AsyncRedisStore) -> None:
        self.made: list[tuple[str, str]] = []
        link = store._link
        call, acall = link._call, link._acall

        def counting(script: Any, *args: Any) -> Any:
            self.made.append((script.name, threading.current_thread().name))
            return call(script, *args)

        async def acounting(script: Any, *args: Any) -> Any:
            self.made.append((script.name, threading.current_thread().name))
            return await acall(script, *args)

        link._call, link._acall = counting, acounting  # type: ignore[method-assign]

    def by(self, thread: str) -> list[str]:
        return [script for script, name in self.made if name == thread]


@pytest.fixture
def local_first(
    make_store: Callable[..., RedisStore],
) -> Callable[..., RedisStore]:
    def make(**options: Any) -> RedisStore:
        options.setdefault("sync_mode", "local-first")
        return make_store(**options)

    return make


def test_closed_calls_never_touch_the_network(local_first: Callable[..., RedisStore]) -> None:
    store = local_first(flush_interval=0.05)
    breaker = CircuitBreaker("quiet", store=store, minimum_calls=1000)
    calls = Calls(store)
    me = threading.current_thread().name
    for i in range(2000):
        assert breaker.call(lambda i=i: i) == i
    fail(breaker, 10)
    assert calls.by(me) == []  # not one script from the caller's thread
    store.flush()
    status = store.breaker_status("quiet")
    assert status is not None
    assert (status.calls, status.failures) == (2010, 10)
    assert breaker.metrics().calls == 2010


def test_counts_reach_redis_in_the_background_and_open_the_fleets_breaker(
    local_first: Callable[..., RedisStore], make_store: Callable[..., RedisStore]
) -> None:
    here = CircuitBreaker(
        "shared", store=local_first(flush_interval=0.05), failure_rate=0.5, minimum_calls=40
    )
    there = CircuitBreaker("shared", store=make_store(), failure_rate=0.5, minimum_calls=40)
    for _ in range(10):
        here.call(lambda: 1)
    fail(here, 9)  # under the early-report threshold (20): waits for the flush interval
    eventually(lambda: there.metrics().calls == 19)
    for _ in range(21):
        there.call(lambda: 1)
    fail(here, 19)  # 28 of 59: not yet
    eventually(lambda: there.metrics().calls == 59)
    assert there.state == "closed"
    fail(here, 4)  # 32 of 63: the fleet's breaker opens at the next report
    eventually(lambda: there.state == "open")
    eventually(lambda: here.state == "open")  # the copy learnt it
    with pytest.raises(CircuitOpen) as rejected:
        here.call(lambda: 1)
    assert 25.0 < rejected.value.retry_after <= 30.0  # type: ignore[operator]


def test_a_failure_burst_is_reported_at_once(local_first: Callable[..., RedisStore]) -> None:
    store = local_first(flush_interval=30.0, poll_interval=60.0)  # never, in this test
    breaker = CircuitBreaker("burst", store=store, failure_rate=0.5, minimum_calls=10)
    status = lambda: store.breaker_status("burst")  # noqa: E731
    for _ in range(5):
        breaker.call(lambda: 1)
    fail(breaker, 4)
    time.sleep(0.2)
    assert status().calls == 0  # type: ignore[union-attr]  # 4 failures: not yet
    fail(breaker)  # 5 = minimum_calls * failure_rate: enough to trip on its own
    eventually(lambda: status().state == "open")  # type: ignore[union-attr]
    eventually(lambda: breaker.state == "open")


def test_consecutive_failures_count_in_order(local_first: Callable[..., RedisStore]) -> None:
    store = local_first(flush_interval=30.0, poll_interval=60.0)
    breaker = CircuitBreaker("streak", store=store, consecutive_failures=3)
    fail(breaker, 2)
    breaker.call(lambda: 1)
    fail(breaker, 2)
    store.flush()
    assert breaker.state == "closed"  # 2, a success, 2: never 3 in a row
    assert store.breaker_status("streak").consecutive_failures == 2  # type: ignore[union-attr]
    fail(breaker)  # the third in a row: reported at once
    eventually(lambda: breaker.state == "open")


def test_a_count_window_takes_batches(local_first: Callable[..., RedisStore]) -> None:
    store = local_first(flush_interval=30.0, poll_interval=60.0)
    breaker = CircuitBreaker(
        "ring", store=store, window=CountWindow(10), failure_rate=0.9, minimum_calls=10
    )

    def window() -> tuple[int, int]:
        status = store.breaker_status("ring")
        assert status is not None
        return status.calls, status.failures

    for _ in range(7):
        breaker.call(lambda: 1)
    store.flush()
    assert window() == (7, 0)
    fail(breaker, 6)  # the batch overflows the ring: 4 successes and 6 failures left
    store.flush()
    assert window() == (10, 6)
    for _ in range(25):
        breaker.call(lambda: 1)
    store.flush()
    assert window() == (10, 0)
    fail(breaker, 3)
    for _ in range(4):
        breaker.call(lambda: 1)
    store.flush()  # one batch: 4 successes then 3 failures, whatever their order
    assert window() == (10, 3)


def test_half_open_trials_are_the_fleets(local_first: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    settings = {"consecutive_failures": 1, "open_for": 10.0, "half_open_calls": 1}
    here, there = (
        CircuitBreaker("trial", store=local_first(), clock=clock, **settings) for _ in range(2)
    )
    fail(here)
    eventually(lambda: there.state == "open")
    clock.advance(10.0)
    entered = threading.Event()
    leave = threading.Event()

    def slow_trial() -> str:
        entered.set()
        leave.wait(5)
        return "trial"

    worker = threading.Thread(target=lambda: here.call(slow_trial))
    worker.start()
    entered.wait(5)
    with pytest.raises(CircuitOpen) as rejected:  # the one trial runs elsewhere
        there.call(lambda: "second trial")
    assert rejected.value.state == "half_open"
    leave.set()
    worker.join()
    # The trial's success was recorded synchronously: closed for the fleet at once.
    assert here.state == "closed"
    eventually(lambda: there.state == "closed")
    assert there.call(lambda: 2) == 2


def test_without_pub_sub_a_poll_finds_the_transition(
    local_first: Callable[..., RedisStore], make_store: Callable[..., RedisStore]
) -> None:
    store = local_first(flush_interval=0.05, poll_interval=0.2)
    breaker = CircuitBreaker("polled", store=store)
    assert store._listener is not None
    store._listener.stop()  # no more transitions by pub/sub
    make_store().force_breaker("polled", "open")
    assert breaker.state == "closed"  # nothing heard yet
    started = time.monotonic()
    eventually(lambda: breaker.state == "forced_open", timeout=2.0)
    assert time.monotonic() - started < 1.0


def test_an_epoch_s_counts_are_dropped_when_it_ends(
    local_first: Callable[..., RedisStore], make_store: Callable[..., RedisStore]
) -> None:
    store = local_first(flush_interval=30.0, poll_interval=60.0)
    breaker = CircuitBreaker("epochs", store=store, minimum_calls=100)
    fail(breaker, 30)
    make_store().force_breaker("epochs", "reset")  # a new epoch, heard by pub/sub
    eventually(lambda: breaker._backend._epoch == store.breaker_status("epochs").epoch)  # type: ignore[attr-defined,union-attr]
    store.flush()
    assert store.breaker_status("epochs").failures == 0  # type: ignore[union-attr]


def test_close_stops_the_background_threads(redis_url: str, prefix: str) -> None:
    before = {t.name for t in threading.enumerate()}
    store = RedisStore.from_url(redis_url, prefix=prefix, sync_mode="local-first")
    breaker = CircuitBreaker("threads", store=store)
    fail(breaker, 3)
    started = {t.name for t in threading.enumerate()} - before
    assert any("worker" in name for name in started)
    assert any("listener" in name for name in started)
    store.close()
    assert {t.name for t in threading.enumerate()} - before == set()
    # The last round reported what was pending.
    with RedisStore.from_url(redis_url, prefix=prefix) as reader:
        assert reader.breaker_status("threads").failures == 3  # type: ignore[union-attr]


def test_cut_off_from_redis_the_breaker_decides_locally(own_server: RedisServer) -> None:
    store = RedisStore.from_url(
        own_server.url, prefix="cut", timeout=0.2, sync_mode="local-first", errors_to_cut_off=1
    )
    try:
        breaker = CircuitBreaker("cut", store=store, consecutive_failures=3)
        assert breaker.call(lambda: 1) == 1
        own_server.kill()
        store.flush()  # the next report fails: cut off
        assert not store.available
        assert breaker.call(lambda: 2) == 2  # a local breaker now
        fail(breaker, 3)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: 3)
    finally:
        store.close()


@pytest.mark.anyio
async def test_async_calls_on_any_event_loop(local_first: Callable[..., RedisStore]) -> None:
    store = local_first(flush_interval=0.05)
    breaker = CircuitBreaker("async", store=store, consecutive_failures=2, open_for=0.5)

    async def one() -> int:
        await anyio.sleep(0)
        return 1

    async def aboom() -> None:
        raise Boom

    calls = Calls(store)
    me = threading.current_thread().name
    assert [await breaker.acall(one) for _ in range(100)] == [1] * 100
    assert calls.by(me) == []  # no I/O on the way
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.acall(aboom)
    deadline = time.monotonic() + 5  # the streak is reported at once, learnt back at once
    while breaker.state != "open":
        assert time.monotonic() < deadline
        await anyio.sleep(0.01)
    with pytest.raises(CircuitOpen):
        await breaker.acall(one)
    assert calls.by(me) == []  # rejected locally
    await anyio.sleep(0.6)
    assert await breaker.acall(one) == 1  # a trial, asked of Redis without blocking
    assert breaker.state == "closed"
    assert "cb_acquire" in [script for script, _ in calls.made]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_store_in_local_first_mode(
    make_async_store: Callable[..., AsyncRedisStore],
) -> None:
    store = make_async_store(sync_mode="local-first", flush_interval=0.05)
    breaker = CircuitBreaker("asyncio", store=store, consecutive_failures=2)

    async def aboom() -> None:
        raise Boom

    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.acall(aboom)
    deadline = time.monotonic() + 5
    while breaker.state != "open":
        assert time.monotonic() < deadline
        await anyio.sleep(0.01)


# -- token buckets: quota leasing --------------------------------------------------------


def test_a_local_first_bucket_spends_leased_tokens_without_asking(
    local_first: Callable[..., RedisStore],
) -> None:
    clock = FakeClock()
    store = local_first(flush_interval=0.05)
    limiter = TokenBucket(1000, store=store, key="lease", clock=clock)
    assert limiter._backend.lease_tokens == 50  # type: ignore[attr-defined]  # 1000/s * 50 ms
    calls = Calls(store)
    for _ in range(1000):  # 1000 calls/s: about 50 per flush interval
        limiter.acquire()
        clock.advance(0.001)
    takes = calls.made.count(("tb_take", threading.current_thread().name))
    assert takes < 100  # instead of 1000: leases of up to 50 tokens


def test_leases_never_take_more_than_lease_tokens(
    local_first: Callable[..., RedisStore], make_store: Callable[..., RedisStore]
) -> None:
    clock = FakeClock()
    here = TokenBucket(100, store=local_first(lease_tokens=3), key="few", clock=clock)
    there = TokenBucket(100, store=make_store(), key="few", clock=clock)  # strict
    backend: Any = here._backend
    admitted_here = 0
    while admitted_here < 30 or backend._tokens == 0:  # 100 calls/s: leases grow to 3
        here.acquire()
        admitted_here += 1
        clock.advance(0.01)
    leased = backend._tokens
    assert 1 <= leased <= 2  # a lease of 3: one for the call, the rest kept here

    def drain(limiter: TokenBucket) -> int:
        admitted = 0
        while True:
            try:
                limiter.acquire()
            except RateLimited:
                return admitted
            admitted += 1

    clock.advance(2.0)  # the fleet's bucket is full again; the lease is still here
    assert drain(there) == 100  # the whole burst, at one instant...
    assert drain(here) == leased  # ...and the tokens leased before it: over the burst
    # by what one instance had leased, never more than lease_tokens.
    with pytest.raises(ValueError, match="lease_tokens"):
        local_first(lease_tokens=0)


@pytest.mark.anyio
async def test_an_async_local_first_bucket(local_first: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    limiter = TokenBucket(100, burst=5, store=local_first(), key="alease", clock=clock)
    for _ in range(5):
        await limiter.aacquire()
    with pytest.raises(RateLimited):
        await limiter.aacquire()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aclose_leaves_no_thread_behind(redis_url: str, prefix: str) -> None:
    before = {t.name for t in threading.enumerate()}
    store = AsyncRedisStore.from_url(redis_url, prefix=prefix, sync_mode="local-first")
    breaker = CircuitBreaker("athreads", store=store)
    budget = RetryBudget(store=store, key="athreads")
    bulkhead = Bulkhead(2, name="athreads", store=store)
    assert await breaker.acall(bulkhead.acall, anyio.sleep, 0) is None
    budget.record_call()
    ours = lambda: {t.name for t in threading.enumerate() if t.name.startswith("resilience")}  # noqa: E731
    assert ours()  # the listener, the worker
    await store.aclose()
    assert ours() - before == set()  # (anyio's own idle worker threads may remain)
