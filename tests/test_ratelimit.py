"""TokenBucket: arguments, bucket semantics, waiting, refusing, cancellation, order,
stores, events, and its bound under real threads and real tasks.

Most tests run on virtual time (``FakeClock``): waiting for tokens sleeps on the
policy's clock, so a wait moves virtual time by exactly the delay. Cancellation tests use
``ManualClock`` (below), whose sleepers stay asleep until the test moves time, so that a
test can cancel them mid-wait. The concurrency tests run on the real clock.
The exact reference-model comparison lives in test_ratelimit_model.py.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from datetime import timedelta
from typing import Any

import anyio
import pytest

import resilience
import resilience._policies.bucket
import resilience._policies.policy
from resilience import (
    Acquired,
    Constant,
    Event,
    Pipeline,
    RateLimited,
    Rejected,
    ReservationCancelled,
    ResilienceError,
    Retry,
    SystemClock,
    TokenBucket,
)
from resilience._core.bucket import BucketCore, Decision, LimiterSettings, Reservation
from resilience.stores import LimiterStore, MemoryStore
from resilience.testing import FakeClock

# -- helpers ------------------------------------------------------------------------


class Interrupt(BaseException):
    """Not an Exception: like a KeyboardInterrupt arriving while a thread waits."""


class ManualClock:
    """Time moves only when the test says so; sleepers wake when it passes their deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        raise AssertionError("these tests wait asynchronously only")

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken = anyio.Event()
        self._sleepers.append((self.now + seconds, woken))
        await woken.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for sleeper in list(self._sleepers):
            if sleeper[0] <= self.now:
                sleeper[1].set()
                self._sleepers.remove(sleeper)


def refused(limiter: TokenBucket, cost: float = 1) -> float:
    """Assert that ``acquire`` is refused at once; return its retry_after."""
    with pytest.raises(RateLimited) as info:
        limiter.acquire(cost)
    assert info.value.retry_after is not None
    return info.value.retry_after


def grant_all(limiter: TokenBucket, n: int) -> None:
    for _ in range(n):
        assert limiter.acquire() == 0.0


# -- construction ---------------------------------------------------------------------


def test_defaults(clock: FakeClock) -> None:
    limiter = TokenBucket(10, clock=clock)
    assert limiter.settings == LimiterSettings(rate=10.0, per=1.0, burst=10.0)
    assert limiter.max_wait == 0.0
    assert limiter.name is None
    assert limiter.key is None
    assert limiter.kind == "token_bucket"
    assert repr(limiter) == "TokenBucket(rate=10.0, per=1.0, burst=10.0, max_wait=0.0, name=None)"


def test_burst_defaults_to_rate_but_at_least_one_token(clock: FakeClock) -> None:
    assert TokenBucket(2.5, clock=clock).settings.burst == 2.5
    slow = TokenBucket(0.5, clock=clock)  # one token every two seconds
    assert slow.settings.burst == 1.0
    slow.acquire()
    assert refused(slow) == 2.0


def test_durations_may_be_timedeltas(clock: FakeClock) -> None:
    limiter = TokenBucket(3, per=timedelta(minutes=1), max_wait=timedelta(seconds=30), clock=clock)
    assert limiter.settings.per == 60.0
    assert limiter.settings.interval == 20.0
    assert limiter.max_wait == 30.0
    grant_all(limiter, 3)
    assert limiter.acquire() == 20.0


