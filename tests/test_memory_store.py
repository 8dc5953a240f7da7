"""MemoryStore keys breaker state by name, as a shared store does."""

from __future__ import annotations

import pytest

from resilience import CircuitBreaker, CircuitOpen, Event
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
    seen: list[tuple[str, str | None]] = []
    a.listen(lambda e: seen.append(("a", e.to_state)))
    b.listen(lambda e: seen.append(("b", e.to_state)))
    a.open()
    assert sorted(seen) == [("a", "forced_open"), ("b", "forced_open")]


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
