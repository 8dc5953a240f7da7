"""The admin API the ``resilience status|open|close|reset`` commands use."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience import Bulkhead, CircuitBreaker, CircuitOpen, CountWindow, TokenBucket
from resilience.stores.redis import BreakerStatus, BucketStatus, BulkheadStatus, RedisStore


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def test_breakers_lists_every_breaker_under_the_prefix(
    make_store: Callable[..., RedisStore], prefix: str
) -> None:
    store = make_store()
    payments = CircuitBreaker("payments", store=store, consecutive_failures=1, open_for=30)
    search = CircuitBreaker("search", store=store, window=CountWindow(10), minimum_calls=5)
    for _ in range(3):
        search.call(lambda: 1)
    with pytest.raises(Boom):
        search.call(boom)
    with pytest.raises(Boom):
        payments.call(boom)
    elsewhere = make_store(prefix=f"{prefix}-other")  # another prefix: not listed
    CircuitBreaker("elsewhere", store=elsewhere).call(lambda: 1)

    listed = store.breakers()
    assert [status.name for status in listed] == ["payments", "search"]
    opened, counting = listed
    assert opened.state == "open"
    assert opened.retry_after is not None
    assert 29 < opened.retry_after <= 30
    assert opened.consecutive_opens == 1
    assert counting == BreakerStatus(
        name="search",
        state="closed",
        retry_after=None,
        calls=4,
        failures=1,
        slow_calls=0,
        failure_rate=0.25,
        slow_call_rate=0.0,
        consecutive_failures=1,
        consecutive_opens=0,
        trials=0,
        trial_successes=0,
        window="10 calls",
        epoch=counting.epoch,
    )
    assert store.breaker_status("nobody") is None


def test_forcing_by_name_reaches_every_instance(make_store: Callable[..., RedisStore]) -> None:
    admin, app = make_store(), make_store()
    breaker = CircuitBreaker("orders", store=app)
    status = admin.force_breaker("orders", "open")
    assert status.state == "forced_open"
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)
    assert admin.force_breaker("orders", "close").state == "closed"
    assert breaker.call(lambda: 1) == 1
    assert admin.force_breaker("orders", "reset").epoch > status.epoch
    assert admin.force_breaker("orders", "disable").state == "disabled"
    with pytest.raises(ValueError, match="action must be one of"):
        admin.force_breaker("orders", "explode")


def test_a_breaker_can_be_opened_before_any_instance_uses_it(
    make_store: Callable[..., RedisStore],
) -> None:
    admin = make_store()
    assert admin.force_breaker("not-yet", "open").state == "forced_open"
    later = CircuitBreaker("not-yet", store=make_store())
    with pytest.raises(CircuitOpen):
        later.call(lambda: 1)


def test_forcing_through_the_store_updates_its_own_breakers_at_once(
    make_store: Callable[..., RedisStore],
) -> None:
    store = make_store()
    breaker = CircuitBreaker("local-view", store=store)
    store.force_breaker("local-view", "open")
    assert breaker.state == "forced_open"  # no wait for pub/sub


def test_buckets_lists_the_buckets_in_use(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    TokenBucket(10, burst=4, per=2.0, store=store, key="api").acquire(3)
    TokenBucket(1e9, store=store, key="idle")  # never used: no key
    [status] = store.buckets()
    assert status.key == "api"
    assert status == BucketStatus(key="api", tokens=status.tokens, burst=4.0, rate=5.0)
    assert 1.0 <= status.tokens < 1.1
    assert store.bucket_status("idle") is None


def test_bulkheads_lists_the_shared_bulkheads_in_use(
    make_store: Callable[..., RedisStore],
) -> None:
    store, other = make_store(), make_store()
    assert store.bulkheads() == []
    db = Bulkhead(3, name="db", store=store)
    Bulkhead(3, name="db", store=other).call(lambda: None)
    Bulkhead(1, name="idle{odd}", store=other).call(lambda: None)
    other.flush()  # hand back the slots those calls held (done in the background)
    with db:
        listed = store.bulkheads()
    assert [status.key for status in listed] == ["db", "idle{odd}"]
    assert listed[0] == BulkheadStatus(key="db", held=1, instances=2)
    assert listed[1] == BulkheadStatus(key="idle{odd}", held=0, instances=1)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_the_admin_api_from_async_code(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    await store.aforce_breaker("async-admin", "open")
    [status] = await store.abreakers()
    assert status.state == "forced_open"
    assert (await store.abreaker_status("async-admin")) == status
    assert await store.abuckets() == []
    assert await store.abucket_status("none") is None
    assert await store.abulkheads() == []
    assert await store.abulkhead_status("none") == BulkheadStatus("none", held=0, instances=0)


def test_many_breakers_are_listed_across_scan_pages(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    names = [f"b{i:04d}" for i in range(1500)]
    pipe = store.client.pipeline(transaction=False)
    for name in names:
        pipe.hset(f"{store.prefix}:cb:{{{name}}}:s", mapping={"st": 0, "ep": 1, "oc": 0})
        pipe.pexpire(f"{store.prefix}:cb:{{{name}}}:s", 60_000)
    pipe.execute()
    assert [status.name for status in store.breakers()] == names