def test_max_wait_none_waits_as_long_as_it_takes(clock: FakeClock) -> None:
    limiter = TokenBucket(1, per=3600, burst=1, max_wait=None, clock=clock)
    assert limiter.max_wait == math.inf
    limiter.acquire()
    assert limiter.acquire() == 3600.0
    assert clock.sleeps == [3600.0]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0,), {}, ValueError, "rate must be greater than 0, got 0"),
        ((-1,), {}, ValueError, "rate must be greater than 0, got -1"),
        ((math.nan,), {}, ValueError, "rate must be a finite number, got nan"),
        ((math.inf,), {}, ValueError, "rate must be a finite number"),
        (("10/s",), {}, TypeError, "rate must be a number, got '10/s'"),
        ((True,), {}, TypeError, "rate must be a number"),
        ((10,), {"per": 0}, ValueError, "per must be greater than 0 seconds, got 0"),
        ((10,), {"per": -1}, ValueError, "per must be greater than 0 seconds"),
        ((10,), {"per": "1s"}, TypeError, "per must be a duration"),
        ((10,), {"per": timedelta(0)}, ValueError, "per must be greater than 0"),
        ((10,), {"burst": 0.5}, ValueError, "burst must be at least 1 .*, got 0.5"),
        ((10,), {"burst": 0}, ValueError, "burst must be at least 1"),
        ((10,), {"burst": -3}, ValueError, "burst must be at least 1"),
        ((10,), {"burst": math.nan}, ValueError, "burst must be a finite number"),
        ((10,), {"burst": "5"}, TypeError, "burst must be a number"),
        ((10,), {"max_wait": -1}, ValueError, "max_wait must be 0 or more seconds, got -1"),
        ((10,), {"max_wait": math.nan}, ValueError, "max_wait must be a finite duration"),
        ((10,), {"max_wait": "1s"}, TypeError, "max_wait must be a duration"),
        ((10,), {"key": ""}, ValueError, "key must be non-empty"),
        ((10,), {"key": 7}, TypeError, "key must be a str or None, got 7"),
        ((10,), {"store": object()}, TypeError, "store must be a limiter store"),
        ((10,), {"name": 7}, TypeError, "name must be a str"),
        ((10,), {"clock": object()}, TypeError, "clock must have monotonic"),
    ],
)
def test_invalid_arguments_name_the_parameter_and_value(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TokenBucket(*args, **kwargs)


@pytest.mark.parametrize(
    ("cost", "error", "message"),
    [
        (0, ValueError, "cost must be greater than 0, got 0"),
        (-2, ValueError, "cost must be greater than 0, got -2"),
        (math.nan, ValueError, "cost must be a finite number"),
        ("2", TypeError, "cost must be a number, got '2'"),
        (4, ValueError, r"cost must be at most burst \(3.0\): 4 tokens can never be free"),
    ],
)
def test_invalid_costs_are_refused_before_taking_anything(
    clock: FakeClock, cost: Any, error: type[Exception], message: str
) -> None:
    limiter = TokenBucket(1, burst=3, clock=clock)
    with pytest.raises(error, match=message):
        limiter.acquire(cost)
    assert limiter.available == 3.0


@pytest.mark.anyio
async def test_invalid_costs_are_refused_in_async_code_too(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=3, clock=clock)
    with pytest.raises(ValueError, match="cost must be at most burst"):
        await limiter.aacquire(3.5)
    assert limiter.available == 3.0


# -- the bucket -------------------------------------------------------------------------


def test_a_full_bucket_grants_burst_then_one_token_per_interval(clock: FakeClock) -> None:
    limiter = TokenBucket(2, burst=3, clock=clock)  # a token every 0.5 s
    grant_all(limiter, 3)
    assert refused(limiter) == 0.5
    clock.advance(0.25)
    assert refused(limiter) == 0.25
    clock.advance(0.25)
    grant_all(limiter, 1)
    assert refused(limiter) == 0.5


def test_an_idle_bucket_refills_only_up_to_burst(clock: FakeClock) -> None:
    limiter = TokenBucket(2, burst=3, clock=clock)
    grant_all(limiter, 3)
    clock.advance(1000)
    assert limiter.available == 3.0
    grant_all(limiter, 3)
    assert refused(limiter) == 0.5


def test_fractional_tokens_and_costs(clock: FakeClock) -> None:
    limiter = TokenBucket(4, burst=2, clock=clock)  # a token every 0.25 s
    assert limiter.acquire(2) == 0.0
    assert refused(limiter, 0.5) == 0.125
    clock.advance(0.125)
    assert limiter.acquire(0.5) == 0.0
    assert limiter.available == 0.0
    clock.advance(0.125)
    assert limiter.available == 0.5
    assert refused(limiter, 1.5) == 0.25


def test_a_refusal_takes_nothing(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=2, clock=clock)
    limiter.acquire(2)
    for _ in range(10):
        assert refused(limiter) == 1.0
    assert refused(limiter, 2) == 2.0  # asking for more than is free takes none either
    clock.advance(1)
    grant_all(limiter, 1)


def test_retry_after_is_exactly_when_the_tokens_are_free(clock: FakeClock) -> None:
    limiter = TokenBucket(2, burst=1, clock=clock)
    limiter.acquire()
    retry_after = refused(limiter)
    assert retry_after == 0.5
    clock.advance(retry_after - 1 / 1024)
    assert refused(limiter) == 1 / 1024
    clock.advance(1 / 1024)
    grant_all(limiter, 1)


def test_retry_after_counts_tokens_promised_to_waiting_callers(clock: FakeClock) -> None:
    store = MemoryStore()
    waiting = TokenBucket(1, burst=2, max_wait=10, store=store, key="api", clock=clock)
    impatient = TokenBucket(1, burst=2, store=store, key="api", clock=clock)
    waiting.acquire(2)
    backend = waiting._backend
    reservation = backend.acquire(2.0, 10.0)  # a waiter (not sleeping: we hold its slot)
    assert isinstance(reservation, Reservation)
    assert reservation.delay == 2.0
    assert waiting.available == -2.0
    # 2 s until the waiter's tokens refill, 1 more for this caller's token.
    assert refused(impatient) == 3.0
    assert refused(impatient, 2) == 4.0


def test_rate_limited_error(clock: FakeClock) -> None:
    limiter = TokenBucket(1, name="search", clock=clock)
    limiter.acquire()
    with pytest.raises(RateLimited) as info:
        limiter.acquire()
    error = info.value
    assert isinstance(error, ResilienceError)
    assert (error.name, error.retry_after) == ("search", 1.0)
    assert str(error) == "rate limiter search has no token (next in 1.000s)"


# -- waiting ----------------------------------------------------------------------------


def test_a_caller_waits_up_to_max_wait_for_its_tokens(clock: FakeClock) -> None:
    limiter = TokenBucket(2, burst=1, max_wait=0.5, clock=clock)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 0.5  # waits exactly max_wait: allowed
    assert clock.monotonic() == 0.5
    assert limiter.acquire(1) == 0.5
    assert clock.sleeps == [0.5, 0.5]


def test_a_caller_that_would_wait_longer_is_refused_at_once(clock: FakeClock) -> None:
    limiter = TokenBucket(2, burst=2, max_wait=0.75, clock=clock)
    limiter.acquire(2)
    assert refused(limiter, 2) == 1.0
    assert clock.sleeps == []
    assert clock.monotonic() == 0.0
    assert limiter.acquire(1.5) == 0.75


def test_decorated_functions_wait_then_run_or_do_not_run_at_all(clock: FakeClock) -> None:
    calls: list[float] = []

    def record(x: int) -> int:
        calls.append(clock.monotonic())
        return x + 1

    store = MemoryStore()
    patient = TokenBucket(1, burst=1, max_wait=1, key="k", store=store, clock=clock)
    impatient = TokenBucket(1, burst=1, key="k", store=store, clock=clock)
    assert patient(record)(1) == 2
    assert patient(record)(2) == 3  # waited one second for its token
    with pytest.raises(RateLimited):
        impatient(record)(3)
    assert calls == [0.0, 1.0]


@pytest.mark.anyio
async def test_async_callers_wait_on_the_clock(clock: FakeClock) -> None:
    limiter = TokenBucket(4, burst=1, max_wait=1, clock=clock)

    @limiter
    async def fetch(x: int) -> int:
        return x + 1

    assert await fetch(1) == 2
    assert await limiter.aacquire() == 0.25
    assert await fetch(2) == 3
    assert clock.sleeps == [0.25, 0.25]
    impatient = TokenBucket(4, burst=1, clock=clock)
    assert await impatient.acall(fetch.__wrapped__, 3) == 4  # type: ignore[attr-defined]
    with pytest.raises(RateLimited) as info:
        await impatient.acall(fetch.__wrapped__, 4)  # type: ignore[attr-defined]
    assert info.value.retry_after == 0.25
    assert clock.sleeps == [0.25, 0.25]


# -- the ways to use it --------------------------------------------------------------------


def test_decoration_preserves_the_function(clock: FakeClock) -> None:
    limiter = TokenBucket(10, clock=clock)

    def fetch(x: int) -> int:
        """Fetch x."""
        return x + 1

    async def afetch(x: int) -> int:
        return x + 1

    decorated = limiter(fetch)
    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch x."
    assert decorated.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(decorated)
    assert inspect.iscoroutinefunction(limiter(afetch))


def test_every_call_takes_one_token(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=5, clock=clock)

    class Client:
        @limiter
        def get(self, x: int) -> int:
            return x * 2

    client = Client()
    assert client.get(1) == 2  # a method: binds as usual
    assert limiter.call(lambda: "called") == "called"
    with limiter as entered:
        assert entered is limiter
    assert limiter.acquire() == 0.0
    assert limiter.available == 1.0
    with pytest.raises(KeyError), limiter:  # a failing body spent its token all the same
        raise KeyError("x")
    assert limiter.available == 0.0
    with pytest.raises(RateLimited), limiter:
        raise AssertionError("the body must not run")


@pytest.mark.anyio
async def test_every_async_call_takes_one_token(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=4, clock=clock)

    async def double(x: int) -> int:
        return x * 2

    assert await limiter(double)(1) == 2
    assert await limiter.acall(double, 2) == 4
    async with limiter as entered:
        assert entered is limiter
    assert await limiter.aacquire() == 0.0
    assert limiter.available == 0.0
    with pytest.raises(RateLimited):
        async with limiter:
            raise AssertionError("the body must not run")


def test_retry_honours_retry_after(clock: FakeClock) -> None:
    limiter = TokenBucket(1, per=2, burst=1, clock=clock)
    pipeline = Pipeline(Retry(3, backoff=Constant(0), clock=clock), limiter)
    assert pipeline.call(lambda: "first") == "first"
    assert pipeline.call(lambda: "second") == "second"  # refused once, retried 2 s later
    assert clock.sleeps == [2.0]


# -- stores and keys -------------------------------------------------------------------------


def test_limiters_of_one_key_share_one_bucket(clock: FakeClock) -> None:
    store = MemoryStore()
    a = TokenBucket(1, burst=2, store=store, key="api", clock=clock)
    b = TokenBucket(1, burst=2, store=store, key="api", name="b", clock=clock)
    other = TokenBucket(1, burst=2, store=store, key="other", clock=clock)
    assert (a.key, b.key) == ("api", "api")
    a.acquire()
    b.acquire()
    refused(a)
    refused(b)
    grant_all(other, 2)


def test_the_key_defaults_to_the_name(clock: FakeClock) -> None:
    store = MemoryStore()
    a = TokenBucket(1, store=store, name="search", clock=clock)
    b = TokenBucket(1, store=store, key="search", clock=clock)
    assert a.key == "search"
    a.acquire()
    refused(b)


def test_without_key_or_name_each_limiter_has_its_own_bucket(clock: FakeClock) -> None:
    store = MemoryStore()
    a = TokenBucket(1, store=store, clock=clock)
    b = TokenBucket(1, store=store, clock=clock)
    c = TokenBucket(1, name="same", clock=clock)  # no store: private, whatever the name
    d = TokenBucket(1, name="same", clock=clock)
    for limiter in (a, b, c, d):
        grant_all(limiter, 1)


def test_a_key_with_other_settings_is_refused(clock: FakeClock) -> None:
    store = MemoryStore()
    TokenBucket(1, store=store, key="api", clock=clock)
    TokenBucket(1, max_wait=5, store=store, key="api", clock=clock)  # max_wait is per limiter
    with pytest.raises(ValueError, match=r"token bucket 'api' already exists .* other settings"):
        TokenBucket(2, store=store, key="api", clock=clock)


class AsyncOnlyBackend:
    """A backend whose sync methods would block (like a network store): async callers
    must use the ``a``-prefixed twins. Records what it was asked."""

    nonblocking = False

    def __init__(self, settings: LimiterSettings, clock: Any) -> None:
        self._core = BucketCore(settings, clock)
        self.settings = settings
        self.calls: list[str] = []

    def acquire(self, cost: float, max_wait: float) -> Decision:
        self.calls.append("acquire")
        return self._core.acquire(cost, max_wait)

    def taker(self, cost: float, max_wait: float) -> Any:
        take = self._core.taker(cost, max_wait)

        def counted() -> Decision:
            self.calls.append("take")
            return take()

        return counted

    def cancel(self, reservation: Reservation) -> None:
        self.calls.append("cancel")
        self._core.cancel(reservation)

    def available(self) -> float:
        return self._core.available()

    def configure(self, settings: LimiterSettings) -> None:
        self._core.configure(settings)

    async def aacquire(self, cost: float, max_wait: float) -> Decision:
        self.calls.append("aacquire")
        await anyio.lowlevel.checkpoint()
        return self._core.acquire(cost, max_wait)

    async def acancel(self, reservation: Reservation) -> None:
        self.calls.append("acancel")
        await anyio.lowlevel.checkpoint()  # would fail if not shielded from the cancellation
        self._core.cancel(reservation)


class AsyncOnlyStore:
    def __init__(self) -> None:
        self.backends: list[AsyncOnlyBackend] = []

    def token_bucket(self, key: str | None, settings: LimiterSettings, clock: Any) -> Any:
        backend = AsyncOnlyBackend(settings, clock)
        self.backends.append(backend)
        return backend


def test_any_object_with_token_bucket_is_a_store(clock: FakeClock) -> None:
    store = AsyncOnlyStore()
    assert isinstance(store, LimiterStore)
    limiter = TokenBucket(1, burst=2, store=store, key="api", clock=clock)
    limiter.acquire()
    assert store.backends[0].calls == ["take"]
    limiter.acquire(0.5 + 0.25)
    assert store.backends[0].calls == ["take", "acquire"]


@pytest.mark.anyio
async def test_async_code_awaits_a_blocking_backend() -> None:
    clock = ManualClock()
    store = AsyncOnlyStore()
    limiter = TokenBucket(1, burst=2, max_wait=5, store=store, clock=clock)
    backend = store.backends[0]

    async def work() -> str:
        return "done"

    assert await limiter(work)() == "done"
    assert await limiter.acall(work) == "done"
    assert backend.calls == ["aacquire", "aacquire"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.aacquire)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleeps == [1.0]
        assert limiter.available == -1.0
        tg.cancel_scope.cancel()
    assert backend.calls == ["aacquire", "aacquire", "aacquire", "acancel"]
    assert limiter.available == 0.0  # the cancelled waiter's token came back


# -- cancellation gives reservations back ------------------------------------------------


def test_core_unwinds_cancelled_reservations_through_holes() -> None:
    clock = FakeClock()
    core = BucketCore(LimiterSettings(rate=1.0, per=1.0, burst=1.0), clock)
    assert core.acquire(1.0, 0.0) is None
    waiters = [core.acquire(1.0, 10.0) for _ in range(3)]
    assert [w.delay for w in waiters if isinstance(w, Reservation)] == [1.0, 2.0, 3.0]
    _, middle, last = waiters
    assert isinstance(middle, Reservation)
    assert isinstance(last, Reservation)
    core.cancel(middle)  # the last one is still promised slot 3: nothing can move yet
    assert core.available() == -3.0
    late = core.acquire(1.0, 10.0)
    assert isinstance(late, Reservation)
    assert late.delay == 4.0
    core.cancel(late)  # the newest: back at once
    assert core.available() == -3.0
    core.cancel(last)  # the newest again: back, and the middle one's hole with it
    assert core.available() == -1.0
    again = core.acquire(1.0, 10.0)
    assert isinstance(again, Reservation)
    assert again.delay == 2.0


def test_core_forgets_holes_below_a_granted_reservation() -> None:
    clock = FakeClock()
    core = BucketCore(LimiterSettings(rate=1.0, per=1.0, burst=1.0), clock)
    core.acquire(1.0, 0.0)
    first, second = core.acquire(1.0, 10.0), core.acquire(1.0, 10.0)
    assert isinstance(first, Reservation)
    assert isinstance(second, Reservation)
    core.cancel(first)  # a hole below the second
    clock.advance(2.0)  # the second is admitted at 2.0: the hole can never come back
    newer = core.acquire(1.0, 10.0)
    assert isinstance(newer, Reservation)
    assert newer.delay == 1.0
    core.cancel(newer)
    assert core.available() == 0.0  # back to "second just admitted", not below it


def test_an_interrupted_sync_waiter_gives_its_tokens_back() -> None:
    class InterruptedClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            raise Interrupt

    clock = InterruptedClock()
    limiter = TokenBucket(1, burst=1, max_wait=5, clock=clock)
    events: list[Event] = []
    limiter.listen(events.append)
    limiter.acquire()
    with pytest.raises(Interrupt):
        limiter.acquire()
    assert limiter.available == 0.0
    assert [(e.type, e.details) for e in events] == [
        ("acquired", Acquired(waited=0.0)),
        ("cancelled", ReservationCancelled(delay=1.0)),
    ]


@pytest.mark.anyio
async def test_cancelled_async_waiters_give_their_tokens_back() -> None:
    clock = ManualClock()
    limiter = TokenBucket(1, burst=1, max_wait=10, clock=clock)
    await limiter.aacquire()
    admitted: list[tuple[int, float]] = []
    scopes: list[anyio.CancelScope] = []

    async def waiter(i: int) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await limiter.aacquire()
            admitted.append((i, clock.now))

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
            await anyio.wait_all_tasks_blocked()  # arrivals in order 0, 1, 2
        assert clock.sleeps == [1.0, 2.0, 3.0]
        scopes[1].cancel()  # the middle one: its slot is kept until the last one leaves
        await anyio.wait_all_tasks_blocked()
        assert limiter.available == -3.0
        scopes[2].cancel()
        await anyio.wait_all_tasks_blocked()
        assert limiter.available == -1.0
        tg.start_soon(waiter, 3)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleeps[-1] == 2.0  # right behind waiter 0
        for _ in range(4):
            clock.advance(1.0)
            await anyio.wait_all_tasks_blocked()
    assert admitted == [(0, 1.0), (3, 2.0)]


@pytest.mark.anyio
async def test_cancelling_every_waiter_restores_the_bucket() -> None:
    clock = ManualClock()
    limiter = TokenBucket(2, burst=2, max_wait=None, clock=clock)
    events: list[Event] = []
    limiter.listen(events.append)
    await limiter.aacquire()
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(limiter.aacquire, 1.5)
        await anyio.wait_all_tasks_blocked()
        assert limiter.available < -5
        tg.cancel_scope.cancel()
    assert limiter.available == 1.0
    assert [e.type for e in events].count("cancelled") == 5
    assert [e.type for e in events].count("acquired") == 1


# -- arrival order ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_waiters_are_admitted_in_arrival_order_on_virtual_time(clock: FakeClock) -> None:
    limiter = TokenBucket(4, burst=1, max_wait=None, clock=clock)  # a token every 0.25 s
    grants: list[tuple[int, float, float]] = []
    arrivals = 0

    async def caller(cost: float) -> None:
        nonlocal arrivals
        arrived, arrivals = arrivals, arrivals + 1
        now = clock.monotonic()  # no await between this and the request: its arrival time
        waited = await limiter.aacquire(cost)
        grants.append((arrived, now + waited, cost))

    async with anyio.create_task_group() as tg:
        for cost in (1, 0.5, 1, 0.25, 1, 0.5):
            tg.start_soon(caller, cost)
    grants.sort()  # by arrival (trio may start tasks in another order than asyncio)
    # One queue: the k-th arrival is admitted when the tokens of arrivals 0..k minus the
    # initial token have refilled, never earlier and never later.
    taken = 0.0
    for arrived, admitted, cost in grants:
        taken += cost
        assert admitted == max(0.0, taken - 1) / 4, f"arrival {arrived}: {grants}"


@pytest.mark.anyio
async def test_waiters_wake_in_arrival_order_on_the_real_clock() -> None:
    # A token every 50 ms: a waiter's sleep starts a moment after its reservation, and on
    # a loaded machine that moment can stretch past a shorter gap between two slots.
    limiter = TokenBucket(20, burst=1, max_wait=2)
    woke: list[int] = []

    async def caller(i: int) -> None:
        await limiter.aacquire()
        woke.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(caller, i)
            await anyio.wait_all_tasks_blocked()  # arrivals in order 0..5
    assert woke == list(range(6))


@pytest.mark.anyio
async def test_waiting_never_blocks_the_event_loop() -> None:
    limiter = TokenBucket(10, burst=1, max_wait=1)  # the second call waits 100 ms
    ticks = 0
    stop = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await limiter.aacquire()
        before = ticks
        waited = await limiter.aacquire()
        during = ticks - before
        stop.set()
    assert waited > 0.05
    assert during >= 3, f"the loop ran the ticker {during} times while a caller waited"


# -- events ------------------------------------------------------------------------------


def test_events(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=1, max_wait=2, name="api", clock=clock)
    impatient = TokenBucket(1, burst=1, clock=clock)
    events: list[Event] = []
    limiter.listen(events.append)
    impatient.listen(events.append)
    limiter.acquire()
    limiter.acquire()
    impatient.acquire()
    with pytest.raises(RateLimited):
        impatient.acquire()
    assert events == [
        Event("token_bucket", "api", "acquired", 0.0, Acquired(waited=0.0)),
        Event("token_bucket", "api", "acquired", 1.0, Acquired(waited=1.0)),
        Event("token_bucket", None, "acquired", 1.0, Acquired(waited=0.0)),
        Event("token_bucket", None, "rejected", 1.0, Rejected(retry_after=1.0)),
    ]


@pytest.mark.anyio
async def test_global_listeners_see_async_events(clock: FakeClock) -> None:
    limiter = TokenBucket(1, burst=1, max_wait=1, name="api", clock=clock)
    events: list[Event] = []
    stop = resilience.listen(events.append)
    try:

        @limiter
        async def work() -> None:
            pass

        await work()
        await work()
        with pytest.raises(RateLimited):
            async with TokenBucket(1, burst=1, clock=clock) as held, held:
                pass
    finally:
        stop()
    assert [(e.name, e.type, e.details) for e in events] == [
        ("api", "acquired", Acquired(waited=0.0)),
        ("api", "acquired", Acquired(waited=1.0)),
        (None, "acquired", Acquired(waited=0.0)),
        (None, "rejected", Rejected(retry_after=1.0)),
    ]


def test_no_event_is_built_when_nobody_listens(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    monkeypatch.setattr(resilience._policies.policy, "Event", lambda *a, **k: built.append(a))
    limiter = TokenBucket(1, burst=1, max_wait=1, clock=clock)
    limiter.acquire()
    limiter.acquire()
    limiter.call(lambda: None)  # waits
    with limiter:  # waits
        pass
    impatient = TokenBucket(1, burst=1, clock=clock)
    impatient.acquire()
    with pytest.raises(RateLimited):
        impatient.call(lambda: None)
    assert built == []


def test_a_failing_listener_does_not_break_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = TokenBucket(1, clock=clock)

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    limiter.listen(broken)
    assert limiter.call(lambda: "ok") == "ok"
    assert "listener bug" in caplog.text


# -- configure (live reload) -----------------------------------------------------------------


def test_configure_keeps_the_free_tokens(clock: FakeClock) -> None:
    core = BucketCore(LimiterSettings(rate=1.0, per=1.0, burst=4.0), clock)
    core.acquire(3.0, 0.0)
    core.configure(LimiterSettings(rate=2.0, per=1.0, burst=8.0))
    assert core.available() == 1.0
    clock.advance(1.0)
    assert core.available() == 3.0  # now two tokens a second
    core.configure(LimiterSettings(rate=2.0, per=1.0, burst=2.0))
    assert core.available() == 2.0  # capped by the smaller bucket
    assert core.settings.burst == 2.0


# -- the bound under real threads ---------------------------------------------------------------


class RecordingClock(SystemClock):
    """The real clock, remembering per thread the last time it read and how often."""

    def __init__(self) -> None:
        self._local = threading.local()

    def monotonic(self) -> float:
        now = time.monotonic()
        self._local.last = now
        self._local.reads = getattr(self._local, "reads", 0) + 1
        return now

    def last_read(self) -> tuple[float, int]:
        return self._local.last, self._local.reads


def max_in_any_window(grants: list[float], rate: float, burst: float) -> float:
    """The largest ``count - (burst + rate * (t2 - t1))`` over all windows [t1, t2]
    between two grant times (each grant one token); <= 0 means the bound holds."""
    grants = sorted(grants)
    # For each start i: max over j >= i of (j + 1 - rate * t_j), minus (i - rate * t_i).
    worst = -math.inf
    best_end = -math.inf
    for i in range(len(grants) - 1, -1, -1):
        best_end = max(best_end, i + 1 - rate * grants[i])
        worst = max(worst, best_end - (i - rate * grants[i]) - burst)
    return worst


def test_threads_hammering_one_bucket_stay_within_the_bound() -> None:
    rate, burst, seconds = 500.0, 50, 2.0
    clock = RecordingClock()
    store = MemoryStore()
    impatient = TokenBucket(rate, burst=burst, store=store, key="api", clock=clock)
    patient = TokenBucket(rate, burst=burst, max_wait=0.02, store=store, key="api", clock=clock)
    grants: list[list[float]] = [[] for _ in range(8)]
    refusals = [0] * 8
    start = threading.Barrier(8)
    deadline = time.monotonic() + seconds + 1.0

    def hammer(i: int) -> None:
        limiter = patient if i % 2 else impatient
        mine = grants[i]
        start.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end < deadline:
            _, reads_before = clock.last_read() if hasattr(clock._local, "last") else (0, 0)
            try:
                waited = limiter.acquire()
            except RateLimited:
                refusals[i] += 1
                continue
            decided_at, reads = clock.last_read()
            assert reads == reads_before + 1, "the limiter read the clock more than once"
            mine.append(decided_at + waited)  # admitted at its slot

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admitted = [t for mine in grants for t in mine]
    excess = max_in_any_window(admitted, rate, burst)
    assert excess <= 1e-6, f"{excess} calls over the bound in some window"
    # Liveness: the bucket did admit about what it allows (burst + rate * seconds).
    assert len(admitted) >= 0.5 * rate * seconds
    assert len(admitted) <= burst + rate * (max(admitted) - min(admitted)) + 1e-6
    assert all(grants[i] for i in range(1, 8, 2)), "every patient thread got tokens"
    assert sum(refusals) > 0


def test_the_window_check_catches_an_excess() -> None:
    assert max_in_any_window([0.0, 0.0, 0.0], rate=1.0, burst=2) == 1.0
    assert max_in_any_window([0.0, 0.5, 1.0, 2.0], rate=1.0, burst=1) == 1.0
    assert max_in_any_window([0.0, 1.0, 2.0], rate=1.0, burst=1) == 0.0
