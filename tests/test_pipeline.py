"""Pipeline: composition order, nesting, shared policies, and call/acall/decoration.

Also the argument validation that every policy shares (``name``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import resilience
from resilience import (
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    GaveUp,
    Pipeline,
    Policy,
    Rejected,
    Retry,
    RetryScheduled,
    RetrySucceeded,
    StateChange,
)
from resilience._policies.policy import AsyncRunner, Runner
from resilience.testing import FakeClock


class Tag(Policy):
    """A minimal policy that records when a call enters and leaves it."""

    kind = "tag"

    def __init__(self, label: str, log: list[str], name: str | None = None) -> None:
        super().__init__(name, None)
        self.label = label
        self.log = log
        self._compose()

    def _sync_runner(self, inner: Runner) -> Runner:
        def run(*args: Any, **kwargs: Any) -> Any:
            self.log.append(f"{self.label}>")
            try:
                return inner(*args, **kwargs)
            except BaseException as exc:
                self.log.append(f"{self.label}!{type(exc).__name__}")
                raise
            finally:
                self.log.append(f"<{self.label}")

        return run

    def _async_runner(self, inner: AsyncRunner) -> AsyncRunner:
        async def run(*args: Any, **kwargs: Any) -> Any:
            self.log.append(f"{self.label}>")
            try:
                return await inner(*args, **kwargs)
            except BaseException as exc:
                self.log.append(f"{self.label}!{type(exc).__name__}")
                raise
            finally:
                self.log.append(f"<{self.label}")

        return run


@pytest.fixture
def events() -> Iterator[list[Event]]:
    received: list[Event] = []
    stop = resilience.listen(received.append)
    yield received
    stop()


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.type == "state_change":
            assert isinstance(e.details, StateChange)
            out.append((e.kind, e.type, e.details.from_state, e.details.to_state))
        elif e.kind == "retry":
            assert isinstance(e.details, (RetryScheduled, GaveUp, RetrySucceeded))
            out.append((e.kind, e.type, e.details.attempt))
        else:
            out.append((e.kind, e.type))
    return out


# -- order ----------------------------------------------------------------------------


def test_first_policy_is_outermost_sync() -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Tag("b", log), Tag("c", log))

    def fn(x: int, *, y: int) -> int:
        log.append("fn")
        return x + y

    assert pipeline.call(fn, 1, y=2) == 3
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]


@pytest.mark.anyio
async def test_first_policy_is_outermost_async() -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Tag("b", log), Tag("c", log))

    async def fn(x: int, *, y: int) -> int:
        log.append("fn")
        return x * y

    assert await pipeline.acall(fn, 3, y=4) == 12
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]


def test_exception_travels_out_through_every_layer_unchanged() -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Tag("b", log))
    error = KeyError("boom")

    def fn() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        pipeline.call(fn)
    assert info.value is error
    assert log == ["a>", "b>", "b!KeyError", "<b", "a!KeyError", "<a"]


@pytest.mark.anyio
async def test_exception_travels_out_through_every_layer_async() -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Tag("b", log))

    async def fn() -> None:
        raise LookupError("x")

    with pytest.raises(LookupError):
        await pipeline.acall(fn)
    assert log == ["a>", "b>", "b!LookupError", "<b", "a!LookupError", "<a"]


def test_nested_pipelines_keep_the_order() -> None:
    log: list[str] = []
    inner = Pipeline(Tag("b", log), Pipeline(Tag("c", log)))
    outer = Pipeline(Tag("a", log), inner, Pipeline(), Tag("d", log))

    assert outer.call(lambda: log.append("fn") or "r") == "r"
    assert log == ["a>", "b>", "c>", "d>", "fn", "<d", "<c", "<b", "<a"]
    log.clear()
    assert inner.call(lambda: "alone") == "alone"
    assert log == ["b>", "c>", "<c", "<b"]


@pytest.mark.anyio
async def test_nested_pipelines_keep_the_order_async() -> None:
    log: list[str] = []
    outer = Pipeline(Tag("a", log), Pipeline(Tag("b", log), Tag("c", log)))

    async def fn() -> str:
        log.append("fn")
        return "r"

    assert await outer.acall(fn) == "r"
    assert log == ["a>", "b>", "c>", "fn", "<c", "<b", "<a"]


def test_one_policy_used_twice_in_a_pipeline_runs_twice() -> None:
    log: list[str] = []
    tag = Tag("t", log)
    Pipeline(tag, tag).call(lambda: None)
    assert log == ["t>", "t>", "<t", "<t"]


# -- empty pipeline -------------------------------------------------------------------


def test_empty_pipeline_passes_calls_through() -> None:
    pipeline = Pipeline()
    assert pipeline.policies == ()
    assert pipeline.call(lambda a, b=2, *, c: (a, b, c), 1, c=3) == (1, 2, 3)
    error = ValueError("as is")

    def fails() -> None:
        raise error

    with pytest.raises(ValueError) as info:
        pipeline.call(fails)
    assert info.value is error


@pytest.mark.anyio
async def test_empty_pipeline_passes_async_calls_through() -> None:
    pipeline = Pipeline(name="empty")

    @pipeline
    async def fn(a: int, *, b: int = 1) -> int:
        return a - b

    assert await pipeline.acall(fn.__wrapped__, 5, b=2) == 3
    assert await fn(5) == 4


# -- real policies: order matters -----------------------------------------------------


def test_retry_outside_breaker_sees_circuit_open_and_waits_for_it(
    clock: FakeClock, events: list[Event]
) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=1, open_for=5.0, clock=clock)
    retry = Retry(3, backoff=Constant(0.0), name="r", clock=clock)
    pipeline = Pipeline(retry, breaker)
    calls: list[float] = []

    def fn() -> None:
        calls.append(clock.monotonic())
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        pipeline.call(fn)

    # Attempt 1 fails and opens the breaker; attempt 2 is rejected with CircuitOpen, whose
    # retry_after (5 s) the retry honours; attempt 3 is the half-open trial, which fails.
    assert calls == [0.0, 5.0]
    assert clock.sleeps == [0.0, 5.0]
    assert summary(events) == [
        ("circuit_breaker", "state_change", "closed", "open"),
        ("circuit_breaker", "failure"),
        ("retry", "retry", 1),
        ("circuit_breaker", "rejected"),
        ("retry", "retry", 2),
        ("circuit_breaker", "state_change", "open", "half_open"),
        ("circuit_breaker", "state_change", "half_open", "open"),
        ("circuit_breaker", "failure"),
        ("retry", "give_up", 3),
    ]
    rejected = next(e for e in events if e.type == "rejected")
    assert rejected.details == Rejected(retry_after=5.0)
    assert isinstance(events[4].exception, CircuitOpen)


def test_retry_outside_a_breaker_opened_by_hand_gives_up_at_once(
    clock: FakeClock, events: list[Event]
) -> None:
    breaker = CircuitBreaker(clock=clock)
    pipeline = Pipeline(Retry(5, backoff=Constant(1.0), clock=clock), breaker)
    breaker.open()
    calls: list[int] = []

    with pytest.raises(CircuitOpen) as info:
        pipeline.call(calls.append, 1)
    assert info.value.retry_after is None
    assert calls == []
    assert clock.sleeps == []
    assert summary(events) == [
        ("circuit_breaker", "state_change", "closed", "forced_open"),
        ("circuit_breaker", "rejected"),
    ]


def test_breaker_outside_retry_records_one_outcome_per_call(
    clock: FakeClock, events: list[Event]
) -> None:
    breaker = CircuitBreaker("b", consecutive_failures=2, clock=clock)
    pipeline = Pipeline(breaker, Retry(3, backoff=Constant(1.0), name="r", clock=clock))
    outcomes = iter([ConnectionError("1"), ConnectionError("2"), "ok"])

    def fn() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert pipeline.call(fn) == "ok"
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (1, 0)
    assert summary(events) == [
        ("retry", "retry", 1),
        ("retry", "retry", 2),
        ("retry", "success", 3),
        ("circuit_breaker", "success"),
    ]

    def always_fails() -> None:
        raise ConnectionError("down")

    events.clear()
    with pytest.raises(ConnectionError):
        pipeline.call(always_fails)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (2, 1)
    assert breaker.state == "closed"  # 3 failed attempts are one failure, not three
    assert summary(events)[-1] == ("circuit_breaker", "failure")

    with pytest.raises(ConnectionError):
        pipeline.call(always_fails)
    assert breaker.state == "open"


def test_breaker_outside_retry_rejects_before_any_attempt(
    clock: FakeClock, events: list[Event]
) -> None:
    breaker = CircuitBreaker(clock=clock)
    pipeline = Pipeline(breaker, Retry(3, backoff=Constant(1.0), clock=clock))
    breaker.open()
    events.clear()
    calls: list[int] = []
    with pytest.raises(CircuitOpen):
        pipeline.call(calls.append, 1)
    assert calls == []
    assert clock.sleeps == []
    assert summary(events) == [("circuit_breaker", "rejected")]


@pytest.mark.anyio
async def test_retry_outside_breaker_async(clock: FakeClock, events: list[Event]) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_for=5.0, clock=clock)
    pipeline = Pipeline(Retry(3, backoff=Constant(0.0), clock=clock), breaker)
    calls: list[float] = []

    async def fn() -> None:
        calls.append(clock.monotonic())
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await pipeline.acall(fn)
    assert calls == [0.0, 5.0]
    assert clock.sleeps == [0.0, 5.0]
    assert [e.type for e in events if e.kind == "circuit_breaker"] == [
        "state_change",
        "failure",
        "rejected",
        "state_change",
        "state_change",
        "failure",
    ]


@pytest.mark.anyio
async def test_breaker_outside_retry_async(clock: FakeClock) -> None:
    breaker = CircuitBreaker(consecutive_failures=2, clock=clock)
    pipeline = Pipeline(breaker, Retry(3, backoff=Constant(1.0), clock=clock))
    attempts = [0]

    @pipeline
    async def fn() -> str:
        attempts[0] += 1
        if attempts[0] < 3:
            raise ConnectionError("flaky")
        return "ok"

    assert await fn() == "ok"
    assert attempts == [3]
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 0)
    assert clock.sleeps == [1.0, 1.0]


def test_same_breaker_in_two_pipelines_shares_its_state(clock: FakeClock) -> None:
    breaker = CircuitBreaker("shared", consecutive_failures=1, open_for=10.0, clock=clock)
    first = Pipeline(Retry(1, clock=clock), breaker)
    second = Pipeline(breaker, Retry(2, backoff=Constant(0.0), clock=clock))
    calls: list[str] = []

    def fails() -> None:
        calls.append("fails")
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        first.call(fails)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        second.call(calls.append, "second")
    assert info.value.name == "shared"
    assert calls == ["fails"]

    breaker.close()
    assert second.call(lambda: "ok") == "ok"
    assert first.call(lambda: "ok") == "ok"


# -- call, acall and decoration ------------------------------------------------------


def test_pipeline_call_passes_positional_and_keyword_arguments(clock: FakeClock) -> None:
    pipeline = Pipeline(Retry(2, clock=clock), CircuitBreaker(clock=clock))

    def fn(fn: int, /, args: int = 0, *rest: int, kwargs: int = 0, **more: int) -> tuple[Any, ...]:
        return fn, args, rest, kwargs, more

    assert pipeline.call(fn, 1) == (1, 0, (), 0, {})
    assert pipeline.call(fn, 1, 2, 3, kwargs=4, x=5) == (1, 2, (3,), 4, {"x": 5})


@pytest.mark.anyio
async def test_pipeline_acall_passes_arguments(clock: FakeClock) -> None:
    pipeline = Pipeline(Retry(2, clock=clock), CircuitBreaker(clock=clock))

    async def fn(a: int, *rest: int, k: str = "k") -> tuple[Any, ...]:
        return a, rest, k

    assert await pipeline.acall(fn, 1, 2, 3, k="z") == (1, (2, 3), "z")


def test_pipeline_as_decorator_on_sync_function(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    pipeline = Pipeline(Retry(3, backoff=Constant(2.0), clock=clock), breaker)
    attempts = [0]

    @pipeline
    def fetch(path: str, *, timeout: float = 1.0) -> str:
        """Fetch a path."""
        attempts[0] += 1
        if attempts[0] == 1:
            raise ConnectionError(path)
        return f"{path}:{timeout}"

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a path."
    assert fetch("/x", timeout=2.5) == "/x:2.5"
    assert clock.sleeps == [2.0]
    breaker.open()
    with pytest.raises(CircuitOpen):
        fetch("/y")


@pytest.mark.anyio
async def test_pipeline_as_decorator_on_coroutine_function(clock: FakeClock) -> None:
    log: list[str] = []
    pipeline = Pipeline(Tag("a", log), Retry(2, backoff=Constant(1.0), clock=clock), Tag("b", log))
    attempts = [0]

    @pipeline
    async def fetch(path: str) -> str:
        attempts[0] += 1
        log.append(f"fn{attempts[0]}")
        if attempts[0] == 1:
            raise ConnectionError(path)
        return path

    assert await fetch("/z") == "/z"
    assert log == ["a>", "b>", "fn1", "b!ConnectionError", "<b", "b>", "fn2", "<b", "<a"]
    assert clock.sleeps == [1.0]


def test_call_inside_a_call_does_not_confuse_the_outer_call(clock: FakeClock) -> None:
    """``fn`` calls through the same pipeline; the outer call's next attempt must still
    call the outer ``fn``."""
    pipeline = Pipeline(Retry(2, backoff=Constant(0.0), clock=clock), CircuitBreaker(clock=clock))
    seen: list[str] = []

    def inner_fn(tag: str) -> str:
        seen.append(tag)
        return tag

    def outer_fn() -> str:
        seen.append("outer")
        assert pipeline.call(inner_fn, "inner") == "inner"
        if seen.count("outer") == 1:
            raise ConnectionError("first outer attempt fails")
        return "outer done"

    assert pipeline.call(outer_fn) == "outer done"
    assert seen == ["outer", "inner", "outer", "inner"]


@pytest.mark.anyio
async def test_concurrent_acalls_each_run_their_own_function(clock: FakeClock) -> None:
    pipeline = Pipeline(Retry(3, backoff=Constant(1.0), clock=clock), CircuitBreaker(clock=clock))
    calls: dict[str, int] = {}
    results: dict[str, str] = {}

    def make(tag: str) -> Callable[[], Any]:
        async def fn() -> str:
            calls[tag] = calls.get(tag, 0) + 1
            if calls[tag] < 3:
                raise ConnectionError(tag)  # the retry sleeps: other tasks run meanwhile
            return tag

        return fn

    async def run(tag: str) -> None:
        results[tag] = await pipeline.acall(make(tag))

    async with anyio.create_task_group() as tg:
        for tag in "abcd":
            tg.start_soon(run, tag)
    assert results == {tag: tag for tag in "abcd"}
    assert calls == dict.fromkeys("abcd", 3)


def test_concurrent_calls_from_threads_each_run_their_own_function() -> None:
    pipeline = Pipeline(
        Retry(2, backoff=Constant(0.0), clock=FakeClock()), CircuitBreaker(clock=FakeClock())
    )
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(500):
                assert pipeline.call(lambda a, b: (a, b), n, i) == (n, i)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_custom_policy_decorates_methods(clock: FakeClock) -> None:
    log: list[str] = []
    tag = Tag("t", log)

    class Service:
        @tag
        def method(self, x: int) -> tuple[Any, int]:
            log.append("method")
            return self, x

        @tag
        @classmethod
        def cmethod(cls, x: int) -> tuple[Any, int]:
            return cls, x

    service = Service()
    assert service.method(1) == (service, 1)
    assert Service.cmethod(2) == (Service, 2)
    assert log == ["t>", "method", "<t", "t>", "<t"]


def test_pipeline_is_a_policy_and_describes_itself() -> None:
    retry = Retry(name="r")
    pipeline = Pipeline(retry, CircuitBreaker("b"), name="payments")
    assert isinstance(pipeline, Policy)
    assert pipeline.kind == "pipeline"
    assert pipeline.name == "payments"
    assert pipeline.policies[0] is retry
    text = repr(pipeline)
    assert "Retry(name='r')" in text
    assert "CircuitBreaker(name='b')" in text
    assert text.index("Retry") < text.index("CircuitBreaker")
    assert "payments" in text


@pytest.mark.parametrize(
    ("args", "position"),
    [
        (("not a policy",), 0),
        ((Retry(), None), 1),
        ((Retry(), CircuitBreaker(), len), 2),
        ((Retry,), 0),  # the class, not an instance
        ((lambda fn: fn,), 0),
    ],
)
def test_pipeline_rejects_non_policies_naming_the_position(
    args: tuple[Any, ...], position: int
) -> None:
    with pytest.raises(TypeError, match=rf"argument {position}\b") as info:
        Pipeline(*args)
    assert repr(args[position]) in str(info.value)


def test_pipeline_takes_policies_only_positionally() -> None:
    with pytest.raises(TypeError):
        Pipeline(policies=[Retry()])  # type: ignore[call-arg]


# -- name validation, common to all policies ------------------------------------------

POLICY_FACTORIES: dict[str, Callable[[Any], Policy]] = {
    "CircuitBreaker": lambda name: CircuitBreaker(name),
    "CircuitBreaker-kw": lambda name: CircuitBreaker(name=name),
    "Retry": lambda name: Retry(name=name),
    "Pipeline": lambda name: Pipeline(name=name),
    "Tag": lambda name: Tag("t", [], name=name),
}


@pytest.mark.parametrize("factory", POLICY_FACTORIES.values(), ids=POLICY_FACTORIES.keys())
@pytest.mark.parametrize("name", [None, "payments", "a b", "api.example.com:443", "x"])
def test_good_names_are_kept(factory: Callable[[Any], Policy], name: str | None) -> None:
    policy = factory(name)
    assert policy.name == name
    assert repr(name) in repr(policy)


@pytest.mark.parametrize("factory", POLICY_FACTORIES.values(), ids=POLICY_FACTORIES.keys())
@pytest.mark.parametrize("name", [1, 1.5, b"payments", ["p"], True])
def test_names_that_are_not_str_raise_type_error(
    factory: Callable[[Any], Policy], name: object
) -> None:
    with pytest.raises(TypeError, match="name") as info:
        factory(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("factory", POLICY_FACTORIES.values(), ids=POLICY_FACTORIES.keys())
@pytest.mark.parametrize("name", ["", " ", " payments", "payments ", "\tpayments", "payments\n"])
def test_empty_or_padded_names_raise_value_error(
    factory: Callable[[Any], Policy], name: str
) -> None:
    with pytest.raises(ValueError, match="name") as info:
        factory(name)
    assert repr(name) in str(info.value)
