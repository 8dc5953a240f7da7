"""Async code with shared state: AsyncRedisStore on asyncio, RedisStore everywhere."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
import redis.asyncio

from resilience import CircuitBreaker, CircuitOpen, RateLimited, TokenBucket
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


async def aboom() -> None:
    raise Boom


async def one() -> int:
    return 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_store_shares_state_with_a_sync_store(
    make_async_store: Callable[..., AsyncRedisStore], make_store: Callable[..., RedisStore]
) -> None:
    store = make_async_store()
    async_breaker = CircuitBreaker("shared", store=store, consecutive_failures=2)
    sync_breaker = CircuitBreaker("shared", store=make_store(), consecutive_failures=2)
    assert await async_breaker.acall(one) == 1
    for _ in range(2):
        with pytest.raises(Boom):
            await async_breaker.acall(aboom)
    with pytest.raises(CircuitOpen):
        sync_breaker.call(lambda: 1)
    sync_breaker.reset()  # sync manual control from the other store
    assert await async_breaker.acall(one) == 1
    async_breaker.open()  # manual control on the asyncio store: its sync client
    assert sync_breaker.metrics().state == "forced_open"
    await store.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_store_limits_across_stores(
    make_async_store: Callable[..., AsyncRedisStore], make_store: Callable[..., RedisStore]
) -> None:
    clock = FakeClock()
    here = TokenBucket(5, store=make_async_store(), key="api", clock=clock)
    there = TokenBucket(5, store=make_store(), key="api", clock=clock)
    for _ in range(3):
        await here.aacquire()
    for _ in range(2):
        there.acquire()
    with pytest.raises(RateLimited) as refused:
        await here.aacquire()
    assert refused.value.retry_after == pytest.approx(0.2)
    clock.advance(0.2)
    await here.aacquire()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cancelled_async_trial_gives_its_slot_back(
    make_async_store: Callable[..., AsyncRedisStore],
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "cancel", store=make_async_store(), clock=clock, consecutive_failures=1
    )
    with pytest.raises(Boom):
        await breaker.acall(aboom)
    clock.advance(30.0)
    started = anyio.Event()

    async def trial() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(breaker.acall, trial)
        await started.wait()
        with pytest.raises(CircuitOpen):  # the only trial slot is taken
            await breaker.acall(one)
        tasks.cancel_scope.cancel()
    assert await breaker.acall(one) == 1  # the cancelled trial released its lease
    assert breaker.state == "closed"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_asyncio_store_refuses_trio_clearly(
    make_async_store: Callable[..., AsyncRedisStore],
) -> None:
    breaker = CircuitBreaker("trio", store=make_async_store())
    with pytest.raises(RuntimeError, match="under trio, use RedisStore"):
        await breaker.acall(one)
    limiter = TokenBucket(5, store=make_async_store(), key="trio")
    with pytest.raises(RuntimeError, match="needs an asyncio event loop"):
        await limiter.aacquire()


async def test_the_sync_store_serves_async_code_on_any_loop(
    make_store: Callable[..., RedisStore], anyio_backend: str
) -> None:
    """asyncio and trio: each Redis call runs in a worker thread."""
    store = make_store()
    breaker = CircuitBreaker("threads", store=store, consecutive_failures=2)
    limiter = TokenBucket(3, store=store, key="threads")
    results = []

    async def call() -> None:
        await limiter.aacquire()
        results.append(await breaker.acall(one))

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(call)
    assert results == [1, 1, 1]
    with pytest.raises(RateLimited):
        await limiter.aacquire()
    assert breaker.metrics().calls == 3


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_asyncio_store_belongs_to_one_event_loop(redis_url: str, prefix: str) -> None:
    store = AsyncRedisStore.from_url(redis_url, prefix=prefix, timeout=2.0)
    breaker = CircuitBreaker("loop", store=store)
    assert await breaker.acall(one) == 1

    def elsewhere() -> None:
        async def main() -> None:
            await breaker.acall(one)

        import asyncio

        asyncio.run(main())

    with pytest.raises(RuntimeError, match="bound to the event loop"):
        await anyio.to_thread.run_sync(elsewhere)
    await store.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_user_asyncio_client_gets_a_derived_sync_client(
    redis_url: str, prefix: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=0.5, retry=None)
    store = AsyncRedisStore(client, prefix=prefix)
    breaker = CircuitBreaker("derived", store=store)
    assert await breaker.acall(one) == 1
    breaker.open()  # through the derived sync client
    assert [s.state for s in store.breakers()] == ["forced_open"]
    await store.aclose()
    await client.aclose()
    cluster = redis.asyncio.RedisCluster(host="127.0.0.1", port=1)  # never connects
    with (
        pytest.warns(RuntimeWarning, match="socket_timeout"),  # redis-py's defaults
        pytest.raises(TypeError, match="sync_client"),
    ):
        AsyncRedisStore(cluster, prefix=prefix)
