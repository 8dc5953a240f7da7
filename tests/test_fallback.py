"""Fallback: substitutes for failures and unusable results, sync and async."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from resilience import CircuitBreaker, CircuitOpen, Event, Fallback, Pipeline, Retry
from resilience.testing import FakeClock


class Down(Exception):
    pass


def down() -> int:
    raise Down("no")


async def adown() -> int:
    raise Down("no")


def test_value_replaces_a_failure() -> None:
    assert Fallback(0).call(down) == 0


def test_success_passes_through_untouched() -> None:
    assert Fallback(0).call(lambda: 7) == 7


def test_handler_receives_the_exception() -> None:
    seen: list[BaseException] = []

    def handler(exc: BaseException) -> int:
        seen.append(exc)
        return -1

    assert Fallback(handler=handler).call(down) == -1
    assert isinstance(seen[0], Down)


def test_on_limits_which_exceptions_fall_back() -> None:
    fallback = Fallback(0, on=KeyError)
    with pytest.raises(Down):
        fallback.call(down)
    assert Fallback(0, on=lambda exc: isinstance(exc, Down)).call(down) == 0


def test_if_result_replaces_an_unusable_result() -> None:
    fallback = Fallback(handler=lambda result: f"fixed {result}", if_result=lambda r: r < 0)
    assert fallback.call(lambda: -5) == "fixed -5"
    assert fallback.call(lambda: 5) == 5


def test_base_exceptions_always_pass() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Fallback(0, on=BaseException).call(interrupted)


def test_a_failing_handler_raises_with_the_original_as_context() -> None:
    def handler(exc: BaseException) -> int:
        raise RuntimeError("handler broke")

    with pytest.raises(RuntimeError) as info:
        Fallback(handler=handler).call(down)
    assert isinstance(info.value.__context__, Down)


def test_fallback_outside_a_breaker_covers_rejections(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    breaker.open()
    reasons: list[Any] = []
    pipeline = Pipeline(Fallback(handler=lambda exc: reasons.append(exc) or "cached"), breaker)
    assert pipeline.call(lambda: "live") == "cached"
    assert isinstance(reasons[0], CircuitOpen)


def test_fallback_outside_retry_steps_in_after_the_last_attempt(clock: FakeClock) -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        raise Down

    pipeline = Pipeline(Fallback(0), Retry(3, clock=clock))
    assert pipeline.call(flaky) == 0
    assert len(calls) == 3


def test_event_on_fallback(clock: FakeClock) -> None:
    fallback = Fallback(0, name="fb", clock=clock)
    events: list[Event] = []
    fallback.listen(events.append)
    fallback.call(lambda: 1)
    assert events == []
    fallback.call(down)
    assert [(e.kind, e.name, e.type) for e in events] == [("fallback", "fb", "fallback")]
    assert isinstance(events[0].exception, Down)


def test_async_handler_cannot_serve_a_sync_call() -> None:
    async def handler(exc: BaseException) -> int:
        return 1

    with pytest.raises(TypeError, match="async"):
        Fallback(handler=handler).call(down)


def test_decorator_sync() -> None:
    @Fallback("default")
    def read() -> str:
        raise Down

    assert read() == "default"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "neither"),
        ({"value": 1, "handler": lambda e: 2}, TypeError, "both"),
        ({"handler": 3}, TypeError, "handler"),
        ({"value": 1, "on": 5}, TypeError, "on"),
        ({"value": 1, "if_result": "x"}, TypeError, "if_result"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Fallback(**kwargs)


@pytest.mark.anyio
async def test_async_value_and_handlers() -> None:
    assert await Fallback(0).acall(adown) == 0

    async def ahandler(exc: BaseException) -> str:
        await anyio.sleep(0)
        return f"async {type(exc).__name__}"

    assert await Fallback(handler=ahandler).acall(adown) == "async Down"
    assert await Fallback(handler=lambda exc: "sync").acall(adown) == "sync"

    async def negative() -> int:
        return -1

    assert await Fallback(handler=ahandler, if_result=lambda r: r < 0).acall(negative) == (
        "async int"
    )


@pytest.mark.anyio
async def test_async_cancellation_is_not_a_fallback_reason() -> None:
    async def slow() -> int:
        await anyio.sleep(10)
        return 1

    fallback = Fallback(0, on=BaseException)
    with anyio.move_on_after(0.01) as scope:
        await fallback.acall(slow)
    assert scope.cancelled_caught
