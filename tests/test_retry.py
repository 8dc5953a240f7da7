"""Retry: attempt counts, sleeps, hints, deadline, result retries, the note on giving up,
the attempt-loop forms, per-call state under concurrency, events and bad arguments.

Every test runs on a FakeClock: ``clock.sleeps`` is what Retry asked to wait, in order.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import re
import threading
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import resilience
from resilience import (
    Attempt,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    Constant,
    Event,
    Exponential,
    GaveUp,
    Linear,
    Pipeline,
    RateLimited,
    ResilienceError,
    Retry,
    RetryScheduled,
    RetrySucceeded,
    TimeoutExceeded,
    TokenBucket,
)
from resilience.testing import FakeClock


class Script:
    """A callable that plays ``outcomes`` in order (an exception is raised, anything else
    returned), repeating the last one; remembers its calls and what it raised."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.raised: list[BaseException] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            self.raised.append(outcome)
            raise outcome
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            exc = outcome(f"call {len(self.calls)}")
            self.raised.append(exc)
            raise exc
        return outcome

    async def coro(self, *args: Any, **kwargs: Any) -> Any:
        await anyio.lowlevel.checkpoint()
        return self(*args, **kwargs)


class SpyClock(FakeClock):
    """A FakeClock that tells blocking sleeps from async ones."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.kinds.append("sleep")
        super().sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.kinds.append("asleep")
        FakeClock.sleep(self, seconds)
        await anyio.lowlevel.checkpoint()


@contextlib.asynccontextmanager
async def attempts_of(retry: Retry) -> AsyncIterator[Any]:
    """``retry``'s async attempts, closed afterwards even when an exception leaves the loop.

    Trio warns about an async generator dropped unfinished; these tests close it so that
    they check only the loop's semantics. That warning has its own test:
    test_async_attempt_loop_left_early_leaves_nothing_to_finalize.
    """
    attempts = retry.__aiter__()
    try:
        yield attempts
    finally:
        aclose = getattr(attempts, "aclose", None)
        if aclose is not None:
            await aclose()


def run_loop(retry: Retry, body: Callable[[Attempt], object]) -> None:
    """``for attempt in retry: with attempt: body(attempt)``."""
    for attempt in retry:
        with attempt:
            body(attempt)


async def run_async_loop(
    retry: Retry,
    body: Callable[[Attempt], object],
    *,
    async_with: bool = False,
    close: bool = True,
) -> None:
    """``async for attempt in retry: with attempt: body(attempt)`` (or ``async with``);
    with ``close``, through attempts_of."""
    async with contextlib.AsyncExitStack() as stack:
        attempts = await stack.enter_async_context(attempts_of(retry)) if close else retry
        async for attempt in attempts:
            if async_with:
                async with attempt:
                    body(attempt)
            else:
                with attempt:
                    body(attempt)


def innermost_function(exc: BaseException) -> str:
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


# -- attempt counts and sleeps ---------------------------------------------------------


def test_success_on_the_first_attempt_calls_once_and_never_sleeps(clock: FakeClock) -> None:
    fn = Script("ok")
    assert Retry(3, backoff=Constant(1.0), clock=clock).call(fn) == "ok"
    assert len(fn.calls) == 1
    assert clock.sleeps == []


def test_retries_until_success(clock: FakeClock) -> None:
    fn = Script(OSError, OSError, "ok")
    assert Retry(5, backoff=Constant(0.5), clock=clock).call(fn) == "ok"
    assert len(fn.calls) == 3
    assert clock.sleeps == [0.5, 0.5]
    assert clock.monotonic() == 1.0


@pytest.mark.parametrize("attempts", [1, 2, 3, 7])
def test_attempts_counts_the_first_call(clock: FakeClock, attempts: int) -> None:
    fn = Script(OSError)
    retry = Retry(attempts, backoff=Linear(base=1.0, step=1.0), clock=clock)
    with pytest.raises(OSError) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == attempts
    assert clock.sleeps == [float(n) for n in range(1, attempts)]
    assert excinfo.value is fn.raised[-1]


def test_default_is_three_attempts(clock: FakeClock) -> None:
    fn = Script(OSError)
    with pytest.raises(OSError):
        Retry(clock=clock).call(fn)
    assert len(fn.calls) == 3
    assert len(clock.sleeps) == 2


def test_call_passes_arguments_through(clock: FakeClock) -> None:
    fn = Script(OSError, "ok")
    assert Retry(backoff=Constant(0), clock=clock).call(fn, 1, "a", key="v") == "ok"
    assert fn.calls == [((1, "a"), {"key": "v"})] * 2


@pytest.mark.anyio
async def test_acall_retries_and_sleeps_asynchronously() -> None:
    clock = SpyClock()
    fn = Script(OSError, OSError, "ok")
    retry = Retry(3, backoff=Constant(0.25), clock=clock)
    assert await retry.acall(fn.coro, 1, key=2) == "ok"
    assert fn.calls == [((1,), {"key": 2})] * 3
    assert clock.sleeps == [0.25, 0.25]
    assert clock.kinds == ["asleep", "asleep"]  # never a blocking sleep in async code


@pytest.mark.anyio
async def test_acall_gives_up_after_attempts(clock: FakeClock) -> None:
    fn = Script(OSError)
    retry = Retry(4, backoff=Constant(0.1), name="fetch", clock=clock)
    with pytest.raises(OSError) as excinfo:
        await retry.acall(fn.coro)
    assert len(fn.calls) == 4
    assert clock.sleeps == [0.1, 0.1, 0.1]
    assert excinfo.value is fn.raised[-1]
    assert len(notes(excinfo.value)) == 1
    assert "fetch" in notes(excinfo.value)[0]
    assert "all 4 attempts failed" in notes(excinfo.value)[0]


# -- decorator -------------------------------------------------------------------------


def test_decorates_a_function(clock: FakeClock) -> None:
    script = Script(OSError, "ok")

    @Retry(backoff=Constant(0.2), clock=clock)
    def fetch(url: str, *, timeout: float = 1.0) -> str:
        """Fetch a page."""
        return str(script(url, timeout=timeout))

    assert fetch("http://x", timeout=2.0) == "ok"
    assert script.calls == [(("http://x",), {"timeout": 2.0})] * 2
    assert clock.sleeps == [0.2]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a page."
    assert list(inspect.signature(fetch).parameters) == ["url", "timeout"]


@pytest.mark.anyio
async def test_decorates_a_coroutine_function() -> None:
    clock = SpyClock()
    script = Script(OSError, OSError, "ok")

    @Retry(backoff=Constant(0.2), clock=clock)
    async def fetch(url: str) -> str:
        return str(await script.coro(url))

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("u") == "ok"
    assert len(script.calls) == 3
    assert clock.sleeps == [0.2, 0.2]
    assert clock.kinds == ["asleep", "asleep"]


def test_decorates_a_method(clock: FakeClock) -> None:
    retry = Retry(backoff=Constant(0.1), clock=clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry
        def get(self, path: str) -> str:
            self.calls += 1
            if self.calls < 3:
                raise OSError(path)
            return f"{path}:{self.calls}"

    client = Client()
    assert client.get("/a") == "/a:3"
    assert client.calls == 3


# -- the note on giving up -------------------------------------------------------------


def test_give_up_reraises_the_same_exception_with_a_note(clock: FakeClock) -> None:
    def flaky_backend() -> None:
        raise ConnectionError("refused")

    retry = Retry(3, backoff=Constant(0.1), name="payments", clock=clock)
    with pytest.raises(ConnectionError, match="refused") as excinfo:
        retry.call(flaky_backend)
    exc = excinfo.value
    assert len(notes(exc)) == 1
    note = notes(exc)[0]
    assert "payments" in note
    assert "all 3 attempts failed" in note
    # the traceback still leads to where the call failed
    assert innermost_function(exc) == "flaky_backend"


def test_give_up_note_of_an_unnamed_retry(clock: FakeClock) -> None:
    fn = Script(OSError)
    with pytest.raises(OSError) as excinfo:
        Retry(2, backoff=Constant(0), clock=clock).call(fn)
    assert len(notes(excinfo.value)) == 1
    assert "Retry" in notes(excinfo.value)[0]
    assert "all 2 attempts failed" in notes(excinfo.value)[0]


def test_give_up_keeps_the_notes_already_on_the_exception(clock: FakeClock) -> None:
    exc = OSError("down")
    exc.__notes__ = ["from the caller"]  # what add_note does (3.11+), as 3.10 code writes it
    with pytest.raises(OSError) as excinfo:
        Retry(2, backoff=Constant(0), name="r", clock=clock).call(Script(exc))
    assert excinfo.value is exc
    assert notes(exc)[0] == "from the caller"
    assert len(notes(exc)) == 2
    assert "all 2 attempts failed" in notes(exc)[1]


def test_only_the_last_exception_gets_the_note(clock: FakeClock) -> None:
    fn = Script(OSError, OSError, OSError)
    with pytest.raises(OSError):
        Retry(3, backoff=Constant(0), clock=clock).call(fn)
    assert [len(notes(e)) for e in fn.raised] == [0, 0, 1]


# -- which exceptions are retried ------------------------------------------------------


def test_retry_on_types_filters_exceptions(clock: FakeClock) -> None:
    fn = Script(ConnectionError, KeyError("missing"), "ok")
    retry = Retry(5, backoff=Constant(0.1), retry_on=(ConnectionError, TimeoutError), clock=clock)
    with pytest.raises(KeyError) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 2
    assert clock.sleeps == [0.1]
    assert notes(excinfo.value) == []  # not retried because of retry_on: no note


def test_retry_on_a_single_type_and_subclasses(clock: FakeClock) -> None:
    fn = Script(ConnectionResetError, ConnectionRefusedError, "ok")
    retry = Retry(3, backoff=Constant(0), retry_on=ConnectionError, clock=clock)
    assert retry.call(fn) == "ok"
    assert len(fn.calls) == 3


def test_non_matching_exception_propagates_at_once_without_note(clock: FakeClock) -> None:
    fn = Script(ValueError("bad input"))
    retry = Retry(5, backoff=Constant(1.0), retry_on=OSError, name="r", clock=clock)
    with pytest.raises(ValueError, match="bad input") as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 1
    assert clock.sleeps == []
    assert not hasattr(excinfo.value, "__notes__")


def test_retry_on_predicate(clock: FakeClock) -> None:
    seen: list[BaseException] = []

    def transient(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, OSError) and exc.errno == 11

    again = OSError(11, "try again")
    fatal = OSError(2, "no such file")
    fn = Script(again, again, fatal)
    retry = Retry(5, backoff=Constant(0.1), retry_on=transient, clock=clock)
    with pytest.raises(OSError) as excinfo:
        retry.call(fn)
    assert excinfo.value is fatal
    assert seen == [again, again, fatal]
    assert clock.sleeps == [0.1, 0.1]
    assert notes(fatal) == []


def test_retry_on_empty_tuple_never_retries(clock: FakeClock) -> None:
    fn = Script(OSError)
    with pytest.raises(OSError):
        Retry(5, retry_on=(), clock=clock).call(fn)
    assert len(fn.calls) == 1


@pytest.mark.parametrize("types", [[KeyError, IndexError], {KeyError, IndexError}])
def test_retry_on_list_or_set_of_types(clock: FakeClock, types: Any) -> None:
    fn = Script(KeyError, IndexError, "ok")
    retry = Retry(3, backoff=Constant(0), retry_on=types, clock=clock)
    assert retry.call(fn) == "ok"
    fn = Script(ValueError)
    with pytest.raises(ValueError):
        retry.call(fn)
    assert len(fn.calls) == 1


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_are_never_retried(clock: FakeClock, exc_type: type) -> None:
    fn = Script(exc_type)
    retry = Retry(5, backoff=Constant(1.0), retry_on=BaseException, clock=clock)
    with pytest.raises(exc_type):
        retry.call(fn)
    assert len(fn.calls) == 1
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_cancellation_is_never_retried(clock: FakeClock) -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()  # raises the backend's cancellation

    retry = Retry(5, backoff=Constant(1.0), retry_on=BaseException, clock=clock)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await retry.acall(work)
    assert scope.cancelled_caught
    assert calls == 1
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_cancellation_during_the_backoff_sleep_stops_retrying(clock: FakeClock) -> None:
    fn = Script(OSError)

    async def work() -> None:
        fn()  # fails without a checkpoint; the cancellation lands in the sleep

    retry = Retry(5, backoff=Constant(1.0), clock=clock)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await retry.acall(work)
    assert scope.cancelled_caught
    assert len(fn.calls) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        CircuitOpen("breaker", None),
        CircuitOpen("breaker", None, "forced_open"),
        BulkheadFull("pool", 4, 0),
        ConfigError("pipelines.x.retry.attempts", 0, "an int >= 1"),
        ResilienceError("some refusal"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_refusals_without_a_hint_are_not_retried(
    clock: FakeClock, refusal: ResilienceError
) -> None:
    fn = Script(refusal)
    retry = Retry(5, backoff=Constant(0.1), clock=clock)
    with pytest.raises(type(refusal)) as excinfo:
        retry.call(fn)
    assert excinfo.value is refusal
    assert len(fn.calls) == 1
    assert clock.sleeps == []
    assert notes(refusal) == []  # not retried at all: propagates unchanged


def test_circuit_open_with_retry_after_is_retried_after_the_hint(clock: FakeClock) -> None:
    fn = Script(CircuitOpen("breaker", 2.0))
    retry = Retry(3, backoff=Constant(0.1), name="r", clock=clock)
    with pytest.raises(CircuitOpen) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 3
    assert clock.sleeps == [2.0, 2.0]
    assert "all 3 attempts failed" in notes(excinfo.value)[0]


def test_rate_limited_is_retried_after_its_hint(clock: FakeClock) -> None:
    fn = Script(RateLimited("api", 0.75), RateLimited("api", 0.5), "ok")
    retry = Retry(3, backoff=Constant(0.1), clock=clock)
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [0.75, 0.5]


def test_refusal_with_a_zero_hint_is_retried_after_the_backoff(clock: FakeClock) -> None:
    fn = Script(CircuitOpen("breaker", 0.0), "ok")
    assert Retry(3, backoff=Constant(0.3), clock=clock).call(fn) == "ok"
    assert clock.sleeps == [0.3]


def test_bulkhead_full_with_a_hint_is_retried(clock: FakeClock) -> None:
    full = BulkheadFull("pool", 4, 0)
    full.retry_after = 1.5
    fn = Script(full, "ok")
    assert Retry(3, backoff=Constant(0.1), clock=clock).call(fn) == "ok"
    assert clock.sleeps == [1.5]


def test_timeout_exceeded_is_retried_like_any_failure(clock: FakeClock) -> None:
    fn = Script(TimeoutExceeded("t", 1.0))
    retry = Retry(3, backoff=Constant(0.2), clock=clock)
    with pytest.raises(TimeoutExceeded) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 3
    assert clock.sleeps == [0.2, 0.2]
    assert "all 3 attempts failed" in notes(excinfo.value)[0]


def test_refusal_not_in_retry_on_is_not_retried_even_with_a_hint(clock: FakeClock) -> None:
    fn = Script(RateLimited("api", 0.5))
    with pytest.raises(RateLimited):
        Retry(3, retry_on=OSError, clock=clock).call(fn)
    assert len(fn.calls) == 1


# -- delay hints -----------------------------------------------------------------------


class Throttled(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__(f"throttled, retry after {retry_after!r}")
        self.retry_after = retry_after


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (3, 3.0),  # larger than the backoff: honoured
        (2.5, 2.5),
        (timedelta(seconds=2), 2.0),
        (0.05, 0.5),  # smaller than the backoff: the backoff wins
        (4.0, 4.0),  # exactly the backoff's max: still waited in full
        (None, 0.5),  # no hint
        (True, 0.5),  # not a number of seconds: ignored
        ("3", 0.5),
        (float("nan"), 0.5),
        (-5.0, 0.5),
    ],
    ids=repr,
)
def test_user_exception_retry_after_hint(clock: FakeClock, hint: object, expected: float) -> None:
    fn = Script(Throttled(hint), Throttled(hint), "ok")
    retry = Retry(3, backoff=Constant(0.5, max=4.0), clock=clock)
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [expected, expected]


def test_each_attempt_honours_its_own_hint(clock: FakeClock) -> None:
    fn = Script(Throttled(1.0), Throttled(5.0), Throttled(0.0), "ok")
    retry = Retry(4, backoff=Constant(0.25), clock=clock)
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [1.0, 5.0, 0.25]


@pytest.mark.parametrize("hint", [4.001, 50.0, timedelta(minutes=5), 3600])
def test_a_hint_longer_than_the_backoffs_max_stops_at_once(clock: FakeClock, hint: object) -> None:
    fn = Script(Throttled(hint), "ok")
    retry = Retry(3, backoff=Constant(0.5, max=4.0), name="r", clock=clock)
    with pytest.raises(Throttled) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 1  # not retried into a certain refusal
    assert clock.sleeps == []
    (note,) = notes(excinfo.value)
    assert "retry_after" in note
    assert "max of 4s" in note


def test_the_default_backoff_waits_hints_up_to_its_max_and_no_longer(clock: FakeClock) -> None:
    fn = Script(Throttled(10.0), Throttled(10.5), "ok")
    with pytest.raises(Throttled):
        Retry(clock=clock).call(fn)
    assert clock.sleeps == [10.0]  # the default max is 10 s
    assert len(fn.calls) == 2


def _open_breaker(clock: FakeClock, open_for: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker("dep", consecutive_failures=1, open_for=open_for, clock=clock)
    with pytest.raises(OSError):
        breaker.call(Script(OSError("down")))
    assert breaker.state == "open"
    return breaker


def test_an_open_breaker_longer_than_the_backoffs_max_is_not_retried(clock: FakeClock) -> None:
    breaker = _open_breaker(clock)
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Exponential(0.05, max=0.2), clock=clock), breaker)
    with pytest.raises(CircuitOpen) as excinfo:
        pipeline.call(fn)
    assert fn.calls == []
    assert clock.sleeps == []  # one attempt, at once
    assert excinfo.value.retry_after == pytest.approx(30.0)
    assert "retry_after" in notes(excinfo.value)[0]


@pytest.mark.anyio
async def test_an_open_breaker_longer_than_the_backoffs_max_is_not_retried_async(
    clock: FakeClock,
) -> None:
    breaker = _open_breaker(clock)
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Exponential(0.05, max=0.2), clock=clock), breaker)
    with pytest.raises(CircuitOpen):
        await pipeline.acall(fn.coro)
    assert fn.calls == []
    assert clock.sleeps == []


def test_an_open_breaker_within_the_backoffs_max_is_waited_in_full(clock: FakeClock) -> None:
    breaker = _open_breaker(clock, open_for=2.0)
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Exponential(0.05, max=5.0), clock=clock), breaker)
    assert pipeline.call(fn) == "ok"  # the breaker half-opens after 2 s and admits the trial
    assert clock.sleeps == [pytest.approx(2.0)]  # not less: sooner would be refused again


def test_rate_limited_longer_than_the_backoffs_max_is_not_retried(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=60.0, burst=1, clock=clock)  # one token a minute
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Constant(0.1, max=1.0), clock=clock), bucket)
    assert pipeline.call(fn) == "ok"
    with pytest.raises(RateLimited) as excinfo:
        pipeline.call(fn)
    assert len(fn.calls) == 1
    assert clock.sleeps == []
    assert excinfo.value.retry_after == pytest.approx(60.0)
    assert "retry_after" in notes(excinfo.value)[0]


@pytest.mark.anyio
async def test_rate_limited_longer_than_the_backoffs_max_is_not_retried_async(
    clock: FakeClock,
) -> None:
    bucket = TokenBucket(rate=1, per=60.0, burst=1, clock=clock)
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Constant(0.1, max=1.0), clock=clock), bucket)
    assert await pipeline.acall(fn.coro) == "ok"
    with pytest.raises(RateLimited):
        await pipeline.acall(fn.coro)
    assert len(fn.calls) == 1
    assert clock.sleeps == []


def test_rate_limited_within_the_backoffs_max_is_waited_in_full(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=2.0, burst=1, clock=clock)  # one token every 2 s
    fn = Script("ok")
    pipeline = Pipeline(Retry(3, backoff=Constant(0.1, max=5.0), clock=clock), bucket)
    assert pipeline.call(fn) == "ok"
    assert pipeline.call(fn) == "ok"
    assert len(fn.calls) == 2
    assert clock.sleeps == [pytest.approx(2.0)]


def test_hint_against_jittered_backoff(clock: FakeClock) -> None:
    fn = Script(Throttled(1.5))
    retry = Retry(6, backoff=Exponential(base=1.0, max=20.0, jitter="full"), clock=clock)
    with pytest.raises(Throttled):
        retry.call(fn)
    assert len(clock.sleeps) == 5
    for n, slept in enumerate(clock.sleeps, start=1):
        assert 1.5 <= slept <= max(1.5, min(20.0, 2.0 ** (n - 1)))


# -- retry_if_result -------------------------------------------------------------------


def test_retry_if_result_retries_until_a_good_result(clock: FakeClock) -> None:
    seen: list[object] = []

    def pending(result: object) -> bool:
        seen.append(result)
        return result == "pending"

    fn = Script("pending", "pending", "done")
    retry = Retry(5, backoff=Constant(0.5), retry_if_result=pending, clock=clock)
    assert retry.call(fn) == "done"
    assert seen == ["pending", "pending", "done"]
    assert clock.sleeps == [0.5, 0.5]


def test_retry_if_result_returns_the_last_result_when_attempts_run_out(
    clock: FakeClock,
) -> None:
    results = [[1], [2], [3]]
    fn = Script(*results)
    retry = Retry(3, backoff=Constant(0.5), retry_if_result=lambda r: True, clock=clock)
    assert retry.call(fn) is results[2]
    assert len(fn.calls) == 3
    assert clock.sleeps == [0.5, 0.5]


def test_retry_if_result_mixed_with_exceptions(clock: FakeClock) -> None:
    checked: list[object] = []

    def is_none(result: object) -> bool:
        checked.append(result)
        return result is None

    fn = Script(OSError, None, OSError, 42)
    retry = Retry(5, backoff=Linear(base=1.0, step=1.0), retry_if_result=is_none, clock=clock)
    assert retry.call(fn) == 42
    assert checked == [None, 42]  # the predicate never sees exceptions
    assert clock.sleeps == [1.0, 2.0, 3.0]


@pytest.mark.anyio
async def test_retry_if_result_async(clock: FakeClock) -> None:
    fn = Script(0, 0, 7)
    retry = Retry(3, backoff=Constant(0.1), retry_if_result=lambda r: r == 0, clock=clock)
    assert await retry.acall(fn.coro) == 7
    assert clock.sleeps == [0.1, 0.1]
    fn = Script(0)
    assert await retry.acall(fn.coro) == 0
    assert len(fn.calls) == 3


# -- deadline --------------------------------------------------------------------------


def test_deadline_gives_up_before_a_sleep_that_would_pass_it(clock: FakeClock) -> None:
    fn = Script(OSError)
    retry = Retry(10, backoff=Constant(1.0), deadline=2.5, name="search", clock=clock)
    with pytest.raises(OSError) as excinfo:
        retry.call(fn)
    # t=0 fail, sleep to 1; t=1 fail, sleep to 2; t=2 fail: 2 + 1 > 2.5, give up now
    assert len(fn.calls) == 3
    assert clock.sleeps == [1.0, 1.0]
    assert clock.monotonic() == 2.0
    assert excinfo.value is fn.raised[-1]
    assert len(notes(excinfo.value)) == 1
    assert "search" in notes(excinfo.value)[0]
    assert "deadline" in notes(excinfo.value)[0]


def test_deadline_counts_the_time_spent_in_calls(clock: FakeClock) -> None:
    calls = 0

    def slow_failure() -> None:
        nonlocal calls
        calls += 1
        clock.advance(1.0)
        raise OSError

    retry = Retry(10, backoff=Constant(1.0), deadline=2.5, clock=clock)
    with pytest.raises(OSError):
        retry.call(slow_failure)
    # 0..1 fails: 1 + 1 <= 2.5, sleep to 2; 2..3 fails: 3 + 1 > 2.5, give up
    assert calls == 2
    assert clock.sleeps == [1.0]


def test_deadline_allows_a_sleep_that_ends_exactly_at_it(clock: FakeClock) -> None:
    fn = Script(OSError)
    retry = Retry(10, backoff=Constant(1.0), deadline=2.0, clock=clock)
    with pytest.raises(OSError):
        retry.call(fn)
    assert clock.sleeps == [1.0, 1.0]
    assert len(fn.calls) == 3


def test_deadline_starts_when_the_first_attempt_begins(clock: FakeClock) -> None:
    retry = Retry(3, backoff=Constant(1.0), deadline=timedelta(seconds=5), clock=clock)
    assert retry.deadline == 5.0
    clock.advance(1000.0)  # time before the call does not count
    fn = Script(OSError, OSError, "ok")
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [1.0, 1.0]
    # and each call has its own deadline
    fn = Script(OSError, OSError, "ok")
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [1.0] * 4


def test_deadline_gives_up_when_a_hint_would_pass_it(clock: FakeClock) -> None:
    fn = Script(Throttled(30.0), "ok")
    retry = Retry(3, backoff=Constant(0.1, max=60.0), deadline=10.0, clock=clock)
    with pytest.raises(Throttled) as excinfo:
        retry.call(fn)
    assert len(fn.calls) == 1
    assert clock.sleeps == []
    assert "deadline" in notes(excinfo.value)[0]


def test_deadline_with_retry_if_result_returns_the_last_result(clock: FakeClock) -> None:
    fn = Script("a", "b", "c", "d")
    retry = Retry(
        10,
        backoff=Constant(1.0),
        deadline=1.5,
        retry_if_result=lambda r: r != "d",
        clock=clock,
    )
    assert retry.call(fn) == "b"
    assert clock.sleeps == [1.0]


@pytest.mark.anyio
async def test_deadline_async(clock: FakeClock) -> None:
    fn = Script(OSError)
    retry = Retry(10, backoff=Linear(base=1.0, step=1.0), deadline=4.0, clock=clock)
    with pytest.raises(OSError) as excinfo:
        await retry.acall(fn.coro)
    # sleeps 1 (t=1), 2 (t=3), then 3 + 3 > 4
    assert clock.sleeps == [1.0, 2.0]
    assert len(fn.calls) == 3
    assert "deadline" in notes(excinfo.value)[0]


# -- the attempt loop, sync ------------------------------------------------------------


def test_attempt_loop_runs_until_the_block_succeeds(clock: FakeClock) -> None:
    retry = Retry(5, backoff=Constant(0.5), clock=clock)
    numbers: list[int] = []
    for attempt in retry:
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise OSError("not yet")
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [0.5, 0.5]


def test_attempt_loop_first_success_ends_the_loop(clock: FakeClock) -> None:
    runs = 0
    for attempt in Retry(5, clock=clock):
        with attempt:
            runs += 1
    assert runs == 1
    assert clock.sleeps == []


def test_attempt_loop_last_failure_propagates_with_the_note(clock: FakeClock) -> None:
    retry = Retry(3, backoff=Constant(0.5), name="loop", clock=clock)
    raised: list[OSError] = []

    def body(attempt: Attempt) -> None:
        raised.append(OSError(attempt.number))
        raise raised[-1]

    with pytest.raises(OSError) as excinfo:
        run_loop(retry, body)
    assert len(raised) == 3
    assert excinfo.value is raised[-1]
    assert clock.sleeps == [0.5, 0.5]
    assert len(notes(excinfo.value)) == 1
    assert "loop" in notes(excinfo.value)[0]
    assert "all 3 attempts failed" in notes(excinfo.value)[0]


def test_attempt_loop_non_retryable_propagates_at_once(clock: FakeClock) -> None:
    retry = Retry(5, backoff=Constant(0.5), retry_on=OSError, clock=clock)
    runs = 0

    def body(attempt: Attempt) -> None:
        nonlocal runs
        runs += 1
        raise KeyError("k")

    with pytest.raises(KeyError) as excinfo:
        run_loop(retry, body)
    assert runs == 1
    assert clock.sleeps == []
    assert notes(excinfo.value) == []


def test_attempt_loop_never_retries_base_exceptions(clock: FakeClock) -> None:
    runs = 0

    def body(attempt: Attempt) -> None:
        nonlocal runs
        runs += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_loop(Retry(5, retry_on=BaseException, clock=clock), body)
    assert runs == 1


def test_attempt_loop_honours_hints_and_the_deadline(clock: FakeClock) -> None:
    retry = Retry(10, backoff=Constant(0.1), deadline=5.0, clock=clock)
    runs = 0

    def body(attempt: Attempt) -> None:
        nonlocal runs
        runs += 1
        raise Throttled(2.0)

    with pytest.raises(Throttled) as excinfo:
        run_loop(retry, body)
    # t=0 -> 2 -> 4; then 4 + 2 > 5
    assert runs == 3
    assert clock.sleeps == [2.0, 2.0]
    assert "deadline" in notes(excinfo.value)[0]


def test_attempt_repr_and_type(clock: FakeClock) -> None:
    for attempt in Retry(clock=clock):
        assert isinstance(attempt, Attempt)
        assert repr(attempt) == "Attempt(number=1)"
        with attempt as entered:
            assert entered is attempt


# -- the attempt loop, async -----------------------------------------------------------


@pytest.mark.anyio
async def test_async_attempt_loop_with_sync_with() -> None:
    clock = SpyClock()
    retry = Retry(5, backoff=Constant(0.5), clock=clock)
    numbers: list[int] = []
    async for attempt in retry:
        with attempt:
            numbers.append(attempt.number)
            await anyio.lowlevel.checkpoint()
            if attempt.number < 3:
                raise OSError("not yet")
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [0.5, 0.5]
    assert clock.kinds == ["asleep", "asleep"]


@pytest.mark.anyio
async def test_async_attempt_loop_with_async_with() -> None:
    clock = SpyClock()
    retry = Retry(5, backoff=Linear(base=1.0, step=1.0), clock=clock)
    numbers: list[int] = []
    async for attempt in retry:
        async with attempt as entered:
            assert entered is attempt
            numbers.append(attempt.number)
            if attempt.number < 4:
                raise OSError("not yet")
    assert numbers == [1, 2, 3, 4]
    assert clock.sleeps == [1.0, 2.0, 3.0]
    assert clock.kinds == ["asleep"] * 3


@pytest.mark.anyio
@pytest.mark.parametrize("use_async_with", [False, True])
async def test_async_attempt_loop_last_failure_propagates_with_the_note(
    clock: FakeClock, use_async_with: bool
) -> None:
    retry = Retry(3, backoff=Constant(0.5), name="aloop", clock=clock)
    raised: list[OSError] = []

    def body(attempt: Attempt) -> None:
        raised.append(OSError(attempt.number))
        raise raised[-1]

    with pytest.raises(OSError) as excinfo:
        await run_async_loop(retry, body, async_with=use_async_with)
    assert len(raised) == 3
    assert excinfo.value is raised[-1]
    assert clock.sleeps == [0.5, 0.5]
    assert len(notes(excinfo.value)) == 1
    assert "aloop" in notes(excinfo.value)[0]
    assert "all 3 attempts failed" in notes(excinfo.value)[0]


@pytest.mark.anyio
async def test_async_attempt_loop_non_retryable_propagates_at_once(clock: FakeClock) -> None:
    retry = Retry(5, backoff=Constant(0.5), retry_on=OSError, clock=clock)
    runs = 0

    def body(attempt: Attempt) -> None:
        nonlocal runs
        runs += 1
        raise KeyError("k")

    with pytest.raises(KeyError) as excinfo:
        await run_async_loop(retry, body, async_with=True)
    assert runs == 1
    assert clock.sleeps == []
    assert notes(excinfo.value) == []


@pytest.mark.anyio
async def test_async_attempt_loop_left_early_leaves_nothing_to_finalize(
    clock: FakeClock,
) -> None:
    """The documented form, left by its final exception, by an exception that is not
    retried, or by a ``return`` from inside the block, must not leave an unfinished async
    generator behind: trio warns (ResourceWarning) when one is garbage collected, and
    with warnings as errors that fails the caller's test suite."""
    retry = Retry(2, backoff=Constant(0.5), retry_on=OSError, clock=clock)

    def down(attempt: Attempt) -> None:
        raise OSError("down")

    def not_retried(attempt: Attempt) -> None:
        raise KeyError("not retried")

    async def second_attempt_returns() -> int:
        async for attempt in retry:
            async with attempt:
                if attempt.number == 1:
                    raise OSError("once")
                return attempt.number
        raise AssertionError("not reached")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError):
            await run_async_loop(retry, down, close=False)
        with pytest.raises(KeyError):
            await run_async_loop(retry, not_retried, async_with=True, close=False)
        assert await second_attempt_returns() == 2
        gc.collect()
    leftovers = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leftovers == []


