"""RetryBudget through a Redis store: the fleet's retries under ``ratio`` of the
fleet's calls plus the floor, decided locally and reported in the background."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience import Constant, Retry, RetryBudget
from resilience.stores.redis import RedisStore
from resilience.testing import FakeClock, RedisServer


def take_all(budget: RetryBudget, limit: int = 10_000) -> int:
    granted = 0
    while granted < limit and budget.try_retry():
        granted += 1
    return granted


def test_instances_split_the_fleets_headroom(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    stores = [make_store(), make_store()]
    here, there = (
        RetryBudget(ratio=0.5, min_per_second=0.0, store=s, key="api", clock=clock) for s in stores
    )
    for _ in range(20):
        here.record_call()
    for store in stores:
        store.flush()
    # 20 calls in the fleet: 10 retries, 5 for each of the two instances reporting.
    assert take_all(there) == 5
    assert take_all(here) == 5
    for store in stores:
        store.flush()
    assert take_all(here) == take_all(there) == 0  # the fleet's 10 are spent
    for _ in range(4):
        there.record_call()  # earns 2 retries at once, for this instance
    assert take_all(there) == 2


def test_the_window_forgets_old_calls_and_retries(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    store = make_store()
    budget = RetryBudget(
        ratio=1.0, min_per_second=0.0, window=10.0, store=store, key="w", clock=clock
    )
    for _ in range(3):
        budget.record_call()
    store.flush()
    assert take_all(budget) == 3
    clock.advance(11.0)
    store.flush()
    assert take_all(budget) == 0  # the calls aged out with the retries
    budget.record_call()
    assert take_all(budget) == 1


def test_the_floor_is_the_fleets(make_store: Callable[..., RedisStore]) -> None:
    clock = FakeClock()
    stores = [make_store() for _ in range(4)]
    budgets = [
        RetryBudget(ratio=0.01, min_per_second=2.0, window=10.0, store=s, key="f", clock=clock)
        for s in stores
    ]
    for store in stores:
        store.flush()
    assert sum(take_all(budget) for budget in budgets) == 20  # 2/s over 10 s, not 80


def test_a_retry_policy_spends_the_shared_budget(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    budget = RetryBudget(ratio=0.01, min_per_second=0.3, window=10.0, store=store, key="r")
    retry = Retry(attempts=5, backoff=Constant(0), budget=budget)
    attempts = []

    def fails() -> None:
        attempts.append(1)
        raise OSError("down")

    with pytest.raises(OSError) as raised:
        retry.call(fails)
    assert len(attempts) == 4  # three retries: the floor of 0.3/s over 10 s
    assert "retry budget is spent" in raised.value.__notes__[-1]


def test_a_shared_budget_needs_a_key(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="needs a key"):
        RetryBudget(store=store)
    kept = RetryBudget(store=store, key="k")
    with pytest.raises(ValueError, match="already exists in this store with other settings"):
        RetryBudget(ratio=0.3, store=store, key="k")
    assert kept.try_retry()


def test_cut_off_from_redis_the_floor_is_split_across_the_instances_last_seen(
    own_server: RedisServer,
) -> None:
    clock = FakeClock()
    options = {"prefix": "cut", "timeout": 0.2, "errors_to_cut_off": 1, "key_ttl": 600}
    stores = [RedisStore.from_url(own_server.url, **options) for _ in range(2)]  # type: ignore[arg-type]
    try:
        here, there = (
            RetryBudget(ratio=0.01, min_per_second=1.0, store=s, key="b", clock=clock)
            for s in stores
        )
        for store in stores:
            store.flush()
        own_server.kill()
        stores[0].flush()  # fails: cut off
        assert not stores[0].available
        assert take_all(here) == 5  # 1/s over 10 s, for two instances
        assert take_all(there) == 5  # (this one still has its share)
    finally:
        for store in stores:
            store.close()


def test_failing_closed_no_retry_while_cut_off(own_server: RedisServer) -> None:
    store = RedisStore.from_url(
        own_server.url, prefix="closed", timeout=0.2, on_store_error="closed", errors_to_cut_off=1
    )
    try:
        budget = RetryBudget(ratio=0.5, min_per_second=1.0, store=store, key="c")
        assert budget.try_retry()
        own_server.kill()
        store.flush()
        assert not store.available
        assert not budget.try_retry()
    finally:
        store.close()
