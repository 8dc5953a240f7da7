"""RetryBudget: retries capped at ``ratio`` of the calls plus ``min_per_second`` per second
over a sliding window, alone and inside Retry."""

from __future__ import annotations

import math
import re
import threading
from datetime import timedelta
from typing import Any

import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience import Constant, Retry, RetryBudget
from resilience._policies.retry import RetryBudgetLike
from resilience.testing import FakeClock


def take_all(budget: RetryBudget, limit: int = 10_000) -> int:
    """How many retries the budget grants right now."""
    granted = 0
    while granted < limit and budget.try_retry():
        granted += 1
    return granted


def always_fails(calls: list[int]) -> Any:
    def fn() -> None:
        calls.append(1)
        raise OSError(f"failure {len(calls)}")

    return fn


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


# -- the budget alone ------------------------------------------------------------------


def test_defaults(clock: FakeClock) -> None:
    budget = RetryBudget(clock=clock)
    assert budget.ratio == 0.1
    assert budget.min_per_second == 10.0
    assert budget.window == 10.0
    assert take_all(budget) == 100  # min_per_second * window, with no calls yet


def test_min_per_second_lets_a_quiet_service_retry(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=1.0, window=10.0, clock=clock)
    assert take_all(budget) == 10
    assert not budget.try_retry()


