"""``policy.reconfigure(**settings)``: settings changed in place, by keyword, checked
before anything changes, the state kept; what config reloads and the HTTP per-host
copies go through. (Reloads from a config file: test_config_reload.py.)"""

from __future__ import annotations

import gc
import inspect
import random
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from holders import Holders

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    Bulkhead,
    BulkheadFull,
    Chaos,
    CircuitBreaker,
    CircuitOpen,
    Event,
    Fallback,
    Hedge,
    LatencyQuantile,
    Pipeline,
    Policy,
    RateLimited,
    Retry,
    RetryBudget,
    Timeout,
    TokenBucket,
    per_key,
)
from resilience.testing import FakeClock


def fail() -> None:
    raise ConnectionError("down")


@dataclass
class Case:
    """A policy, a change it takes, and a bad value it refuses."""

    make: Callable[[FakeClock], Policy]
    change: dict[str, Any]
    changed: Callable[[Any], bool]
    bad: dict[str, Any]
    error: type[Exception]


CASES = {
    "circuit_breaker": Case(
        lambda clock: CircuitBreaker("b", consecutive_failures=3, clock=clock),
        {"consecutive_failures": 5, "open_for": 60},
        lambda p: (p.settings.consecutive_failures, p.settings.open_for) == (5, 60.0),
        {"minimum_calls": 0},
        ValueError,
    ),
    "retry": Case(
        lambda clock: Retry(3, clock=clock),
        {"attempts": 5, "deadline": 10},
        lambda p: (p.attempts, p.deadline) == (5, 10.0),
        {"attempts": "many"},
        TypeError,
    ),
    "timeout": Case(
        lambda clock: Timeout(1.0, clock=clock),
        {"seconds": 2.5},
        lambda p: p.seconds == 2.5,
        {"seconds": -1},
        ValueError,
    ),
    "token_bucket": Case(
        lambda clock: TokenBucket(5, burst=5, clock=clock),
        {"rate": 10, "max_wait": 1},
        lambda p: (p.settings.rate, p.max_wait) == (10.0, 1.0),
        {"burst": 0.5},
        ValueError,
    ),
    "bulkhead": Case(
        lambda clock: Bulkhead(2, clock=clock),
        {"max_concurrent": 4, "max_queue": 2},
        lambda p: (p.max_concurrent, p.max_queue) == (4, 2),
        {"max_queue": -1},
        ValueError,
    ),
    "fallback": Case(
        lambda clock: Fallback(1, clock=clock),
        {"value": 2},
        lambda p: p.value == 2,
        {"on": "ConnectionError"},
        TypeError,
    ),
    "hedge": Case(
        lambda clock: Hedge(0.1, clock=clock),
        {"delay": 0.2, "max_hedges": 2},
        lambda p: (p.delay, p.max_hedges) == (0.2, 2),
        {"max_hedges": 0},
        ValueError,
    ),
    "adaptive_concurrency": Case(
        lambda clock: AdaptiveConcurrency(AIMD(), initial_limit=8, max_limit=50, clock=clock),
        {"max_queue": 3, "max_limit": 40},
        lambda p: (p.max_queue, p.max_limit) == (3, 40),
        {"min_limit": 0},
        ValueError,
    ),
    "adaptive_throttle": Case(
        lambda clock: AdaptiveThrottle(seed=1, clock=clock),
        {"k": 3, "window": 60},
        lambda p: (p.k, p.window) == (3.0, 60.0),
        {"k": 0.5},
        ValueError,
    ),
    "chaos": Case(
        lambda clock: Chaos.fault(0.5, ConnectionError, seed=1, clock=clock),
        {"rate": 0.25},
        lambda p: p.rate == 0.25,
        {"rate": 2},
        ValueError,
    ),
}
ALL = pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
#: Constructor arguments that are a policy's identity, never changed in place.
IDENTITY = {"name", "clock", "store", "key"}


def settings_of(policy: Policy) -> dict[str, Any]:
    (described,) = policy.describe().policies
    return dict(described.settings)


def test_every_reloadable_kind_is_covered() -> None:
    from resilience.config._schema import KINDS

    assert set(CASES) == set(KINDS)


@ALL
def test_every_constructor_argument_but_identity_is_reconfigurable(case: Case) -> None:
    policy = case.make(FakeClock())
    parameters = set(inspect.signature(type(policy)).parameters)
    assert policy.reconfigurable == parameters - IDENTITY


