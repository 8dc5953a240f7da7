"""``policy.clone(**changes)``: a fresh policy with the same settings and its own state."""

from __future__ import annotations

from typing import Any

import pytest

from resilience import (
    Bulkhead,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Fallback,
    Pipeline,
    Policy,
    Retry,
    Timeout,
    TokenBucket,
    per_key,
)
from resilience.stores import MemoryStore
from resilience.testing import FakeClock


def _fail() -> None:
    raise ValueError("down")


def test_a_breakers_clone_has_its_settings_and_its_own_state(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", consecutive_failures=1, open_for=7, clock=clock)
    copy = breaker.clone()
    assert copy is not breaker
    assert type(copy) is CircuitBreaker
    assert copy.settings == breaker.settings
    assert copy.name == "api"
    with pytest.raises(ValueError, match="down"):
        breaker.call(_fail)
    assert (breaker.state, copy.state) == ("open", "closed")
    with pytest.raises(CircuitOpen) as caught:
        breaker.call(_fail)
    assert caught.value.retry_after == 7.0  # the same clock


def test_changes_replace_arguments(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", consecutive_failures=3, clock=clock)
    copy = breaker.clone(name="api-eu", open_for=5)
    assert (copy.name, copy.settings.open_for, copy.settings.consecutive_failures) == (
        "api-eu",
        5.0,
        3,
    )
    assert breaker.name == "api"
    assert breaker.settings.open_for == 30.0


@pytest.mark.parametrize(
    ("policy", "changes", "check"),
    [
        (TokenBucket(5, 2.0, name="t"), {"burst": 1}, lambda p: (p.settings.burst, p.name)),
        (Bulkhead(3, 1), {"max_queue": 4}, lambda p: (p.max_concurrent, p.max_queue)),
        (Timeout(2.0), {"name": "t"}, lambda p: (p.seconds, p.name)),
        (Retry(4, backoff=Constant(1)), {"deadline": 9}, lambda p: (p.attempts, p.deadline)),
        (Fallback("x", name="f"), {}, lambda p: (p.value, p.name)),
    ],
)
def test_every_policy_clones(policy: Policy, changes: dict[str, Any], check: Any) -> None:
    copy = policy.clone(**changes)
    assert type(copy) is type(policy)
    assert copy is not policy
    expected = {
        "TokenBucket": (1.0, "t"),
        "Bulkhead": (3, 4),
        "Timeout": (2.0, "t"),
        "Retry": (4, 9.0),
        "Fallback": ("x", "f"),
    }[type(policy).__name__]
    assert check(copy) == expected


def test_a_bulkheads_clone_has_its_own_slots() -> None:
    bulkhead = Bulkhead(1)
    copy = bulkhead.clone()
    with bulkhead:
        with pytest.raises(BulkheadFull):
            bulkhead.call(lambda: None)
        assert copy.call(lambda: "free") == "free"


def test_a_clone_is_shallow() -> None:
    retry, breaker = Retry(), CircuitBreaker()
    pipeline = Pipeline(retry, breaker, name="p")
    copy = pipeline.clone(name="q")
    assert copy.policies == (retry, breaker)
    assert copy.name == "q"
    store = MemoryStore()
    shared = CircuitBreaker("api", store=store)
    assert shared.clone()._backend is shared._backend  # same store, same key: same state
    assert shared.clone(key="other")._backend is not shared._backend


def test_a_clone_has_no_listeners(clock: FakeClock) -> None:
    events: list[Event] = []
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    breaker.listen(events.append)
    with pytest.raises(ValueError, match="down"):
        breaker.clone().call(_fail)
    assert events == []


def test_unknown_or_variadic_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"CircuitBreaker.clone\(\) got an unexpected argument 'x'"):
        CircuitBreaker().clone(x=1)
    with pytest.raises(TypeError, match="unexpected argument 'policies'"):
        Pipeline(Retry()).clone(policies=())


def test_bad_changes_are_checked_like_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker().clone(failure_rate=2)


def test_keyed_policies_and_user_policies_clone() -> None:
    keyed = per_key(lambda key: CircuitBreaker(key), key=lambda x: x, max_keys=5)
    keyed.call(lambda x: x, "a")
    copy = keyed.clone(max_keys=2)
    assert (copy.max_keys, copy.keys(), keyed.keys()) == (2, [], ["a"])

    class Tagged(Retry):
        def __init__(self, tag: str, attempts: int = 3) -> None:
            super().__init__(attempts)
            self.tag = tag

    tagged = Tagged("x", attempts=5).clone(tag="y")
    assert (type(tagged), tagged.tag, tagged.attempts) == (Tagged, "y", 5)


# -- a breaker's store key ------------------------------------------------------------------


def test_a_breakers_key_is_its_name_unless_given() -> None:
    assert CircuitBreaker("api").key == "api"
    assert CircuitBreaker().key is None
    assert CircuitBreaker("api", key="api@eu").key == "api@eu"


@pytest.mark.parametrize(("key", "error"), [(7, TypeError), ("", ValueError), (" a", ValueError)])
def test_a_bad_key_is_refused_by_name(key: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="key must be"):
        CircuitBreaker(key=key)


def test_breakers_share_state_by_key(clock: FakeClock) -> None:
    store = MemoryStore()
    first = CircuitBreaker("a", key="shared", consecutive_failures=1, store=store, clock=clock)
    second = CircuitBreaker("b", key="shared", consecutive_failures=1, store=store, clock=clock)
    other = CircuitBreaker("a", key="own", consecutive_failures=1, store=store, clock=clock)
    with pytest.raises(ValueError, match="down"):
        first.call(_fail)
    assert (first.state, second.state, other.state) == ("open", "open", "closed")