# -- per-call state under concurrency --------------------------------------------------


def test_concurrent_threads_keep_their_own_attempt_counts(clock: FakeClock) -> None:
    threads = 8
    retry = Retry(3, backoff=Constant(0.01), clock=clock)
    barrier = threading.Barrier(threads, timeout=10)
    local = threading.local()
    results: dict[int, tuple[int, int]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> tuple[int, int]:
        local.calls = getattr(local, "calls", 0) + 1
        if local.calls == 1:
            barrier.wait()  # every thread is inside its first attempt at once
        if local.calls < 3:
            raise OSError(f"thread {i}, attempt {local.calls}")
        return i, local.calls

    def run(i: int) -> None:
        try:
            results[i] = retry.call(work, i)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert results == {i: (i, 3) for i in range(threads)}
    assert len(clock.sleeps) == 2 * threads


def test_concurrent_threads_in_attempt_loops(clock: FakeClock) -> None:
    threads = 6
    retry = Retry(3, backoff=Constant(0.01), clock=clock)
    barrier = threading.Barrier(threads, timeout=10)
    numbers: dict[int, list[int]] = defaultdict(list)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for attempt in retry:
                with attempt:
                    numbers[i].append(attempt.number)
                    if attempt.number == 1:
                        barrier.wait()
                    if attempt.number < 3:
                        raise OSError(i)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert dict(numbers) == {i: [1, 2, 3] for i in range(threads)}


@pytest.mark.anyio
async def test_concurrent_tasks_keep_their_own_attempt_counts(clock: FakeClock) -> None:
    tasks = 10
    retry = Retry(3, backoff=Constant(0.01), clock=clock)
    calls: dict[int, int] = defaultdict(int)
    results: dict[int, int] = {}

    async def work(i: int) -> int:
        calls[i] += 1
        await anyio.lowlevel.checkpoint()
        if calls[i] < 3:
            raise OSError(i)
        return i * 10

    async def run(i: int) -> None:
        results[i] = await retry.acall(work, i)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(run, i)
    assert results == {i: i * 10 for i in range(tasks)}
    assert dict(calls) == dict.fromkeys(range(tasks), 3)
    assert len(clock.sleeps) == 2 * tasks


@pytest.mark.anyio
async def test_concurrent_tasks_in_async_attempt_loops(clock: FakeClock) -> None:
    tasks = 6
    retry = Retry(3, backoff=Constant(0.01), clock=clock)
    numbers: dict[int, list[int]] = defaultdict(list)

    async def run(i: int) -> None:
        async for attempt in retry:
            async with attempt:
                numbers[i].append(attempt.number)
                await anyio.lowlevel.checkpoint()
                if attempt.number < 3:
                    raise OSError(i)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(run, i)
    assert dict(numbers) == {i: [1, 2, 3] for i in range(tasks)}


# -- events ----------------------------------------------------------------------------


def test_events_for_retries_then_success(clock: FakeClock) -> None:
    events: list[Event] = []
    first, second = OSError("1"), OSError("2")
    retry = Retry(5, backoff=Constant(0.5), name="ev", clock=clock)
    retry.listen(events.append)
    assert retry.call(Script(first, second, "ok")) == "ok"
    assert [(e.kind, e.name, e.type, e.details) for e in events] == [
        ("retry", "ev", "retry", RetryScheduled(attempt=1, delay=0.5)),
        ("retry", "ev", "retry", RetryScheduled(attempt=2, delay=0.5)),
        ("retry", "ev", "success", RetrySucceeded(attempt=3)),
    ]
    assert events[0].exception is first
    assert events[1].exception is second
    assert [e.time for e in events] == [0.0, 0.5, 1.0]


def test_events_for_give_up(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(3, backoff=Constant(0.5), clock=clock)
    retry.listen(events.append)
    fn = Script(OSError)
    with pytest.raises(OSError):
        retry.call(fn)
    assert [(e.type, e.details) for e in events] == [
        ("retry", RetryScheduled(attempt=1, delay=0.5)),
        ("retry", RetryScheduled(attempt=2, delay=0.5)),
        ("give_up", GaveUp(attempt=3)),
    ]
    assert events[-1].exception is fn.raised[-1]


def test_give_up_event_on_results_has_no_exception(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(2, backoff=Constant(0), retry_if_result=lambda r: r is None, clock=clock)
    retry.listen(events.append)
    assert retry.call(Script(None)) is None
    assert [(e.type, e.details, e.exception) for e in events] == [
        ("retry", RetryScheduled(attempt=1, delay=0.0), None),
        ("give_up", GaveUp(attempt=2), None),
    ]


def test_no_events_when_the_first_attempt_succeeds(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(clock=clock)
    retry.listen(events.append)
    retry.call(Script("ok"))
    for attempt in retry:
        with attempt:
            pass
    assert events == []


def test_no_events_when_an_exception_is_not_retried(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(3, backoff=Constant(0), retry_on=(OSError, CircuitOpen), clock=clock)
    retry.listen(events.append)
    with pytest.raises(KeyError):
        retry.call(Script(KeyError))
    with pytest.raises(CircuitOpen):
        retry.call(Script(CircuitOpen("b", None)))
    assert events == []


def test_attempt_loop_emits_the_same_events(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(3, backoff=Constant(0.5), clock=clock)
    retry.listen(events.append)
    for attempt in retry:
        with attempt:
            if attempt.number < 2:
                raise OSError
    assert [(e.type, e.details) for e in events] == [
        ("retry", RetryScheduled(attempt=1, delay=0.5)),
        ("success", RetrySucceeded(attempt=2)),
    ]


def test_unsubscribed_listener_gets_nothing(clock: FakeClock) -> None:
    events: list[Event] = []
    retry = Retry(3, backoff=Constant(0), clock=clock)
    stop = retry.listen(events.append)
    stop()
    retry.call(Script(OSError, "ok"))
    assert events == []


def test_global_listener_sees_retry_events(clock: FakeClock) -> None:
    events: list[Event] = []
    stop = resilience.listen(events.append)
    try:
        Retry(3, backoff=Constant(0), name="global", clock=clock).call(Script(OSError, "ok"))
    finally:
        stop()
    assert [(e.kind, e.name, e.type) for e in events] == [
        ("retry", "global", "retry"),
        ("retry", "global", "success"),
    ]


def test_a_failing_listener_does_not_break_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    retry = Retry(3, backoff=Constant(0.1), clock=clock)
    retry.listen(broken)
    fn = Script(OSError, "ok")
    assert retry.call(fn) == "ok"
    assert len(fn.calls) == 2
    assert "listener" in caplog.text


# -- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"attempts": 0}, ValueError, ["attempts", "0"]),
        ({"attempts": -2}, ValueError, ["attempts", "-2"]),
        ({"attempts": 1.5}, TypeError, ["attempts", "1.5"]),
        ({"attempts": True}, TypeError, ["attempts", "True"]),
        ({"attempts": "3"}, TypeError, ["attempts", "'3'"]),
        ({"deadline": -1}, ValueError, ["deadline", "-1"]),
        ({"deadline": float("nan")}, ValueError, ["deadline", "nan"]),
        ({"deadline": float("inf")}, ValueError, ["deadline", "inf"]),
        ({"deadline": 0}, ValueError, ["deadline", "0"]),
        ({"deadline": timedelta(0)}, ValueError, ["deadline", "timedelta"]),
        ({"deadline": "5s"}, TypeError, ["deadline", "'5s'"]),
        ({"backoff": "fast"}, TypeError, ["backoff", "'fast'"]),
        ({"backoff": 0.5}, TypeError, ["backoff", "0.5"]),
        ({"retry_on": 5}, TypeError, ["retry_on", "5"]),
        ({"retry_on": (ValueError, 3)}, TypeError, ["retry_on", "3"]),
        ({"retry_on": ValueError("x")}, TypeError, ["retry_on", "ValueError"]),
        ({"retry_on": (int,)}, TypeError, ["retry_on", "int"]),
        ({"retry_if_result": 5}, TypeError, ["retry_if_result", "5"]),
        ({"budget": 5}, TypeError, ["budget", "5"]),
        ({"name": ""}, ValueError, ["name", "''"]),
        ({"name": 5}, TypeError, ["name", "5"]),
        ({"clock": object()}, TypeError, ["clock", "object"]),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "-",
)
def test_bad_arguments_name_the_parameter_and_the_value(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as excinfo:
        Retry(**kwargs)
    message = str(excinfo.value)
    for word in words:
        assert re.search(re.escape(word), message), (word, message)


def test_a_backoff_class_instead_of_an_instance_is_refused_at_construction(
    clock: FakeClock,
) -> None:
    # Retry(backoff=Exponential) (parentheses forgotten) must fail fast, naming the
    # parameter, not at the first retry with an unrelated TypeError from delay().
    with pytest.raises(TypeError, match="backoff") as excinfo:
        Retry(backoff=Exponential, clock=clock)  # type: ignore[arg-type]
    assert "Exponential" in str(excinfo.value)


def test_repr_shows_the_name(clock: FakeClock) -> None:
    assert "orders" in repr(Retry(name="orders", clock=clock))


def test_good_arguments_are_kept(clock: FakeClock) -> None:
    backoff = Constant(1.0)
    predicate: Callable[[Any], bool] = lambda r: r is None  # noqa: E731
    retry = Retry(
        7,
        backoff=backoff,
        retry_on=(OSError,),
        retry_if_result=predicate,
        deadline=timedelta(seconds=90),
        name="kept",
        clock=clock,
    )
    assert retry.attempts == 7
    assert retry.backoff is backoff
    assert retry.deadline == 90.0
    assert retry.name == "kept"
    assert retry.budget is None
