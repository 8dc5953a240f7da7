"""The errors policies raise: hierarchy, attributes, messages, pickling."""

from __future__ import annotations

import asyncio
import copy
import pickle
from typing import Any

import pytest

import resilience
from resilience import (
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    Constant,
    RateLimited,
    ResilienceError,
    Retry,
    TimeoutExceeded,
)
from resilience._core.notes import add_note as _add_note
from resilience.testing import FakeClock

ERRORS: dict[str, tuple[ResilienceError, dict[str, Any]]] = {
    "circuit-open": (
        CircuitOpen("payments", 12.5),
        {"name": "payments", "retry_after": 12.5, "state": "open"},
    ),
    "circuit-forced-open": (
        CircuitOpen("payments", None, "forced_open"),
        {"name": "payments", "retry_after": None, "state": "forced_open"},
    ),
    "circuit-unnamed": (
        CircuitOpen(None, 0.0, "half_open"),
        {"name": None, "retry_after": 0.0, "state": "half_open"},
    ),
    "rate-limited": (RateLimited("api", 0.25), {"name": "api", "retry_after": 0.25}),
    "bulkhead-full": (
        BulkheadFull("pool", 10, 20),
        {"name": "pool", "max_concurrent": 10, "max_queue": 20, "retry_after": None},
    ),
    "timeout": (
        TimeoutExceeded("slow", 2.5),
        {"name": "slow", "timeout": 2.5, "retry_after": None},
    ),
    "config": (
        ConfigError("pipelines.payments.retry.attempts", "three", "a positive int"),
        {
            "path": "pipelines.payments.retry.attempts",
            "value": "three",
            "expected": "a positive int",
        },
    ),
    "base": (ResilienceError("generic"), {"retry_after": None}),
}


def attributes(exc: BaseException, names: dict[str, Any]) -> dict[str, Any]:
    return {name: getattr(exc, name) for name in names}


@pytest.mark.parametrize(
    "cls", [CircuitOpen, RateLimited, BulkheadFull, TimeoutExceeded, ConfigError]
)
def test_every_error_is_a_resilience_error(cls: type[Exception]) -> None:
    assert issubclass(cls, ResilienceError)
    assert issubclass(cls, Exception)


def test_resilience_error_is_an_exception_not_a_base_exception_only() -> None:
    assert issubclass(ResilienceError, Exception)


def test_timeout_exceeded_is_also_a_timeout_error() -> None:
    exc = TimeoutExceeded("t", 1.0)
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, ResilienceError)
    with pytest.raises(TimeoutError):
        raise exc


def test_timeout_exceeded_is_an_asyncio_timeout_error_on_every_python() -> None:
    # The same class since 3.11; on 3.10 aiohttp re-wraps any other OSError.
    assert isinstance(TimeoutExceeded("t", 1.0), asyncio.TimeoutError)


def test_the_errors_are_distinct() -> None:
    """No error is a subclass of another (except all of ResilienceError)."""
    classes = [CircuitOpen, RateLimited, BulkheadFull, TimeoutExceeded, ConfigError]
    for a in classes:
        for b in classes:
            assert issubclass(a, b) is (a is b)
    assert not issubclass(CircuitOpen, TimeoutError)


def test_errors_are_exported_at_the_top_level() -> None:
    for name in [
        "ResilienceError",
        "CircuitOpen",
        "RateLimited",
        "BulkheadFull",
        "TimeoutExceeded",
        "ConfigError",
    ]:
        assert getattr(resilience, name) is getattr(resilience.errors, name)


