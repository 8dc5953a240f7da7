"""AdaptiveThrottle: the SRE client-side throttle's formula, window, outcomes, shadow mode."""

from __future__ import annotations

import contextlib
import math
import random
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import (
    AdaptiveThrottle,
    CircuitBreaker,
    Event,
    Pipeline,
    RateLimited,
    Retry,
    Throttled,
    ThrottleRejected,
    TokenBucket,
)
from resilience._core.windows import BUCKETS
from resilience.testing import FakeClock


class Down(Exception):
    pass


def backend(accept: bool) -> str:
    if not accept:
        raise Down("overloaded")
    return "ok"


async def abackend(accept: bool) -> str:
    return backend(accept)


def formula(requests: int, accepts: int, k: float) -> float:
    return max(0.0, (requests - k * accepts) / (requests + 1))


def refuse(throttle: AdaptiveThrottle, times: int) -> None:
    """Calls the dependency refuses (or that the throttle rejects on the way)."""
    for _ in range(times):
        with pytest.raises((Down, Throttled)):
            throttle.call(backend, False)


async def arefuse(throttle: AdaptiveThrottle, times: int) -> None:
    for _ in range(times):
        with pytest.raises((Down, Throttled)):
            await throttle.acall(abackend, False)


# -- arguments -----------------------------------------------------------------------------


def test_defaults() -> None:
    throttle = AdaptiveThrottle()
    assert (throttle.k, throttle.window, throttle.mode) == (2.0, 120.0, "enforce")
    assert (throttle.requests, throttle.accepts, throttle.probability) == (0, 0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 0.5}, ValueError, "k must be at least 1"),
        ({"k": "2"}, TypeError, r"k must be a number, got '2' \(str\)"),
        ({"window": 0}, ValueError, "window must be greater than 0 seconds, got 0"),
        ({"failure_on": 3}, TypeError, "failure_on must be an exception type"),
        ({"failure_if": 3}, TypeError, "failure_if must be a callable or None"),
        ({"mode": "off"}, ValueError, "mode must be 'enforce' or 'metrics_only'"),
        ({"seed": "x"}, TypeError, "seed must be an int or None"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AdaptiveThrottle(**kwargs)


# -- the formula ---------------------------------------------------------------------------


def test_a_healthy_dependency_is_never_throttled(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(clock=clock)
    for _ in range(1000):
        assert throttle.call(backend, True) == "ok"
    assert (throttle.requests, throttle.accepts, throttle.probability) == (1000, 1000, 0.0)


def test_throttling_starts_once_less_than_one_in_k_requests_is_accepted(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(k=2.0, clock=clock)
    for accept in [True, False] * 50:  # half accepted: requests == k * accepts
        with pytest.raises(Down) if not accept else contextlib.nullcontext():
            throttle.call(backend, accept)
    assert throttle.probability == 0.0
    with pytest.raises(Down):
        throttle.call(backend, False)  # one more refusal tips it over
    assert throttle.probability == pytest.approx(formula(101, 50, 2.0))
    assert throttle.probability == pytest.approx(1 / 102)


def test_a_rejection_raises_throttled_counts_as_a_request_and_skips_the_call(
    clock: FakeClock,
) -> None:
    throttle = AdaptiveThrottle(name="search", seed=1, clock=clock)
    refuse(throttle, 20)
    assert throttle.probability == pytest.approx(formula(20, 0, 2.0))
    ran = []
    outcome = None
    for _ in range(50):
        try:
            throttle.call(lambda: ran.append(1))
        except Throttled as exc:
            outcome = exc
            break
    assert outcome is not None
    assert outcome.name == "search"
    assert outcome.retry_after is None
    assert 0 < outcome.probability < 1
    assert str(outcome).startswith("adaptive throttle search rejected the call locally")
    # The rejected call counted as a request, and did not run.
    assert throttle.requests == 20 + len(ran) + 1


# The decisions are exactly the formula's: a reference model of the window fed the same
# outcomes and the same random draws rejects exactly the same calls.

operation = st.one_of(
    st.tuples(st.just("call"), st.sampled_from(["accepted", "refused", "ignored"])),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 7.0, 12.0, 40.0])),
)


