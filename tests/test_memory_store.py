"""MemoryStore keys state by name (breakers) or key (buckets, budgets, bulkheads), as a
shared store does."""

from __future__ import annotations

import pytest

from resilience import (
    Bulkhead,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    Event,
    EventDetails,
    RetryBudget,
    StateChange,
    TokenBucket,
)
from resilience.stores import BreakerStore, MemoryStore
from resilience.testing import FakeClock


def boom() -> None:
    raise ConnectionError("down")


def test_breakers_of_one_name_share_state(clock: FakeClock) -> None:
    store = MemoryStore()
    a = CircuitBreaker("search", store=store, consecutive_failures=2, clock=clock)
    b = CircuitBreaker("search", store=store, consecutive_failures=2, clock=clock)
    for breaker in (a, b):  # one failure through each: two in a row for the shared state
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert a.state == b.state == "open"
    with pytest.raises(CircuitOpen):
        b.call(lambda: 1)
    assert a.metrics() == b.metrics()


def test_each_sharing_breaker_reports_transitions(clock: FakeClock) -> None:
    store = MemoryStore()
    a = CircuitBreaker("search", store=store, clock=clock)
    b = CircuitBreaker("search", store=store, clock=clock)
    seen: list[tuple[str, EventDetails | None]] = []
    a.listen(lambda e: seen.append(("a", e.details)))
    b.listen(lambda e: seen.append(("b", e.details)))
    a.open()
    opened = StateChange(from_state="closed", to_state="forced_open")
    assert sorted(seen, key=lambda item: item[0]) == [("a", opened), ("b", opened)]


def test_other_names_and_unnamed_breakers_are_separate(clock: FakeClock) -> None:
    store = MemoryStore()
    a = CircuitBreaker("search", store=store, clock=clock)
    other = CircuitBreaker("billing", store=store, clock=clock)
    anon1 = CircuitBreaker(store=store, clock=clock)
    anon2 = CircuitBreaker(store=store, clock=clock)
    a.open()
    anon1.open()
    assert other.state == "closed"
    assert anon2.state == "closed"


def test_same_name_with_other_settings_is_refused(clock: FakeClock) -> None:
    store = MemoryStore()
    CircuitBreaker("search", store=store, minimum_calls=5, clock=clock)
    with pytest.raises(ValueError, match=r"'search'.*other settings"):
        CircuitBreaker("search", store=store, minimum_calls=6, clock=clock)


def test_buckets_budgets_and_bulkheads_are_shared_by_key_and_must_agree(
    clock: FakeClock,
) -> None:
    store = MemoryStore()
    one = TokenBucket(1, burst=2, key="api", store=store, clock=clock)
    two = TokenBucket(1, burst=2, key="api", store=store, clock=clock)
    one.acquire()
    assert two.available == pytest.approx(1.0)  # one bucket
    assert TokenBucket(1, burst=2, store=store, clock=clock).available == 2  # no key: private
    with pytest.raises(
        ValueError,
        match=r"^token bucket 'api' already exists in this store with other settings "
        r"\(.*burst=2.0\)\)",
    ):
        TokenBucket(1, burst=3, key="api", store=store, clock=clock)

    RetryBudget(0.2, key="b", store=store, clock=clock)
    with pytest.raises(
        ValueError, match=r"^retry budget 'b' already exists .* another key or the same settings$"
    ):
        RetryBudget(0.3, key="b", store=store, clock=clock)

    slots = Bulkhead(1, name="db", store=store)
    with slots, pytest.raises(BulkheadFull):
        Bulkhead(1, name="db", store=store).call(lambda: None)  # the same slot
    with pytest.raises(
        ValueError,
        match=r"^bulkhead 'db' already exists in this store with other limits "
        r"\(max_concurrent=1, max_queue=0\); give this one another key or the same limits$",
    ):
        Bulkhead(2, name="db", store=store)


def test_default_store_is_private_per_breaker(clock: FakeClock) -> None:
    a = CircuitBreaker("search", clock=clock)
    b = CircuitBreaker("search", clock=clock)
    a.open()
    assert b.state == "closed"


def test_memory_store_is_a_breaker_store() -> None:
    assert isinstance(MemoryStore(), BreakerStore)


def test_store_that_is_not_a_store_is_refused() -> None:
    with pytest.raises(TypeError, match="store"):
        CircuitBreaker(store=object())  # type: ignore[arg-type]


def test_events_type_is_exported() -> None:
    assert Event.__name__ == "Event"
