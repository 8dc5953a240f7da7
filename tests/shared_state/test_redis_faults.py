"""When Redis misbehaves: calls go on from local state, and the store comes back by itself.

Each test hurts a server of its own (``own_server``): SIGKILL, ``DEBUG SLEEP``,
``CLIENT PAUSE WRITE``, ``SCRIPT FLUSH``, or a proxy that swallows packets. What must
hold every time:

- every call returns its own result (or raises its own exception): no Redis error;
- while the store is still detecting the outage, a call waits at most about the store's
  ``timeout``; once cut off (``errors_to_cut_off`` failures in a row), calls do not
  touch the network at all (counted at the link);
- the outage and the recovery are one event each, and the store uses Redis again on
  its own once the server answers.

Latency bounds here are generous liveness bounds (a hang would take redis-py's 5 s
default or forever), not speed targets: the numbers are in docs/benchmarks.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from redis_helpers import Proxy

from resilience import (
    CircuitBreaker,
    CircuitOpen,
    Event,
    Exponential,
    RateLimited,
    StoreRecovered,
    TokenBucket,
)
from resilience import listen as listen_globally
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.stores.redis._scripts import SCRIPTS
from resilience.testing import RedisServer

TIMEOUT = 0.05
#: A call must never take this long: far above TIMEOUT, far below a hang.
HANG = 1.0
QUICK_RECONNECT = Exponential(base=0.02, max=0.1, jitter="full")


class Boom(Exception):
    pass


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Watch:
    """Counts the store's network attempts and collects its events."""

    def __init__(self, store: RedisStore | AsyncRedisStore) -> None:
        self.store = store
        self.attempts = 0
        self.events: list[Event] = []
        link = store._link
        call, acall = link._call, link._acall

        def counting(*args: Any) -> Any:
            self.attempts += 1
            return call(*args)

        async def acounting(*args: Any) -> Any:
            self.attempts += 1
            return await acall(*args)

        link._call, link._acall = counting, acounting  # type: ignore[method-assign]

    def __call__(self, event: Event) -> None:
        if event.kind == "store" and event.name == self.store.prefix:
            self.events.append(event)

    @property
    def types(self) -> list[str]:
        return [event.type for event in self.events]


@pytest.fixture
def watch() -> Iterator[Callable[[RedisStore | AsyncRedisStore], Watch]]:
    stops = []

    def make(store: RedisStore | AsyncRedisStore) -> Watch:
        watcher = Watch(store)
        stops.append(listen_globally(watcher))
        return watcher

    yield make
    for stop in stops:
        stop()


