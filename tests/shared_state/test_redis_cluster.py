"""The same store on a 3-node Redis Cluster that the tests create."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import anyio
import pytest
import redis
from redis_helpers import Cluster

from resilience import (
    Bulkhead,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    RateLimited,
    RetryBudget,
    TokenBucket,
)
from resilience.stores.redis import AsyncRedisStore, RedisStore
from resilience.testing import FakeClock


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


@pytest.fixture
def make_cluster_store(cluster: Cluster, prefix: str) -> Iterator[Callable[..., RedisStore]]:
    stores: list[RedisStore] = []

    def make(**options: object) -> RedisStore:
        options = {"prefix": prefix, "timeout": 2.0, "cluster": True, **options}
        stores.append(RedisStore.from_url(cluster.url, **options))  # type: ignore[arg-type]
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_two_stores_share_breakers_across_the_cluster(
    make_cluster_store: Callable[..., RedisStore],
) -> None:
    one, other = make_cluster_store(), make_cluster_store()
    names = [f"svc-{i}" for i in range(12)]
    here = {n: CircuitBreaker(n, store=one, consecutive_failures=2) for n in names}
    there = {n: CircuitBreaker(n, store=other, consecutive_failures=2) for n in names}
    seen: list[str] = []
    for name in names:
        there[name].listen(lambda event: seen.append(event.name or ""))
        here[name].call(lambda: 1)
        for _ in range(2):
            with pytest.raises(Boom):
                here[name].call(boom)
        with pytest.raises(CircuitOpen):
            there[name].call(lambda: 1)
    eventually(lambda: sorted(set(seen)) == sorted(names))  # pub/sub across nodes
    one.force_breaker("svc-0", "reset")
    assert there["svc-0"].call(lambda: 2) == 2
    assert [status.name for status in other.breakers()] == sorted(names)  # every node


def test_each_policy_lives_in_one_slot_and_policies_spread(
    make_cluster_store: Callable[..., RedisStore], cluster: Cluster, prefix: str
) -> None:
    store = make_cluster_store()
    client = store.client
    assert isinstance(client, redis.RedisCluster)
    owners = set()
    for i in range(12):
        name = f"spread-{i}"
        CircuitBreaker(name, store=store).call(lambda: 1)
        keys = [key.decode() for key in client.scan_iter(match=f"{prefix}:cb:{{{name}}}:*")]
        assert len(keys) == 2  # state and window
        slots = {client.keyslot(key) for key in keys}
        assert len(slots) == 1
        owners.add(client.get_node_from_key(keys[0]).name)  # type: ignore[no-untyped-call]
    assert len(owners) == len(cluster.nodes)  # twelve names land on all three nodes


def test_a_shared_bucket_on_the_cluster(make_cluster_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    a = TokenBucket(4, store=make_cluster_store(), key="api", clock=clock)
    b = TokenBucket(4, store=make_cluster_store(), key="api", clock=clock)
    for limiter in (a, b, a, b):
        limiter.acquire()
    with pytest.raises(RateLimited):
        a.acquire()
    [status] = make_cluster_store().buckets()
    assert status.key == "api"


def test_scripts_flushed_on_every_node_are_reloaded(
    make_cluster_store: Callable[..., RedisStore], cluster: Cluster
) -> None:
    store = make_cluster_store()
    breakers = [CircuitBreaker(f"flush-{i}", store=store) for i in range(6)]
    for breaker in breakers:
        breaker.call(lambda: 1)
    for node in cluster.nodes:
        node.command("SCRIPT", "FLUSH")
    for breaker in breakers:
        assert breaker.call(lambda: 2) == 2
    assert store._link.failures == 0
    assert all(breaker.metrics().calls == 2 for breaker in breakers)


def test_the_asyncio_store_on_the_cluster(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with AsyncRedisStore.from_url(
            cluster.url, prefix=prefix, cluster=True, timeout=2.0
        ) as store:
            breaker = CircuitBreaker("async-cluster", store=store, consecutive_failures=1)

            async def aboom() -> None:
                raise Boom

            with pytest.raises(Boom):
                await breaker.acall(aboom)
            assert breaker.state == "open"
            assert [s.state for s in store.breakers()] == ["open"]
            limiter = TokenBucket(2, store=store, key="async-cluster")
            await limiter.aacquire()
            await limiter.aacquire()
            with pytest.raises(RateLimited):
                await limiter.aacquire()
            assert store._link.failures == 0

    anyio.run(main)


def test_fleet_policies_across_the_cluster(make_cluster_store: Callable[..., RedisStore]) -> None:
    """Local-first breakers (with the min_instances guard), leased buckets, retry
    budgets and bulkheads: every script keeps to one slot, whatever the node."""
    stores = [make_cluster_store(sync_mode="local-first", min_instances=2) for _ in range(2)]
    names = [f"fleet-{i}" for i in range(6)]
    for name in names:
        here, there = (CircuitBreaker(name, store=s, consecutive_failures=2) for s in stores)
        for breaker in (here, there):
            with pytest.raises(Boom):
                breaker.call(boom)
            with pytest.raises(Boom):
                breaker.call(boom)
        eventually(lambda here=here: here.state == "open")  # type: ignore[misc]
        limiter = TokenBucket(100, store=stores[0], key=name)
        for _ in range(20):
            limiter.acquire()
        budget = RetryBudget(0.5, min_per_second=1, store=stores[0], key=name)
        assert budget.try_retry()
        bulkhead = Bulkhead(1, name=name, store=stores[0])
        other = Bulkhead(1, name=name, store=stores[1])
        with bulkhead, pytest.raises(BulkheadFull):
            other.call(lambda: None)
        stores[0].flush()
        assert stores[1].bulkhead_status(name).held == 0
