"""LoggingListener: which events become records, at which level, with which extra fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

import resilience
from resilience import (
    Bulkhead,
    BulkheadFull,
    BulkheadRejected,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Fallback,
    GaveUp,
    RateLimited,
    Retry,
    StateChange,
    ThrottleRejected,
    TimedOut,
    TokenBucket,
)
from resilience.metrics.logging import LoggingListener
from resilience.testing import FakeClock


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("resilience.events")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def fail() -> None:
    raise ConnectionError("refused")


def test_breaker_transitions_and_rejections(records: Records, clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "payments", failure_rate=None, consecutive_failures=2, open_for=5, clock=clock
    )
    stop = breaker.listen(LoggingListener(rejection_interval=0))
    try:
        breaker.call(lambda: 1)  # a success: never logged
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(fail)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: 1)
        clock.advance(5)
        breaker.call(lambda: 1)
    finally:
        stop()
    got = [(r.levelno, r.getMessage()) for r in records.records]
    assert got == [
        (logging.WARNING, "circuit breaker payments: closed -> open"),
        (
            logging.INFO,
            "circuit breaker payments: call rejected (circuit open, retry after 5.000s)",
        ),
        (logging.INFO, "circuit breaker payments: open -> half_open"),
        (logging.INFO, "circuit breaker payments: half_open -> closed"),
    ]
    opened = records.records[0]
    assert opened.resilience_policy == "circuit_breaker"  # type: ignore[attr-defined]
    assert opened.resilience_name == "payments"  # type: ignore[attr-defined]
    assert opened.resilience_event == "state_change"  # type: ignore[attr-defined]
    assert opened.resilience_from_state == "closed"  # type: ignore[attr-defined]
    assert opened.resilience_to_state == "open"  # type: ignore[attr-defined]
    assert opened.resilience_error is None  # type: ignore[attr-defined]
    assert records.records[1].resilience_retry_after == 5.0  # type: ignore[attr-defined]
    assert not hasattr(opened, "resilience_retry_after")


def test_rejection_floods_are_summarised(records: Records, clock: FakeClock) -> None:
    breaker = CircuitBreaker("flood", clock=clock)
    breaker.open()
    stop = breaker.listen(LoggingListener(rejection_interval=1.0))
    try:
        for _ in range(5):
            with pytest.raises(CircuitOpen):
                breaker.call(lambda: 1)
            clock.advance(0.1)
        clock.advance(1.0)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: 1)
    finally:
        stop()
    rejected = [r for r in records.records if r.resilience_event == "rejected"]  # type: ignore[attr-defined]
    assert len(rejected) == 2
    assert rejected[0].resilience_suppressed == 0  # type: ignore[attr-defined]
    assert rejected[1].resilience_suppressed == 4  # type: ignore[attr-defined]
    assert "4 more rejected since the last report" in rejected[1].getMessage()
    assert "until" not in rejected[0].getMessage()


def test_give_up_retry_timeout_fallback_and_limiter(records: Records, clock: FakeClock) -> None:
    listener = LoggingListener(levels={"retry": logging.INFO})
    stop = resilience.listen(listener)
    try:
        with pytest.raises(ConnectionError):
            Retry(2, backoff=Constant(0.5), name="geo", clock=clock).call(fail)
        assert Fallback("stale", name="prices").call(fail) == "stale"
        limiter = TokenBucket(1, burst=1, name="api", clock=clock)
        limiter.call(lambda: 1)
        with pytest.raises(RateLimited):
            limiter.call(lambda: 1)
        bulkhead = Bulkhead(1, name="pool")
        with bulkhead, pytest.raises(BulkheadFull):
            bulkhead.call(lambda: 1)
        listener(Event("timeout", "slow", "timeout", 0.0, TimedOut(limit=2.0, abandoned=None)))
    finally:
        stop()
    got = [(r.levelno, r.getMessage()) for r in records.records]
    assert got == [
        (
            logging.INFO,
            "retry geo: attempt 1 failed, retrying in 0.500s: ConnectionError: refused",
        ),
        (logging.WARNING, "retry geo: gave up after attempt 2: ConnectionError: refused"),
        (logging.INFO, "fallback prices: fallback used: ConnectionError: refused"),
        (logging.INFO, "token bucket api: call rejected (rate limited, retry after 1.000s)"),
        (logging.INFO, "bulkhead pool: call rejected (bulkhead full)"),
        (logging.WARNING, "timeout slow: call exceeded 2s"),
    ]
    retried, give_up = records.records[:2]
    assert retried.resilience_attempt == 1  # type: ignore[attr-defined]
    assert retried.resilience_delay == 0.5  # type: ignore[attr-defined]
    assert give_up.resilience_attempt == 2  # type: ignore[attr-defined]
    assert give_up.resilience_error == "ConnectionError"  # type: ignore[attr-defined]
    assert records.records[3].resilience_retry_after == 1.0  # type: ignore[attr-defined]
    assert not hasattr(records.records[4], "resilience_waited")  # rejected at once
    timed_out = records.records[5]
    assert timed_out.resilience_limit == 2.0  # type: ignore[attr-defined]
    assert not hasattr(timed_out, "resilience_abandoned")  # None: left out


def test_retries_log_at_debug_by_default(records: Records, clock: FakeClock) -> None:
    records.setLevel(logging.INFO)
    stop = resilience.listen(LoggingListener())
    try:
        with pytest.raises(ConnectionError):
            Retry(3, backoff=Constant(0), name="quiet", clock=clock).call(fail)
    finally:
        stop()
    assert [r.getMessage() for r in records.records if r.levelno >= logging.INFO] == [
        "retry quiet: gave up after attempt 3: ConnectionError: refused"
    ]


def test_http_fields_and_json_formatting(records: Records) -> None:
    listener = LoggingListener()
    listener(
        Event(
            "circuit_breaker",
            "api",
            "state_change",
            0.0,
            StateChange(from_state="closed", to_state="open"),
            host="https://api.example:443",
            method="GET",
            status=503,
        )
    )
    record = records.records[0]
    assert (
        record.getMessage() == "circuit breaker api (GET https://api.example:443): closed -> open"
    )
    fields = {k: v for k, v in vars(record).items() if k.startswith("resilience_")}
    assert fields == {
        "resilience_policy": "circuit_breaker",
        "resilience_name": "api",
        "resilience_event": "state_change",
        "resilience_error": None,
        "resilience_from_state": "closed",
        "resilience_to_state": "open",
        "resilience_host": "https://api.example:443",
        "resilience_method": "GET",
        "resilience_status": 503,
    }
    json.dumps(fields)  # plain values, ready for a JSON formatter


def test_extra_fields_are_named_after_the_details(records: Records) -> None:
    listener = LoggingListener(rejection_interval=0)
    listener(Event("adaptive_throttle", "t", "rejected", 0.0, ThrottleRejected(0.25)))
    listener(Event("bulkhead", "b", "rejected", 0.0, BulkheadRejected(waited=1.5)))
    listener(Event("hedge", "h", "give_up", 0.0, GaveUp(attempt=3), ConnectionError("x")))
    throttled, full, gave_up = records.records
    assert throttled.getMessage() == "adaptive throttle t: call rejected (throttled)"
    assert throttled.resilience_probability == 0.25  # type: ignore[attr-defined]
    assert full.getMessage() == "bulkhead b: call rejected (bulkhead full)"
    assert full.resilience_waited == 1.5  # type: ignore[attr-defined]
    assert gave_up.getMessage() == "hedge h: gave up after attempt 3: ConnectionError: x"
    assert gave_up.resilience_attempt == 3  # type: ignore[attr-defined]
    assert gave_up.resilience_error == "ConnectionError"  # type: ignore[attr-defined]


def test_disabled_logger_costs_nothing_and_logs_nothing(records: Records) -> None:
    logger = logging.getLogger("resilience.events.quiet")
    logger.setLevel(logging.ERROR)
    listener = LoggingListener(logger)
    listener(Event("circuit_breaker", "x", "state_change", 0.0, StateChange("closed", "open")))
    assert records.records == []


def test_custom_logger_and_level_override(records: Records) -> None:
    logger = logging.getLogger("resilience.events.custom")
    listener = LoggingListener(logger, levels={"state_change": logging.ERROR})
    listener(Event("circuit_breaker", "x", "state_change", 0.0, StateChange("open", "half_open")))
    assert records.records[0].name == "resilience.events.custom"
    assert records.records[0].levelno == logging.ERROR


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"logger": 3}, TypeError),
        ({"levels": {"nope": logging.INFO}}, ValueError),
        ({"levels": {"retry": "INFO"}}, TypeError),
        ({"rejection_interval": -1}, ValueError),
        ({"rejection_interval": float("nan")}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        LoggingListener(**kwargs)  # type: ignore[arg-type]