@pytest.fixture
def fragile(prefix: str) -> Iterator[Callable[..., RedisStore]]:
    """Stores with a short timeout and quick reconnection, closed at the end."""
    stores: list[RedisStore] = []

    def make(url: str, **options: Any) -> RedisStore:
        options = {
            "prefix": prefix,
            "timeout": TIMEOUT,
            "reconnect": QUICK_RECONNECT,
            **options,
        }
        stores.append(RedisStore.from_url(url, **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def calls_through_outage(
    store: RedisStore, watcher: Watch, hurt: Callable[[], object], name: str = "svc"
) -> list[float]:
    """Calls before, during and after ``hurt()``: each returns its result. Returns the
    durations of the calls made after the hurt while the store still asked Redis."""
    breaker = CircuitBreaker(name, store=store)
    limiter = TokenBucket(1e6, store=store, key=name)
    for i in range(5):
        assert breaker.call(lambda i=i: i) == i
        limiter.acquire()
    assert store.available
    before = watcher.attempts
    hurt()
    detecting: list[float] = []
    attempts_at_cut_off = None
    for i in range(50):
        up = store.available
        result, seconds = timed(lambda i=i: breaker.call(lambda: i))
        assert result == i
        limiter.acquire()
        if up:
            detecting.append(seconds)
        elif attempts_at_cut_off is None:
            attempts_at_cut_off = watcher.attempts
    assert not store.available, "the store never noticed the outage"
    assert watcher.types == ["unavailable"]
    # errors_to_cut_off failed attempts, then 40-odd more calls (breaker and limiter)
    # without one network attempt.
    assert attempts_at_cut_off == before + 3
    assert watcher.attempts == attempts_at_cut_off
    assert max(detecting) < HANG
    return detecting


def test_redis_killed_mid_traffic(
    own_server: RedisServer, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    store = fragile(own_server.url)
    watcher = watch(store)
    calls_through_outage(store, watcher, own_server.kill)
    own_server.start()  # same port, empty, no scripts loaded
    eventually(lambda: watcher.types == ["unavailable", "recovered"])
    assert store.available
    unavailable, recovered = watcher.events
    assert unavailable.details is None
    assert unavailable.exception is not None
    assert isinstance(recovered.details, StoreRecovered)
    assert recovered.details.outage > 0
    breaker = CircuitBreaker("svc", store=store)
    assert breaker.call(lambda: "back") == "back"
    assert store.breaker_status("svc") is not None  # the state is in Redis again


def test_redis_asleep(
    own_server: RedisServer, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    store = fragile(own_server.url)
    watcher = watch(store)
    sleeper: list[threading.Thread] = []
    detecting = calls_through_outage(store, watcher, lambda: sleeper.append(own_server.sleep(1.0)))
    # The breaker calls made while detecting each waited for the timeout (no more: HANG).
    assert min(detecting) >= TIMEOUT * 0.9
    sleeper[0].join()
    eventually(lambda: watcher.types == ["unavailable", "recovered"])
    assert store.available


def test_redis_pausing_writes(
    own_server: RedisServer, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    """CLIENT PAUSE WRITE: PING still answers, scripts wait. The probe runs a script,
    so the store does not come back before writes do."""
    store = fragile(own_server.url)
    watcher = watch(store)
    paused_until = []

    def pause() -> None:
        own_server.pause_writes(0.8)
        paused_until.append(time.monotonic() + 0.8)

    calls_through_outage(store, watcher, pause)
    eventually(lambda: store.available)
    assert time.monotonic() >= paused_until[0] - 0.05
    eventually(lambda: watcher.types == ["unavailable", "recovered"])


def test_script_flush_is_handled_transparently(
    own_server: RedisServer, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    store = fragile(own_server.url, timeout=2.0)
    watcher = watch(store)
    breaker = CircuitBreaker("flushed", store=store, minimum_calls=100)
    breaker.call(lambda: 1)
    own_server.command("SCRIPT", "FLUSH")
    breaker.call(lambda: 2)
    TokenBucket(10, store=store, key="flushed").acquire()
    assert breaker.metrics().calls == 2  # both counted in Redis
    assert store._link.failures == 0
    assert watcher.types == []
    exists = own_server.command("SCRIPT", "EXISTS", *(script.sha for script in SCRIPTS))
    loaded = {script.name for script, found in zip(SCRIPTS, exists, strict=True) if found}
    assert loaded == {"cb_acquire", "cb_record", "tb_take", "cb_status"}  # as needed


def test_a_silent_network(
    proxy: Proxy, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    """A proxy that swallows every packet: no error, no reset, only silence."""
    store = fragile(proxy.url)
    watcher = watch(store)
    detecting = calls_through_outage(store, watcher, proxy.blackhole)
    assert min(detecting) >= TIMEOUT * 0.9
    time.sleep(0.3)  # probes keep failing (new connections are never answered)
    assert not store.available
    proxy.heal()
    eventually(lambda: watcher.types == ["unavailable", "recovered"])
    assert store.available
    # The connections lost in the partition were dropped: calls go through Redis again.
    breaker = CircuitBreaker("svc", store=store)
    for _ in range(5):
        assert breaker.call(lambda: "ok") == "ok"
    assert store.available
    assert watcher.types == ["unavailable", "recovered"]


def test_fail_closed_refuses_while_redis_cannot_be_asked(
    own_server: RedisServer, fragile: Callable[..., RedisStore]
) -> None:
    store = fragile(own_server.url, on_store_error="closed")
    breaker = CircuitBreaker("strict", store=store)
    limiter = TokenBucket(100, store=store, key="strict")
    assert breaker.call(lambda: 1) == 1
    own_server.kill()
    ran = []
    for _ in range(5):
        with pytest.raises(CircuitOpen) as rejected:
            breaker.call(lambda: ran.append(1))
        with pytest.raises(RateLimited):
            limiter.acquire()
    assert ran == []
    assert rejected.value.retry_after is not None
    assert breaker.state == "open"
    own_server.start()
    eventually(lambda: store.available)
    assert breaker.call(lambda: 2) == 2


def test_state_gathered_while_cut_off_never_reaches_the_fleet(
    proxy: Proxy, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    store = fragile(proxy.url)
    watcher = watch(store)
    breaker = CircuitBreaker("isolated", store=store, consecutive_failures=2, open_for=60)
    breaker.call(lambda: 1)
    proxy.blackhole()
    eventually(lambda: _call_quietly(breaker) or not store.available)
    for _ in range(2):  # the dependency fails: the local breaker opens
        with pytest.raises(Boom):
            breaker.call(_boom)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)
    assert breaker.state == "open"
    proxy.heal()
    eventually(lambda: watcher.types == ["unavailable", "recovered"])
    assert store.available
    assert store.breaker_status("isolated").state == "closed"  # type: ignore[union-attr]
    assert breaker.call(lambda: "fleet") == "fleet"  # the fleet's state rules again


def test_an_open_breaker_stays_open_locally_through_an_outage(
    proxy: Proxy, fragile: Callable[..., RedisStore]
) -> None:
    # A roomier timeout: on a loaded machine a 50 ms one can time out the reply that
    # opens the breaker, and then this process never learns that it is open.
    store = fragile(proxy.url, timeout=0.3)
    breaker = CircuitBreaker("held", store=store, consecutive_failures=1, open_for=60)
    with pytest.raises(Boom):
        breaker.call(_boom)
    assert breaker.state == "open"
    proxy.blackhole()
    for _ in range(10):  # open in Redis: rejected from Redis, then from local state
        with pytest.raises(CircuitOpen) as rejected:
            breaker.call(lambda: 1)
        assert rejected.value.retry_after is not None
        assert 55 < rejected.value.retry_after <= 60
    assert not store.available
    assert breaker.state == "open"


def _boom() -> None:
    raise Boom


def _call_quietly(breaker: CircuitBreaker) -> bool:
    breaker.call(lambda: None)
    return False


def test_the_asyncio_store_through_an_outage(
    own_server: RedisServer, prefix: str, watch: Callable[..., Watch]
) -> None:
    async def main() -> None:
        async with AsyncRedisStore.from_url(
            own_server.url, prefix=prefix, timeout=TIMEOUT, reconnect=QUICK_RECONNECT
        ) as store:
            watcher = watch(store)
            breaker = CircuitBreaker("async", store=store)
            limiter = TokenBucket(1e6, store=store, key="async")

            async def work(i: int) -> int:
                await limiter.aacquire()
                return i

            for i in range(5):
                assert await breaker.acall(work, i) == i
            own_server.kill()
            for i in range(30):
                assert await breaker.acall(work, i) == i
            assert not store.available
            attempts = watcher.attempts
            for i in range(10):
                assert await breaker.acall(work, i) == i
            assert watcher.attempts == attempts
            own_server.start()
            with anyio.fail_after(10):
                while watcher.types != ["unavailable", "recovered"]:
                    await anyio.sleep(0.01)
            assert await breaker.acall(work, 7) == 7
            assert store.available

    anyio.run(main)


def test_a_caller_s_own_exception_survives_an_outage(
    own_server: RedisServer, fragile: Callable[..., RedisStore]
) -> None:
    store = fragile(own_server.url)
    breaker = CircuitBreaker("own", store=store, minimum_calls=1000)
    own_server.kill()
    for _ in range(6):  # detecting, then cut off: always the caller's own exception
        with pytest.raises(Boom):
            breaker.call(_boom)


def test_breakers_made_while_redis_is_down_work_locally_at_once(
    own_server: RedisServer, fragile: Callable[..., RedisStore]
) -> None:
    own_server.kill()
    store = fragile(own_server.url)
    started = time.monotonic()
    breaker = CircuitBreaker("early", store=store)
    limiter = TokenBucket(10, store=store, key="early")
    assert time.monotonic() - started < HANG  # no wait for a listener that cannot listen
    for i in range(5):
        assert breaker.call(lambda i=i: i) == i
        limiter.acquire()
    assert not store.available
    own_server.start()
    eventually(lambda: store.available)
    assert breaker.call(lambda: "shared") == "shared"
    assert store.breaker_status("early") is not None


def test_a_replica_left_behind_by_a_failover(
    own_server: RedisServer, fragile: Callable[..., RedisStore], watch: Callable[..., Watch]
) -> None:
    """The store talks to a server that became (or still is) a read-only replica: it
    answers reads and refuses writes. The first refusal cuts the store off; it comes
    back when the server is promoted (REPLICAOF NO ONE), as after a failover."""
    with RedisServer(args=["--replicaof", "127.0.0.1", str(own_server.port)]) as replica:
        store = fragile(replica.url)
        watcher = watch(store)
        breaker = CircuitBreaker("replica", store=store)
        for i in range(5):
            assert breaker.call(lambda i=i: i) == i
        assert watcher.types == ["unavailable"]
        assert "ReadOnlyError" in repr(watcher.events[0].exception)
        time.sleep(0.2)
        assert not store.available  # probes write: still refused
        replica.command("REPLICAOF", "NO", "ONE")
        eventually(lambda: watcher.types == ["unavailable", "recovered"])
        assert breaker.call(lambda: "promoted") == "promoted"
        assert store.breaker_status("replica") is not None