def test_ratio_of_calls(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    assert not budget.try_retry()  # no calls, no floor: nothing
    for _ in range(4):
        budget.record_call()
    assert take_all(budget) == 2
    budget.record_call()  # 5 calls: 2.5 allowed, 2 taken
    assert not budget.try_retry()
    budget.record_call()  # 6 calls: 3 allowed
    assert budget.try_retry()
    assert not budget.try_retry()


def test_ratio_and_floor_add_up(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.25, min_per_second=0.5, window=4.0, clock=clock)
    for _ in range(8):
        budget.record_call()
    assert take_all(budget) == 4  # 0.25 * 8 + 0.5 * 4


def test_refused_retries_are_not_counted(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    budget.record_call()
    assert budget.try_retry()
    for _ in range(20):
        assert not budget.try_retry()
    budget.record_call()
    assert budget.try_retry()  # the refusals took nothing


def test_calls_leave_the_window(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window=10.0, clock=clock)
    budget.record_call()
    budget.record_call()
    clock.advance(10.0)
    assert not budget.try_retry()
    budget.record_call()
    assert take_all(budget) == 1


def test_retries_leave_the_window_and_the_budget_refills(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.5, window=10.0, clock=clock)
    assert take_all(budget) == 5
    clock.advance(5.0)
    assert not budget.try_retry()  # still within the window
    clock.advance(5.0)
    assert take_all(budget) == 5


def test_window_is_bucketed_into_tenths(clock: FakeClock) -> None:
    # A call is remembered for at least 90% of the window and at most the whole window.
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window=10.0, clock=clock)
    clock.advance(0.5)
    budget.record_call()  # t = 0.5
    clock.advance(8.9)  # t = 9.4: 8.9 s later
    assert budget.try_retry()
    assert not budget.try_retry()
    clock.advance(1.0)  # t = 10.4: 9.9 s later, past the call's bucket
    budget.record_call()  # a fresh call, so a retry is possible only if the old one is gone
    # only the retry taken at 9.4 and the new call remain: retries+1 = 2 > 1
    assert not budget.try_retry()
    clock.advance(10.0)
    budget.record_call()
    assert budget.try_retry()


def test_window_takes_timedelta(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=2.0, window=timedelta(seconds=3), clock=clock)
    assert budget.window == 3.0
    assert take_all(budget) == 6


def test_concurrent_retries_never_exceed_the_budget(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    for _ in range(100):
        budget.record_call()
    granted: list[int] = []
    barrier = threading.Barrier(8, timeout=10)

    def grab() -> None:
        barrier.wait()
        granted.append(sum(budget.try_retry() for _ in range(50)))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(granted) == 100
    assert len(granted) == 8


ops = st.lists(
    st.one_of(
        st.just(("call", 0)),
        st.just(("retry", 0)),
        st.tuples(st.just("advance"), st.integers(min_value=1, max_value=60)),  # quarters
    ),
    max_size=80,
)


@given(
    ratio=st.sampled_from([0.25, 0.5, 1.0]),
    min_per_second=st.sampled_from([0.0, 0.2, 0.4]),
    window=st.sampled_from([5.0, 10.0, 20.0]),
    script=ops,
)
def test_matches_a_reference_model(
    ratio: float, min_per_second: float, window: float, script: list[tuple[str, int]]
) -> None:
    """Against a model that remembers every event: an event stays while its bucket (a
    tenth of the window) is one of the last ten, and a retry is allowed while
    retries + 1 <= ratio * calls + min_per_second * window."""
    clock = FakeClock()
    budget = RetryBudget(ratio, min_per_second, window=window, clock=clock)
    width = window / 10
    events: list[tuple[float, bool]] = []  # (time, is_retry)

    def live() -> list[bool]:
        now_bucket = math.floor(clock.monotonic() / width)
        return [r for t, r in events if math.floor(t / width) > now_bucket - 10]

    for op, quarters in script:
        if op == "advance":
            clock.advance(quarters / 4)
        elif op == "call":
            budget.record_call()
            events.append((clock.monotonic(), False))
        else:
            kept = live()
            retries = sum(kept)
            calls = len(kept) - retries
            expected = retries + 1 <= ratio * calls + min_per_second * window
            assert budget.try_retry() == expected, (clock.monotonic(), calls, retries)
            if expected:
                events.append((clock.monotonic(), True))


def test_retry_budget_is_a_retry_budget_like(clock: FakeClock) -> None:
    assert isinstance(RetryBudget(clock=clock), RetryBudgetLike)


# -- inside Retry ----------------------------------------------------------------------


def test_a_call_is_counted_once_not_once_per_attempt(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    retry = Retry(5, backoff=Constant(0.1), budget=budget, name="spent", clock=clock)
    for _ in range(4):
        assert retry.call(lambda: "ok") == "ok"
    calls: list[int] = []
    with pytest.raises(OSError) as excinfo:
        retry.call(always_fails(calls))
    # 5 calls allow 2.5 retries: the first two, not the third. Were every attempt
    # counted as a call, the budget would grow with each attempt and all 5 would run.
    assert len(calls) == 3
    assert clock.sleeps == [0.1, 0.1]
    assert len(notes(excinfo.value)) == 1
    assert "spent" in notes(excinfo.value)[0]
    assert "budget" in notes(excinfo.value)[0]


def test_each_retry_takes_exactly_one_token(clock: FakeClock) -> None:
    # 5 retries per window from the floor (ratio * calls stays below one more)
    budget = RetryBudget(ratio=0.01, min_per_second=0.5, window=10.0, clock=clock)
    retry = Retry(3, backoff=Constant(0), budget=budget, clock=clock)
    first: list[int] = []
    second: list[int] = []
    third: list[int] = []
    with pytest.raises(OSError) as excinfo:
        retry.call(always_fails(first))
    assert len(first) == 3  # 2 tokens; giving up on attempts takes none
    assert "all 3 attempts failed" in notes(excinfo.value)[0]
    with pytest.raises(OSError):
        retry.call(always_fails(second))
    assert len(second) == 3  # 2 more tokens: 4 taken
    with pytest.raises(OSError) as excinfo:
        retry.call(always_fails(third))
    assert len(third) == 2  # the 5th token, then refused
    assert "budget" in notes(excinfo.value)[0]


def test_budget_refusal_gives_up_at_once_without_sleeping(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, clock=clock)
    retry = Retry(5, backoff=Constant(1.0), budget=budget, clock=clock)
    calls: list[int] = []
    with pytest.raises(OSError, match="failure 1") as excinfo:
        retry.call(always_fails(calls))
    assert len(calls) == 1
    assert clock.sleeps == []
    assert "budget" in notes(excinfo.value)[0]


def test_budget_shared_by_two_retries(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.2, window=10.0, clock=clock)  # 2 + 0.1/call
    reads = Retry(5, backoff=Constant(0), budget=budget, name="reads", clock=clock)
    writes = Retry(5, backoff=Constant(0), budget=budget, name="writes", clock=clock)
    read_calls: list[int] = []
    with pytest.raises(OSError):
        reads.call(always_fails(read_calls))
    assert len(read_calls) == 3  # both shared tokens
    write_calls: list[int] = []
    with pytest.raises(OSError) as excinfo:
        writes.call(always_fails(write_calls))
    assert len(write_calls) == 1  # nothing left for the other policy
    assert "writes" in notes(excinfo.value)[0]
    assert "budget" in notes(excinfo.value)[0]


def test_deadline_give_up_takes_no_token(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.01, min_per_second=0.1, window=10.0, clock=clock)  # 1 retry
    retry = Retry(5, backoff=Constant(1.0), deadline=0.5, budget=budget, clock=clock)
    calls: list[int] = []
    with pytest.raises(OSError) as excinfo:
        retry.call(always_fails(calls))
    assert "deadline" in notes(excinfo.value)[0]
    assert budget.try_retry()
    assert not budget.try_retry()


def test_budget_refusal_on_results_returns_the_last_result(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.01, min_per_second=0.1, window=10.0, clock=clock)  # 1 retry
    retry = Retry(
        5, backoff=Constant(0.5), budget=budget, retry_if_result=lambda r: r < 10, clock=clock
    )
    results = iter([1, 2, 3, 4, 5])
    assert retry.call(lambda: next(results)) == 2
    assert clock.sleeps == [0.5]


def test_attempt_loop_uses_the_budget(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.01, min_per_second=0.2, window=10.0, clock=clock)  # 2 retries
    retry = Retry(10, backoff=Constant(0.5), budget=budget, name="loop", clock=clock)
    numbers: list[int] = []

    def loop() -> None:
        for attempt in retry:
            with attempt:
                numbers.append(attempt.number)
                raise OSError

    with pytest.raises(OSError) as excinfo:
        loop()
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [0.5, 0.5]
    assert "budget" in notes(excinfo.value)[0]


@pytest.mark.anyio
async def test_acall_uses_the_budget(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    retry = Retry(5, backoff=Constant(0.1), budget=budget, clock=clock)
    attempts = 0

    async def ok() -> str:
        await anyio.lowlevel.checkpoint()
        return "ok"

    async def fail() -> None:
        nonlocal attempts
        attempts += 1
        await anyio.lowlevel.checkpoint()
        raise OSError

    for _ in range(3):
        assert await retry.acall(ok) == "ok"
    with pytest.raises(OSError) as excinfo:
        await retry.acall(fail)
    assert attempts == 3  # 4 calls: 2 retries
    assert "budget" in notes(excinfo.value)[0]


def test_retry_talks_to_any_budget_like_object(clock: FakeClock) -> None:
    log: list[str] = []

    class Recording:
        def __init__(self, grants: int) -> None:
            self.grants = grants

        def record_call(self) -> None:
            log.append("call")

        def try_retry(self) -> bool:
            log.append("retry?")
            self.grants -= 1
            return self.grants >= 0

    retry = Retry(5, backoff=Constant(0), budget=Recording(2), clock=clock)
    calls: list[int] = []
    with pytest.raises(OSError):
        retry.call(always_fails(calls))
    assert log == ["call", "retry?", "retry?", "retry?"]
    assert len(calls) == 3
    log.clear()
    assert retry.call(lambda: "ok") == "ok"
    assert log == ["call"]  # a success asks for nothing


# -- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"ratio": 1.5}, ValueError, ["ratio", "1.5"]),
        ({"ratio": 0}, ValueError, ["ratio", "0"]),
        ({"ratio": -0.1}, ValueError, ["ratio", "-0.1"]),
        ({"ratio": float("nan")}, ValueError, ["ratio", "nan"]),
        ({"ratio": "0.1"}, TypeError, ["ratio", "'0.1'"]),
        ({"ratio": True}, TypeError, ["ratio", "True"]),
        ({"min_per_second": -1}, ValueError, ["min_per_second", "-1"]),
        ({"min_per_second": float("inf")}, ValueError, ["min_per_second", "inf"]),
        ({"min_per_second": "10"}, TypeError, ["min_per_second", "'10'"]),
        ({"window": 0}, ValueError, ["window", "0"]),
        ({"window": -10}, ValueError, ["window", "-10"]),
        ({"window": float("nan")}, ValueError, ["window", "nan"]),
        ({"window": "10s"}, TypeError, ["window", "'10s'"]),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "-",
)
def test_bad_arguments_name_the_parameter_and_the_value(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        RetryBudget(**kwargs)
    message = str(excinfo.value)
    for word in words:
        assert re.search(re.escape(word), message), (word, message)


def test_repr(clock: FakeClock) -> None:
    assert (
        repr(RetryBudget(0.2, 5, window=30, clock=clock))
        == "RetryBudget(ratio=0.2, min_per_second=5.0, window=30.0)"
    )


# -- budgets in a store ------------------------------------------------------------------


def test_budgets_with_the_same_key_in_a_memory_store_share_their_counts(
    clock: FakeClock,
) -> None:
    from resilience.stores import MemoryStore

    store = MemoryStore()
    here = RetryBudget(ratio=0.5, min_per_second=0.0, store=store, key="api", clock=clock)
    there = RetryBudget(ratio=0.5, min_per_second=0.0, store=store, key="api", clock=clock)
    alone = RetryBudget(ratio=0.5, min_per_second=0.0, store=store, clock=clock)
    for _ in range(4):
        here.record_call()
    assert take_all(there) == 2  # the calls made through the other handle count
    assert not here.try_retry()
    assert take_all(alone) == 0  # no key: a budget of its own
    with pytest.raises(ValueError, match="retry budget 'api' already exists"):
        RetryBudget(ratio=0.25, store=store, key="api", clock=clock)


def test_a_store_must_be_a_budget_store() -> None:
    with pytest.raises(TypeError, match="store must be a retry budget store"):
        RetryBudget(store=object())  # type: ignore[arg-type]


def test_changing_the_ratio_keeps_the_counts(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=clock)
    for _ in range(4):
        budget.record_call()
    assert take_all(budget) == 2
    budget.ratio = 1.0
    assert take_all(budget) == 2  # 4 allowed now, 2 spent
    with pytest.raises(ValueError, match="ratio"):
        budget.ratio = 2.0
    with pytest.raises(ValueError, match="min_per_second"):
        budget.min_per_second = -1.0