@ALL
def test_a_change_applies_and_the_other_settings_keep_their_values(
    case: Case, clock: FakeClock
) -> None:
    policy = case.make(clock)
    before = settings_of(policy)
    policy.reconfigure(**case.change)
    assert case.changed(policy)
    after = settings_of(policy)
    unchanged = {key for key in before if key not in case.change}
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert {key: after[key] for key in case.change} != {key: before[key] for key in case.change}
    # Later clones are built with the settings in force.
    assert settings_of(policy.clone()) == after


@ALL
def test_settings_are_keywords(case: Case, clock: FakeClock) -> None:
    policy = case.make(clock)
    with pytest.raises(TypeError):
        policy.reconfigure(*case.change.values())


@ALL
def test_an_unknown_setting_is_refused_by_name_and_changes_nothing(
    case: Case, clock: FakeClock
) -> None:
    policy = case.make(clock)
    before = settings_of(policy)
    with pytest.raises(TypeError, match=r"unexpected setting 'colour'"):
        policy.reconfigure(**case.change, colour="blue")
    assert settings_of(policy) == before


@ALL
def test_identity_arguments_are_refused_by_name(case: Case, clock: FakeClock) -> None:
    policy = case.make(clock)
    with pytest.raises(TypeError, match=r"cannot change 'name' in place"):
        policy.reconfigure(name="other")
    assert policy.name == case.make(clock).name


@ALL
def test_a_bad_value_is_refused_by_name_and_changes_nothing(case: Case, clock: FakeClock) -> None:
    policy = case.make(clock)
    before = settings_of(policy)
    (key,) = case.bad
    with pytest.raises(case.error, match=rf"^{key}\b"):
        policy.reconfigure(**{**case.change, **case.bad})  # nor is the good change applied
    assert settings_of(policy) == before
    assert not case.changed(policy)
    assert settings_of(policy.clone()) == before


