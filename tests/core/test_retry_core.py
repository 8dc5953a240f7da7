"""The retry decision on its own: no policy, no sleeping, a FakeClock for the deadline.

The properties come from docs/retry.md: never sooner than a hint, never a wait past
the deadline or longer than the backoff's max, at most ``attempts`` attempts, a budget
asked only when a retry would otherwise happen.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from resilience import CircuitOpen, Constant, Exponential, RateLimited
from resilience._core.retry import (
    NOT_RETRYABLE,
    GiveUp,
    RetryRules,
    RetryState,
    Wait,
    after_exception,
    after_result,
)
from resilience._core.validation import check_exception_filter
from resilience.testing import FakeClock


class Hinted(Exception):
    def __init__(self, retry_after: object = None) -> None:
        super().__init__("hinted")
        self.retry_after = retry_after


class Budget:
    def __init__(self, retries: int) -> None:
        self.retries = retries
        self.asked = 0

    def record_call(self) -> None:
        pass

    def try_retry(self) -> bool:
        self.asked += 1
        self.retries -= 1
        return self.retries >= 0


def rules(
    attempts: int = 3,
    backoff: object = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    deadline: float | None = None,
    budget: Budget | None = None,
) -> RetryRules:
    return RetryRules(
        attempts,
        backoff or Constant(0.5, max=4.0),  # type: ignore[arg-type]
        check_exception_filter("retry_on", retry_on),
        None,
        deadline,
        budget,
    )


def test_waits_the_backoff_then_gives_up_on_the_last_attempt() -> None:
    clock, state, r = FakeClock(), RetryState(0.0), rules()
    assert after_exception(r, state, ValueError(), clock) == Wait(0.5)
    assert state.attempt == 2
    assert after_exception(r, state, ValueError(), clock) == Wait(0.5)
    assert after_exception(r, state, ValueError(), clock) == GiveUp("all 3 attempts failed")
    assert state.attempt == 3


def test_a_single_attempt_gives_up_at_once() -> None:
    decision = after_exception(rules(attempts=1), RetryState(0.0), ValueError(), FakeClock())
    assert decision == GiveUp("the only attempt failed")


def test_outcomes_not_to_retry_go_through() -> None:
    clock = FakeClock()
    assert after_exception(rules(retry_on=KeyError), RetryState(0.0), ValueError(), clock) is (
        NOT_RETRYABLE
    )
    # a refusal that does not say when it would accept
    assert after_exception(rules(), RetryState(0.0), CircuitOpen("b", None), clock) is (
        NOT_RETRYABLE
    )


def test_a_hint_within_max_is_waited_in_full_and_a_longer_one_stops() -> None:
    clock = FakeClock()
    assert after_exception(rules(), RetryState(0.0), RateLimited("l", 3.0), clock) == Wait(3.0)
    assert after_exception(rules(), RetryState(0.0), RateLimited("l", 4.0), clock) == Wait(4.0)
    decision = after_exception(rules(), RetryState(0.0), RateLimited("l", 4.5), clock)
    assert isinstance(decision, GiveUp)
    assert "longer than the backoff's max of 4s" in decision.reason


def test_the_deadline_counts_from_the_first_attempt() -> None:
    clock = FakeClock(100.0)
    state = RetryState(clock.monotonic())
    r = rules(attempts=10, backoff=Constant(1.0), deadline=2.5)
    assert after_exception(r, state, ValueError(), clock) == Wait(1.0)
    clock.advance(1.0)
    assert after_exception(r, state, ValueError(), clock) == Wait(1.0)
    clock.advance(1.0)
    decision = after_exception(r, state, ValueError(), clock)  # 2 s + 1 s > 2.5 s
    assert isinstance(decision, GiveUp)
    assert "would pass the 2.5s deadline" in decision.reason


def test_the_budget_is_asked_only_for_a_retry_that_would_happen() -> None:
    budget = Budget(retries=1)
    clock = FakeClock()
    r = rules(attempts=2, budget=budget)
    state = RetryState(0.0)
    assert after_exception(r, state, ValueError(), clock) == Wait(0.5)
    assert after_exception(r, state, ValueError(), clock) == GiveUp("all 2 attempts failed")
    assert budget.asked == 1  # not asked for the attempt that could not be retried anyway
    decision = after_exception(r, RetryState(0.0), ValueError(), clock)
    assert decision == GiveUp("1 attempt; the retry budget is spent")


def test_a_result_is_retried_without_a_hint() -> None:
    state = RetryState(0.0)
    assert after_result(rules(), state, "pending", FakeClock()) == Wait(0.5)


@given(
    attempts=st.integers(1, 6),
    base=st.floats(0.0, 2.0),
    max_=st.floats(0.0, 5.0),
    deadline=st.none() | st.floats(0.01, 20.0),
    hints=st.lists(st.none() | st.floats(0.0, 10.0), min_size=1, max_size=8),
    spent=st.lists(st.floats(0.0, 2.0), min_size=8, max_size=8),
)
def test_against_the_rules_in_the_docs(
    attempts: int,
    base: float,
    max_: float,
    deadline: float | None,
    hints: list[float | None],
    spent: list[float],
) -> None:
    backoff = Exponential(base=base, max=max(max_, base), jitter="none")
    r = rules(attempts=attempts, backoff=backoff, deadline=deadline)
    clock = FakeClock()
    state = RetryState(clock.monotonic())
    made = 1
    for n, hint in enumerate(hints):
        clock.advance(spent[n])  # the attempt's own duration
        expected_backoff = backoff.delay(made, state.previous)
        decision = after_exception(r, state, Hinted(hint), clock)
        if isinstance(decision, Wait):
            # a reference model of the rules, decision by decision
            assert made < attempts
            assert decision.delay >= expected_backoff
            if hint is not None:
                assert decision.delay >= hint  # never sooner than the hint
            assert decision.delay <= backoff.max
            if deadline is not None:
                assert clock.monotonic() + decision.delay <= deadline
            clock.advance(decision.delay)
            made += 1
            assert state.attempt == made
            continue
        assert isinstance(decision, GiveUp)
        wait = max(expected_backoff, hint or 0.0)
        assert (
            made == attempts
            or (hint is not None and hint > backoff.max and hint > expected_backoff)
            or (deadline is not None and clock.monotonic() + wait > deadline)
        ), (decision, made, hint, wait)
        break