@pytest.mark.parametrize(("exc", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_attributes(exc: ResilienceError, expected: dict[str, Any]) -> None:
    assert attributes(exc, expected) == expected


@pytest.mark.parametrize(("exc", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_pickle_round_trip_keeps_type_message_and_attributes(
    exc: ResilienceError, expected: dict[str, Any]
) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        restored = pickle.loads(pickle.dumps(exc, protocol=protocol))
        assert type(restored) is type(exc)
        assert str(restored) == str(exc)
        assert restored.args == exc.args
        assert attributes(restored, expected) == expected


@pytest.mark.parametrize(("exc", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_copy_keeps_attributes(exc: ResilienceError, expected: dict[str, Any]) -> None:
    assert attributes(copy.copy(exc), expected) == expected
    assert attributes(copy.deepcopy(exc), expected) == expected


@pytest.mark.parametrize(("exc", "expected"), ERRORS.values(), ids=ERRORS.keys())
def test_pickle_round_trip_keeps_pep_678_notes(
    exc: ResilienceError, expected: dict[str, Any]
) -> None:
    """Retry adds a note to the exception it re-raises; like any built-in exception, a
    resilience error must keep its notes when it crosses a process boundary."""
    exc = copy.copy(exc)
    # add_note is Python 3.11+; the library's own fallback sets __notes__ on 3.10.
    _add_note(exc, "resilience: Retry r gave up: all 3 attempts failed")
    restored = pickle.loads(pickle.dumps(exc))
    assert restored.__notes__ == ["resilience: Retry r gave up: all 3 attempts failed"]


def test_messages_name_the_policy() -> None:
    assert "payments" in str(CircuitOpen("payments", 3.0))
    assert "open" in str(CircuitOpen("payments", 3.0))
    assert "3.000" in str(CircuitOpen("payments", 3.0))
    assert "forced_open" in str(CircuitOpen("payments", None, "forced_open"))
    assert "api" in str(RateLimited("api", 0.5))
    assert "0.500" in str(RateLimited("api", 0.5))
    assert "pool" in str(BulkheadFull("pool", 4, 8))
    assert "4" in str(BulkheadFull("pool", 4, 8))
    assert "slow" in str(TimeoutExceeded("slow", 1.5))
    assert "1.5" in str(TimeoutExceeded("slow", 1.5))


@pytest.mark.parametrize(
    "exc",
    [
        CircuitOpen(None, 1.0),
        RateLimited(None, 1.0),
        BulkheadFull(None, 1, 0),
        TimeoutExceeded(None, 1.0),
    ],
)
def test_messages_of_unnamed_policies_say_so(exc: ResilienceError) -> None:
    assert "<unnamed>" in str(exc)
    assert "None" not in str(exc)


def test_forced_open_message_says_only_a_person_can_close_it() -> None:
    assert "by hand" in str(CircuitOpen("b", None, "forced_open"))


def test_config_error_message_names_the_path_and_the_bad_value() -> None:
    exc = ConfigError("pipelines.payments.timeout", "2 parsecs", "a duration")
    message = str(exc)
    assert "pipelines.payments.timeout" in message
    assert "'2 parsecs'" in message
    assert "a duration" in message


def test_config_error_pickles_with_any_picklable_value() -> None:
    exc = ConfigError("a.b", {"nested": [1, 2.5, None]}, "a table of numbers")
    restored = pickle.loads(pickle.dumps(exc))
    assert restored.value == {"nested": [1, 2.5, None]}
    assert restored.path == "a.b"


def test_circuit_open_raised_by_a_breaker_carries_its_name_and_state() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("upstream", consecutive_failures=1, open_for=8.0, clock=clock)

    def fails() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        breaker.call(fails)
    clock.advance(3.0)
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: None)
    assert info.value.name == "upstream"
    assert info.value.retry_after == 5.0
    assert info.value.state == "open"
    assert "upstream" in str(info.value)
    restored = pickle.loads(pickle.dumps(info.value))
    assert (restored.name, restored.retry_after, restored.state) == ("upstream", 5.0, "open")

    breaker.open()
    with pytest.raises(CircuitOpen) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after is None
    assert info.value.state == "forced_open"


def test_except_resilience_error_separates_refusals_from_call_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    breaker.open()
    with pytest.raises(ResilienceError):
        breaker.call(lambda: None)
    breaker.close()

    def fails() -> None:
        raise ConnectionError("own failure")

    with pytest.raises(ConnectionError) as info:
        Retry(2, backoff=Constant(0.0), clock=clock).call(fails)
    assert not isinstance(info.value, ResilienceError)