@settings(max_examples=200, deadline=None)
@given(
    operations=st.lists(operation, max_size=150),
    k=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_decisions_match_a_reference_model(
    operations: list[tuple[str, Any]], k: float, seed: int
) -> None:
    clock = FakeClock()
    window = 30.0
    throttle = AdaptiveThrottle(k, window, ignore=KeyError, seed=seed, clock=clock)
    draws = random.Random(seed)
    history: list[tuple[float, bool]] = []  # (time, accepted) of every counted request
    width = window / BUCKETS

    def counts() -> tuple[int, int]:
        now = int(clock.monotonic() // width)
        kept = [accepted for t, accepted in history if int(t // width) > now - BUCKETS]
        return len(kept), sum(kept)

    for op, arg in operations:
        if op == "wait":
            clock.advance(arg)
            continue
        requests, accepts = counts()
        p = formula(requests, accepts, k)
        assert throttle.probability == pytest.approx(p)
        rejected = draws.random() < p

        def call(arg: str = arg) -> str:
            if arg == "refused":
                raise Down
            if arg == "ignored":
                raise KeyError(arg)
            return "ok"

        try:
            throttle.call(call)
        except Throttled:
            assert rejected
            history.append((clock.monotonic(), False))
            continue
        except (Down, KeyError):
            pass
        assert not rejected
        if arg != "ignored":
            history.append((clock.monotonic(), arg == "accepted"))
        assert (throttle.requests, throttle.accepts) == counts()


def test_rejection_rate_follows_the_formula(clock: FakeClock) -> None:
    # A dependency that accepts 30% of what reaches it. Before each call, the formula
    # gives the chance that the call is rejected; over many calls the rejections add up
    # to the sum of those chances, within the spread a fair coin allows.
    throttle = AdaptiveThrottle(k=2.0, window=60.0, seed=42, clock=clock)
    dependency = random.Random(7)
    expected = variance = 0.0
    rejected = 0
    by_band: dict[int, list[int]] = {}
    for _ in range(20_000):
        p = formula(throttle.requests, throttle.accepts, 2.0)
        assert throttle.probability == pytest.approx(p)
        expected += p
        variance += p * (1 - p)
        try:
            throttle.call(backend, dependency.random() < 0.3)
            hit = 0
        except Throttled:
            hit = 1
        except Down:
            hit = 0
        rejected += hit
        by_band.setdefault(int(p * 10), []).append(hit)
        clock.advance(0.01)
    assert expected > 1000  # the throttle was busy
    assert abs(rejected - expected) < 4 * math.sqrt(variance)
    for band, hits in by_band.items():
        if len(hits) >= 400:  # each well-populated band of p rejects about p of its calls
            assert band / 10 - 0.05 <= sum(hits) / len(hits) <= (band + 1) / 10 + 0.05


def test_counts_age_out_of_the_window(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(window=10.0, clock=clock)
    refuse(throttle, 10)
    assert throttle.probability == pytest.approx(10 / 11)
    clock.advance(5.0)
    assert throttle.requests == 10  # still in the window
    clock.advance(5.0)
    assert (throttle.requests, throttle.accepts, throttle.probability) == (0, 0, 0.0)


# -- outcomes ------------------------------------------------------------------------------


def test_failure_if_and_ignore_classify_outcomes(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(
        failure_on=Down, ignore=KeyError, failure_if=lambda r: r == 503, clock=clock
    )
    throttle.call(lambda: 200)
    throttle.call(lambda: 503)
    with pytest.raises(ValueError):  # not in failure_on: the dependency accepted it
        throttle.call(_raise, ValueError)
    with pytest.raises(KeyError):  # ignored: not counted at all
        throttle.call(_raise, KeyError)
    assert (throttle.requests, throttle.accepts) == (3, 2)


def _raise(exc: type[BaseException]) -> None:
    raise exc


def test_refusals_of_inner_policies_count_as_nothing(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(clock=clock)
    limiter = TokenBucket(1, burst=1, clock=clock)
    pipeline = Pipeline(throttle, limiter)
    pipeline.call(lambda: None)
    with pytest.raises(RateLimited):
        pipeline.call(lambda: None)
    assert (throttle.requests, throttle.accepts) == (1, 1)


def test_retry_gives_up_on_throttled_and_a_breaker_ignores_it(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(k=1.0, seed=0, clock=clock)
    refuse(throttle, 200)
    breaker = CircuitBreaker(failure_rate=None, consecutive_failures=1, clock=clock)
    attempts = []

    def attempt() -> str:
        attempts.append(1)
        return "ok"

    pipeline = Pipeline(Retry(5, clock=clock), breaker, throttle)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(pipeline.call(attempt))
        except Throttled:
            outcomes.append("throttled")
    assert "throttled" in outcomes
    assert breaker.state == "closed"  # a local rejection is not the dependency failing
    assert clock.sleeps == []  # Retry did not retry the throttled calls


# -- async, events, shadow mode ----------------------------------------------------------------


async def test_async(clock: FakeClock, anyio_backend: str) -> None:
    throttle = AdaptiveThrottle(seed=3, clock=clock)
    await arefuse(throttle, 30)
    throttled = 0
    for _ in range(30):
        try:
            await throttle.acall(abackend, True)
        except Throttled:
            throttled += 1
    assert throttled > 0
    assert throttle.accepts == 30 - throttled
    assert throttle.requests == 60


def test_events_and_shadow_mode(clock: FakeClock) -> None:
    enforcing = AdaptiveThrottle(seed=5, name="e", clock=clock)
    shadow = AdaptiveThrottle(seed=5, name="s", mode="metrics_only", clock=clock)
    seen: list[Event] = []
    for throttle in (enforcing, shadow):
        refuse(throttle, 10)
        throttle.listen(seen.append)
    ran = []
    results = []
    for throttle in (enforcing, shadow):
        for _ in range(20):
            try:
                results.append((throttle.name, throttle.call(lambda: ran.append(1) or "ran")))
            except Throttled:
                results.append((throttle.name, "throttled"))
    enforced = [r for name, r in results if name == "e"]
    shadowed = [r for name, r in results if name == "s"]
    assert "throttled" in enforced
    assert shadowed == ["ran"] * 20  # never rejects...
    shadow_rejections = [e for e in seen if e.name == "s"]
    assert shadow_rejections  # ...but says which calls it would have rejected
    assert all(e.type == "rejected" and e.shadow for e in shadow_rejections)
    assert all(
        isinstance(e.details, ThrottleRejected) and 0 < e.details.probability < 1 for e in seen
    )
    assert not any(e.shadow for e in seen if e.name == "e")
    assert enforced.count("throttled") == sum(1 for e in seen if e.name == "e")
    assert shadow.requests == 30  # every shadowed call ran and counted once
    assert shadow.accepts == 20
    assert shadow.probability == pytest.approx(formula(30, 20, 2.0))


def test_counts_stay_exact_under_threads(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(k=1000.0, clock=clock)  # never rejects: every call counts
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(500):
            with contextlib.suppress(Down):
                throttle.call(backend, (i + n) % 3 != 0)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected_accepts = sum((i + n) % 3 != 0 for n in range(8) for i in range(500))
    assert (throttle.requests, throttle.accepts) == (4000, expected_accepts)