def test_nothing_given_changes_nothing(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    breaker.reconfigure()
    assert breaker.state == "open"


@pytest.mark.parametrize(
    "policy",
    [Pipeline(Retry(), Timeout(1)), per_key(lambda key: CircuitBreaker(), key=str)],
    ids=["pipeline", "keyed"],
)
def test_pipelines_and_keyed_policies_cannot_be_reconfigured(policy: Policy) -> None:
    with pytest.raises(TypeError, match=r"cannot be reconfigured in place"):
        policy.reconfigure(attempts=2)


def test_a_user_policy_without_settings_cannot_be_reconfigured() -> None:
    class Passthrough(Policy):
        def __init__(self) -> None:
            super().__init__(None, None)
            self._compose()

        def _sync_runner(self, inner: Any) -> Any:
            return inner

        def _async_runner(self, inner: Any) -> Any:
            return inner

    with pytest.raises(TypeError, match=r"^Passthrough cannot be reconfigured"):
        Passthrough().reconfigure()


# -- state kept ------------------------------------------------------------------------------


def test_an_open_breaker_stays_open_and_a_closed_one_keeps_counting(clock: FakeClock) -> None:
    opened = CircuitBreaker(failure_rate=None, consecutive_failures=1, open_for=10, clock=clock)
    with pytest.raises(ConnectionError):
        opened.call(fail)
    opened.reconfigure(consecutive_failures=3, open_for=60)
    assert opened.state == "open"
    with pytest.raises(CircuitOpen):
        opened.call(lambda: None)
    counting = CircuitBreaker(failure_rate=None, consecutive_failures=3, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            counting.call(fail)
    counting.reconfigure(half_open_calls=2)  # the window's shape is unchanged
    with pytest.raises(ConnectionError):
        counting.call(fail)
    assert counting.state == "open"  # the two failures before counted


def test_a_breakers_result_check_can_be_switched_on(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_rate=None, consecutive_failures=1, clock=clock)
    guarded = breaker(lambda status: status)  # composed before
    assert guarded(503) == 503
    breaker.reconfigure(failure_if=lambda status: status >= 500)
    assert guarded(503) == 503
    assert breaker.state == "open"
    assert breaker.clone().state == "closed"  # a clone has its own state...
    breaker.reset()
    breaker.reconfigure(failure_if=None)  # ...and the setting can go again
    guarded(503)
    assert breaker.state == "closed"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_bucket_keeps_its_tokens_and_its_runners_take_a_new_max_wait(
    clock: FakeClock, is_async: bool
) -> None:
    bucket = TokenBucket(1, burst=2, clock=clock)

    async def acall() -> str:
        return "ok"

    guarded = bucket(acall) if is_async else bucket(lambda: "ok")  # composed before

    def call() -> Any:
        return anyio.run(guarded) if is_async else guarded()

    assert call() == "ok"
    bucket.reconfigure(rate=2, burst=4)
    assert bucket.available == pytest.approx(1)  # the token left is still there
    assert call() == "ok"
    with pytest.raises(RateLimited):
        call()
    bucket.reconfigure(max_wait=1)
    assert call() == "ok"  # waits for the next token now
    assert clock.sleeps == [pytest.approx(0.5)]


def test_a_burst_not_given_follows_the_rate_as_in_the_constructor(clock: FakeClock) -> None:
    bucket = TokenBucket(5, clock=clock)  # burst: the rate
    bucket.reconfigure(rate=20)
    assert bucket.settings.burst == 20.0
    fixed = TokenBucket(5, burst=5, clock=clock)
    fixed.reconfigure(rate=20)
    assert fixed.settings.burst == 5.0


def test_a_bulkhead_keeps_its_running_calls() -> None:
    bulkhead = Bulkhead(3)
    holders = Holders(bulkhead, 3)
    bulkhead.reconfigure(max_concurrent=2)
    assert bulkhead.in_flight == 3
    holders.finish(0)
    with pytest.raises(BulkheadFull):  # still two running: no slot yet
        bulkhead.call(lambda: None)
    holders.finish(1)
    holders.finish(2)
    assert bulkhead.call(lambda: "ok") == "ok"


def test_a_hedge_keeps_what_it_learned_unless_its_delay_changes(clock: FakeClock) -> None:
    hedge = Hedge(LatencyQuantile(0.5, samples=10, min_samples=3, initial=5.0), clock=clock)

    def dependency(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    for seconds in (0.1, 0.2, 0.3):
        hedge.call(dependency, seconds)
    assert hedge.delay == pytest.approx(0.2)
    hedge.reconfigure(max_hedges=2)
    assert hedge.delay == pytest.approx(0.2)  # learned, kept
    hedge.reconfigure(delay=LatencyQuantile(0.9, samples=10, min_samples=3, initial=4.0))
    assert hedge.delay == 4.0  # another learned delay: learns afresh


def test_an_adaptive_limit_is_kept_and_moved_into_new_bounds(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(AIMD(), max_limit=50, clock=clock)
    adaptive.reconfigure(max_queue=2)
    assert adaptive.limit == 20
    adaptive.reconfigure(max_limit=5)
    assert (adaptive.limit, adaptive.max_concurrent) == (5, 5)


def test_an_adaptive_limit_is_unchanged_by_a_refused_change(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(AIMD(), max_limit=50, clock=clock)
    with pytest.raises(ValueError, match=r"^max_queue\b"):
        adaptive.reconfigure(max_limit=5, max_queue=-1)
    assert (adaptive.limit, adaptive.max_limit, adaptive.max_queue) == (20, 50, 0)
    given = AdaptiveConcurrency(AIMD(), initial_limit=8, clock=clock)
    with pytest.raises(ValueError, match=r"^initial_limit\b"):
        given.reconfigure(min_limit=10)  # 8, given, would no longer fit a clone
    given.reconfigure(min_limit=10, initial_limit=None)
    assert (given.min_limit, given.limit) == (10, 10)


def test_a_throttle_keeps_its_counts_unless_its_window_changes(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(seed=1, clock=clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            throttle.call(fail)
    throttle.reconfigure(k=3)
    assert throttle.requests == 3
    throttle.reconfigure(window=60)
    assert throttle.requests == 0


def test_chaos_goes_on_with_its_sequence_and_keeps_a_switch_made_at_run_time() -> None:
    chaos = Chaos.result(0.5, "chaos", seed=7)
    twin = random.Random(7)
    draws = [chaos.call(lambda: "real") for _ in range(5)]
    assert draws == ["chaos" if twin.random() < 0.5 else "real" for _ in range(5)]
    chaos.reconfigure(rate=0.25)  # the same seed: the sequence goes on
    draws = [chaos.call(lambda: "real") for _ in range(5)]
    assert draws == ["chaos" if twin.random() < 0.25 else "real" for _ in range(5)]
    chaos.enabled = False
    chaos.reconfigure(rate=1)
    assert chaos.enabled is False  # not given: kept as switched
    assert chaos.call(lambda: "real") == "real"


def test_a_retry_keeps_its_budget_when_not_given(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    retry = Retry(3, budget=budget, clock=clock)
    retry.reconfigure(attempts=5)
    assert retry.budget is budget


# -- alternatives: one of a group -----------------------------------------------------------


def test_a_fallback_handler_replaces_its_value_and_back() -> None:
    fallback = Fallback("cached")
    guarded = fallback(fail)
    assert guarded() == "cached"
    fallback.reconfigure(handler=lambda exc: f"handled {exc}")  # the value goes
    assert guarded() == "handled down"
    assert fallback.clone().call(fail) == "handled down"
    fallback.reconfigure(value="again")  # the handler goes
    assert (guarded(), fallback.handler) == ("again", None)
    assert fallback.clone().call(fail) == "again"


def test_chaos_latency_replaces_its_fault(clock: FakeClock) -> None:
    chaos = Chaos.fault(1, ConnectionError, clock=clock)
    chaos.reconfigure(latency=2)
    assert chaos.injects == "latency"
    assert chaos.call(lambda: "late") == "late"
    assert clock.sleeps == [2.0]
    assert settings_of(chaos.clone())["latency"] == 2.0
    with pytest.raises(TypeError, match=r"exactly one of fault, latency and result"):
        chaos.reconfigure(latency=1, result="both")


# -- runners built before, shadow mode, followers ---------------------------------------------


def test_a_fallback_decorated_before_takes_a_new_on() -> None:
    fallback = Fallback("cached", on=KeyError)
    guarded = fallback(fail)
    with pytest.raises(ConnectionError):
        guarded()
    fallback.reconfigure(on=ConnectionError)
    assert guarded() == "cached"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_async_timeout_decorated_before_takes_new_seconds(anyio_backend: str) -> None:
    timeout = Timeout(0.01)

    @timeout
    async def slow() -> str:
        await anyio.sleep(0.05)
        return "done"

    timeout.reconfigure(seconds=5)
    assert await slow() == "done"


@pytest.mark.parametrize(
    "make",
    [
        lambda: CircuitBreaker(),
        lambda: TokenBucket(1),
        lambda: Bulkhead(1),
        lambda: AdaptiveConcurrency(),
        lambda: AdaptiveThrottle(),
    ],
    ids=["breaker", "bucket", "bulkhead", "adaptive", "throttle"],
)
def test_mode_is_a_setting_checked_before_anything_changes(make: Callable[[], Any]) -> None:
    policy = make()
    before = settings_of(policy)
    with pytest.raises(ValueError, match=r"^mode must be 'enforce' or 'metrics_only'"):
        policy.reconfigure(mode="off")
    with pytest.raises(TypeError):
        policy.reconfigure(mode="metrics_only", colour="blue")
    assert (policy.mode, settings_of(policy)) == ("enforce", before)
    policy.reconfigure(mode="metrics_only")
    assert policy.mode == "metrics_only"
    assert policy.clone().mode == "metrics_only"


def test_a_bad_value_leaves_the_mode_as_it_was() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(ValueError, match=r"^max_queue\b"):
        bulkhead.reconfigure(mode="metrics_only", max_queue=-1)
    assert bulkhead.mode == "enforce"


def test_followers_follow_reconfigures_and_mode_switches(clock: FakeClock) -> None:
    events: list[Event] = []
    breaker = CircuitBreaker("api", consecutive_failures=5, clock=clock)
    breaker.listen(events.append)
    copy = breaker.follower(key="api@one")
    assert (copy.key, copy.settings) == ("api@one", breaker.settings)
    breaker.reconfigure(consecutive_failures=2, mode="metrics_only")
    assert (copy.settings.consecutive_failures, copy.mode) == (2, "metrics_only")
    assert copy.clone().settings.consecutive_failures == 2
    with pytest.raises(ConnectionError):
        copy.call(fail)
    assert [event.name for event in events] == ["api"]  # the template's listener hears it
    other = breaker.clone()  # a clone does not follow
    breaker.reconfigure(consecutive_failures=3)
    assert (copy.settings.consecutive_failures, other.settings.consecutive_failures) == (3, 2)


def test_a_follower_nobody_holds_goes_away() -> None:
    bulkhead = Bulkhead(2)
    copy = weakref.ref(bulkhead.follower())
    gc.collect()
    assert copy() is None  # the policy holds its followers weakly
    bulkhead.reconfigure(max_concurrent=3)
    assert bulkhead.max_concurrent == 3
