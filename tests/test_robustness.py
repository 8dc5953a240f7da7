"""Misconfiguration and races never cost the caller its own outcome, and the breaker's
bookkeeping stays exact."""

from __future__ import annotations

import logging
import threading

import pytest

from resilience import CircuitBreaker, CountWindow, Pipeline, Retry
from resilience.testing import FakeClock


class Boom(Exception):
    pass


def broken_predicate(value: object) -> bool:
    raise RuntimeError("predicate bug")


def fail() -> None:
    raise Boom


def test_raising_failure_if_counts_a_failure_and_returns_the_result(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(failure_if=broken_predicate, minimum_calls=1, clock=clock)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert breaker.call(lambda: 42) == 42
    assert breaker.state == "open"  # counted as a failure: 1 of 1
    assert "failure_if raised" in caplog.text


@pytest.mark.parametrize("param", ["failure_on", "ignore"])
def test_raising_exception_classifier_keeps_the_callers_exception(
    param: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(minimum_calls=1, clock=clock, **{param: broken_predicate})
    with caplog.at_level(logging.ERROR, logger="resilience"), pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.metrics().consecutive_opens == 1  # failure recorded, breaker opened
    assert f"{param} raised" in caplog.text


def test_raising_classifier_in_half_open_gives_the_trial_slot_back(clock: FakeClock) -> None:
    """Before the fix, a raising predicate left the trial permit taken forever."""
    breaker = CircuitBreaker(
        minimum_calls=1, open_for=1.0, failure_if=broken_predicate, clock=clock
    )
    breaker.call(lambda: 1)  # counted as a failure: opens
    assert breaker.state == "open"
    clock.advance(1.0)
    breaker.call(lambda: 1)  # the trial also counts as a failure: reopens
    assert breaker.state == "open"
    clock.advance(breaker.metrics().consecutive_opens * 1.0)
    assert breaker.state == "half_open"  # a trial is admitted again, nothing leaked
    breaker.call(lambda: 1)


def test_raising_retry_on_does_not_retry_and_keeps_the_exception(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def once() -> None:
        calls.append(1)
        raise Boom

    with caplog.at_level(logging.ERROR, logger="resilience"), pytest.raises(Boom):
        Retry(3, retry_on=broken_predicate, clock=clock).call(once)
    assert calls == [1]
    assert "retry_on raised" in caplog.text


def test_raising_retry_if_result_returns_the_result(clock: FakeClock) -> None:
    assert Retry(3, retry_if_result=broken_predicate, clock=clock).call(lambda: 7) == 7


def test_minimum_calls_is_capped_at_the_count_window_size(clock: FakeClock) -> None:
    breaker = CircuitBreaker(window=CountWindow(4), minimum_calls=10, clock=clock)
    for _ in range(2):
        breaker.call(lambda: 1)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state == "open"  # 2 of 4 >= 0.5 with the cap; never without it


def test_pipeline_listen_reaches_every_policy_including_nested(clock: FakeClock) -> None:
    retry = Retry(2, clock=clock, name="r")
    breaker = CircuitBreaker("b", clock=clock)
    pipeline = Pipeline(retry, Pipeline(breaker))
    kinds: list[str] = []
    stop = pipeline.listen(lambda event: kinds.append(event.kind))
    with pytest.raises(Boom):
        pipeline.call(fail)
    assert "retry" in kinds
    assert "circuit_breaker" in kinds
    stop()
    stop()  # idempotent
    kinds.clear()
    with pytest.raises(Boom):
        pipeline.call(fail)
    assert kinds == []


def test_consecutive_failures_are_exact_with_lock_free_successes(clock: FakeClock) -> None:
    """Successes are counted without the lock; a failure must still see whether any
    success came since the previous failure, under real threads."""
    breaker = CircuitBreaker(
        failure_rate=None, consecutive_failures=10_000, window=CountWindow(50), clock=clock
    )
    start = threading.Barrier(8)

    def succeed_a_lot() -> None:
        start.wait()
        for _ in range(2000):
            breaker.call(lambda: None)

    threads = [threading.Thread(target=succeed_a_lot) for _ in range(7)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    for expected in (1, 2, 3):
        with pytest.raises(Boom):
            breaker.call(fail)
        assert breaker.metrics().consecutive_failures == expected
    breaker.call(lambda: None)
    assert breaker.metrics().consecutive_failures == 0


def test_refusals_inside_the_breaker_are_no_evidence(clock: FakeClock) -> None:
    """A limiter or bulkhead inside the breaker refusing calls must not open it: the
    dependency did not fail. A timeout inside it does count."""
    from resilience import RateLimited, Timeout, TimeoutExceeded, TokenBucket

    breaker = CircuitBreaker(minimum_calls=2, clock=clock)
    limiter = TokenBucket(1, burst=1, clock=clock)
    guarded = Pipeline(breaker, limiter)
    guarded.call(lambda: 1)
    for _ in range(5):
        with pytest.raises(RateLimited):
            guarded.call(lambda: 1)
    assert breaker.state == "closed"
    assert breaker.metrics().calls == 1

    def slow() -> None:
        threading.Event().wait(0.2)

    timed = Pipeline(breaker, Timeout(0.01))
    with pytest.raises(TimeoutExceeded):
        timed.call(slow)
    assert breaker.state == "open"  # 1 success + 1 timeout: 50% of the 2 minimum calls
