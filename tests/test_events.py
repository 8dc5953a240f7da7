"""Events: global and per-policy listeners, unsubscribing, failing listeners, the Event
type, and the promise that nobody pays for events when nobody listens."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

import resilience
import resilience._policies.breaker
import resilience._policies.policy
import resilience._policies.retry
from resilience import (
    CallOutcome,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    EventDetails,
    GaveUp,
    Pipeline,
    Rejected,
    Retry,
    RetryScheduled,
    RetrySucceeded,
    StateChange,
)
from resilience.testing import FakeClock


def boom() -> None:
    raise ConnectionError("down")


@pytest.fixture
def received() -> Iterator[list[Event]]:
    events: list[Event] = []
    stop = resilience.listen(events.append)
    yield events
    stop()


# -- subscribing and unsubscribing ----------------------------------------------------


def test_global_listener_receives_events_until_unsubscribed(clock: FakeClock) -> None:
    breaker = CircuitBreaker("g", clock=clock)
    events: list[Event] = []
    stop = resilience.listen(events.append)
    assert callable(stop)
    breaker.call(lambda: None)
    assert [(e.kind, e.name, e.type) for e in events] == [("circuit_breaker", "g", "success")]
    stop()
    breaker.call(lambda: None)
    assert len(events) == 1


def test_unsubscribe_is_idempotent(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    events: list[Event] = []
    stop = resilience.listen(events.append)
    stop()
    stop()
    breaker.call(lambda: None)
    assert events == []
    local_stop = breaker.listen(events.append)
    local_stop()
    local_stop()
    breaker.call(lambda: None)
    assert events == []


def test_unsubscribing_twice_does_not_remove_another_subscription_of_the_same_listener(
    clock: FakeClock,
) -> None:
    """Two parts of a program subscribe the same listener; one of them stops (twice, as
    unsubscribing is harmless). The other subscription must keep working."""
    breaker = CircuitBreaker(clock=clock)
    events: list[Event] = []
    listener = events.append
    stop_first = resilience.listen(listener)
    stop_second = resilience.listen(listener)
    try:
        stop_first()
        stop_first()
        breaker.call(lambda: None)
        assert len(events) == 1
    finally:
        stop_second()


def test_unsubscribing_twice_locally_keeps_the_other_local_subscription(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(clock=clock)
    events: list[Event] = []
    stop_first = breaker.listen(events.append)
    breaker.listen(events.append)
    stop_first()
    stop_first()
    breaker.call(lambda: None)
    assert len(events) == 1


def test_listener_subscribed_twice_receives_each_event_twice(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    events: list[Event] = []
    stop_a = resilience.listen(events.append)
    stop_b = resilience.listen(events.append)
    try:
        breaker.call(lambda: None)
        assert len(events) == 2
        assert events[0] is events[1]
    finally:
        stop_a()
        stop_b()


@pytest.mark.parametrize("bad", [None, 3, "print", [print]])
def test_listen_rejects_non_callables(bad: Any, clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="listener"):
        resilience.listen(bad)
    with pytest.raises(TypeError, match="listener"):
        CircuitBreaker(clock=clock).listen(bad)
    with pytest.raises(TypeError, match="listener"):
        Retry(clock=clock).listen(bad)


def test_local_listener_sees_only_its_policy(clock: FakeClock) -> None:
    mine = CircuitBreaker("mine", clock=clock)
    other = CircuitBreaker("other", clock=clock)
    events: list[Event] = []
    stop = mine.listen(events.append)
    mine.call(lambda: None)
    other.call(lambda: None)
    with pytest.raises(ConnectionError):
        other.call(boom)
    assert [(e.name, e.type) for e in events] == [("mine", "success")]
    stop()
    mine.call(lambda: None)
    assert len(events) == 1


def test_global_listener_sees_every_policy(clock: FakeClock, received: list[Event]) -> None:
    breaker = CircuitBreaker("b", clock=clock)
    retry = Retry(2, backoff=Constant(1.0), name="r", clock=clock)
    breaker.call(lambda: None)
    with pytest.raises(ConnectionError):
        retry.call(boom)
    assert [(e.kind, e.name, e.type) for e in received] == [
        ("circuit_breaker", "b", "success"),
        ("retry", "r", "retry"),
        ("retry", "r", "give_up"),
    ]


def test_global_and_local_listeners_both_receive_the_same_event(
    clock: FakeClock, received: list[Event]
) -> None:
    breaker = CircuitBreaker("both", clock=clock)
    local: list[Event] = []
    breaker.listen(local.append)
    breaker.call(lambda: None)
    breaker.open()
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: None)
    assert [e.type for e in local] == ["success", "state_change", "rejected"]
    assert len(received) == len(local)
    assert all(g is loc for g, loc in zip(received, local, strict=True))


def test_listener_may_unsubscribe_itself_while_handling_an_event(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    once: list[Event] = []
    always: list[Event] = []

    def one_shot(event: Event) -> None:
        once.append(event)
        stop_once()

    stop_once = breaker.listen(one_shot)
    breaker.listen(always.append)
    breaker.call(lambda: None)
    breaker.call(lambda: None)
    assert len(once) == 1
    assert len(always) == 2


@pytest.mark.anyio
async def test_listeners_receive_events_from_async_calls(
    clock: FakeClock, received: list[Event]
) -> None:
    retry = Retry(3, backoff=Constant(2.0), name="ar", clock=clock)
    local: list[Event] = []
    retry.listen(local.append)
    attempts = [0]

    async def flaky() -> str:
        attempts[0] += 1
        if attempts[0] < 3:
            raise ConnectionError(str(attempts[0]))
        return "ok"

    assert await retry.acall(flaky) == "ok"
    assert [(e.type, e.details) for e in local] == [
        ("retry", RetryScheduled(attempt=1, delay=2.0)),
        ("retry", RetryScheduled(attempt=2, delay=2.0)),
        ("success", RetrySucceeded(attempt=3)),
    ]
    assert received == local


# -- failing listeners ----------------------------------------------------------------


def test_failing_listener_is_logged_and_never_breaks_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("noisy", clock=clock)
    before: list[Event] = []
    after: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    stop_before = resilience.listen(before.append)
    stop_broken = resilience.listen(broken)
    try:
        breaker.listen(broken)
        breaker.listen(after.append)
        with caplog.at_level(logging.ERROR, logger="resilience"):
            assert breaker.call(lambda: "result") == "result"
    finally:
        stop_broken()
        stop_before()

    assert [e.type for e in before] == ["success"]
    assert [e.type for e in after] == ["success"]
    failures = [r for r in caplog.records if r.name == "resilience"]
    assert len(failures) == 2  # the global and the local registration both failed
    for record in failures:
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
        assert "listener" in record.getMessage()


def test_failing_listener_does_not_replace_the_calls_own_exception(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    retry = Retry(2, backoff=Constant(0.0), clock=clock)

    def broken(event: Event) -> None:
        raise ValueError("listener bug")

    retry.listen(broken)
    error = ConnectionError("the call's own error")

    def fn() -> None:
        raise error

    with (
        caplog.at_level(logging.ERROR, logger="resilience"),
        pytest.raises(ConnectionError) as info,
    ):
        retry.call(fn)
    assert info.value is error
    logged = [r for r in caplog.records if r.name == "resilience"]
    assert len(logged) == 2  # "retry" and "give_up"
    assert all(isinstance(r.exc_info[1], ValueError) for r in logged if r.exc_info)


def test_failing_listener_does_not_break_rejections_or_state_changes(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_for=10.0, clock=clock)

    def broken(event: Event) -> None:
        raise RuntimeError(event.type)

    breaker.listen(broken)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: None)
        clock.advance(10.0)
        assert breaker.call(lambda: "trial") == "trial"
    assert breaker.state == "closed"
    messages = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert messages.count("state_change") == 3  # closed->open, open->half_open, ->closed
    assert "rejected" in messages


@pytest.mark.anyio
async def test_failing_listener_never_breaks_an_async_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(clock=clock)
    breaker.listen(lambda event: 1 / 0)

    async def fn() -> int:
        return 7

    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert await breaker.acall(fn) == 7
    assert any(r.exc_info and isinstance(r.exc_info[1], ZeroDivisionError) for r in caplog.records)


# -- the Event type -------------------------------------------------------------------

EVENT_FIELDS = [
    "kind",
    "name",
    "type",
    "time",
    "details",
    "exception",
    "shadow",
    "host",
    "method",
    "status",
]


def test_event_has_the_documented_fields() -> None:
    assert [f.name for f in dataclasses.fields(Event)] == EVENT_FIELDS
    event = Event("retry", "r", "retry", 1.5)
    assert (event.kind, event.name, event.type, event.time) == ("retry", "r", "retry", 1.5)
    for name in EVENT_FIELDS[4:]:
        assert getattr(event, name) is (False if name == "shadow" else None)
    details = RetryScheduled(1, 0.5)
    full = Event("retry", "r", "retry", 1.5, details, ConnectionError(), True, "h", "GET", 503)
    assert [getattr(full, name) for name in EVENT_FIELDS[4:]] == [
        details,
        full.exception,
        True,
        "h",
        "GET",
        503,
    ]
    assert full == Event(
        kind="retry",
        name="r",
        type="retry",
        time=1.5,
        details=details,
        exception=full.exception,
        shadow=True,
        host="h",
        method="GET",
        status=503,
    )


def test_event_is_immutable() -> None:
    event = Event("retry", "r", "retry", 1.5, RetryScheduled(attempt=1, delay=0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.details = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del event.kind  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]
    assert event.details == RetryScheduled(attempt=1, delay=0.5)
    assert event == Event("retry", "r", "retry", 1.5, RetryScheduled(1, 0.5))
    assert hash(event) == hash(Event("retry", "r", "retry", 1.5, RetryScheduled(1, 0.5)))
    assert event != Event("retry", "r", "retry", 1.5, RetryScheduled(1, 0.25))


#: Every details class, with the values of one instance.
DETAILS: dict[type[EventDetails], dict[str, Any]] = {
    resilience.CallOutcome: {"duration": 0.5},
    resilience.Rejected: {"retry_after": 1.0},
    StateChange: {"from_state": "closed", "to_state": "open"},
    RetryScheduled: {"attempt": 1, "delay": 0.5},
    RetrySucceeded: {"attempt": 2},
    resilience.GaveUp: {"attempt": 3},
    resilience.TimedOut: {"limit": 2.0, "abandoned": None},
    resilience.AbandonedFinished: {"duration": 3.0, "abandoned": 0},
    resilience.Acquired: {"waited": 0.0},
    resilience.ReservationCancelled: {"delay": 0.5},
    resilience.BulkheadRejected: {"waited": None},
    resilience.WaitCancelled: {"waited": 0.1},
    resilience.Released: {"held": 0.2},
    resilience.LimitChanged: {"limit": 7},
    resilience.ThrottleRejected: {"probability": 0.25},
    resilience.HedgeLaunched: {"attempt": 2, "delay": 0.05},
    resilience.HedgeWon: {"attempt": 1, "duration": 0.01},
    resilience.LatencyInjected: {"delay": 0.3},
    resilience.StoreRecovered: {"outage": 4.0},
}


def test_every_details_class_is_public_and_listed() -> None:
    public = {
        getattr(resilience, name)
        for name in resilience.__all__
        if isinstance(getattr(resilience, name), type)
        and issubclass(getattr(resilience, name), EventDetails)
    }
    assert public == {EventDetails, *DETAILS}


@pytest.mark.parametrize("cls", list(DETAILS), ids=lambda cls: cls.__name__)
def test_details_are_small_frozen_dataclasses(cls: type[EventDetails]) -> None:
    values = DETAILS[cls]
    assert cls.__doc__
    assert dataclasses.is_dataclass(cls)
    assert [f.name for f in dataclasses.fields(cls)] == list(values)
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == by_position
    assert hash(by_keyword) == hash(by_position)
    assert {name: getattr(by_keyword, name) for name in values} == values
    assert repr(by_keyword) == (
        f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"
    )
    assert not hasattr(by_keyword, "__dict__")
    first = next(iter(values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(by_keyword, first, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(by_keyword, first)
    with pytest.raises(TypeError):
        cls()
    with pytest.raises(TypeError):
        cls(*values.values(), 1)
    assert dataclasses.replace(by_keyword, **values) == by_keyword
    assert pickle.loads(pickle.dumps(by_keyword)) == by_keyword
    assert list(inspect.signature(cls).parameters) == list(values)


def test_events_pickle() -> None:
    event = Event("retry", "r", "retry", 1.5, RetryScheduled(1, 0.5), None, True, "h")
    assert pickle.loads(pickle.dumps(event)) == event


def test_breaker_events_carry_their_details() -> None:
    clock = FakeClock(start=100.0)
    breaker = CircuitBreaker("details", consecutive_failures=1, open_for=30.0, clock=clock)
    events: list[Event] = []
    breaker.listen(events.append)

    def slow_success() -> str:
        clock.advance(2.5)
        return "ok"

    error = ConnectionError("down")

    def slow_failure() -> None:
        clock.advance(1.0)
        raise error

    breaker.call(slow_success)
    with pytest.raises(ConnectionError):
        breaker.call(slow_failure)
    clock.advance(10.0)
    with pytest.raises(CircuitOpen):
        breaker.call(slow_success)

    success, change, failure, rejected = events
    assert (success.kind, success.name, success.type) == ("circuit_breaker", "details", "success")
    assert success.details == CallOutcome(duration=2.5)
    assert success.time == 102.5
    assert success.exception is None
    assert (change.type, change.details) == ("state_change", StateChange("closed", "open"))
    assert change.time == 103.5
    assert change.exception is None
    assert failure.type == "failure"
    assert failure.details == CallOutcome(duration=1.0)
    assert failure.exception is error
    assert rejected.type == "rejected"
    assert rejected.details == Rejected(retry_after=20.0)
    assert rejected.time == 113.5


def test_ignored_outcome_event(clock: FakeClock) -> None:
    breaker = CircuitBreaker(ignore=KeyError, clock=clock)
    events: list[Event] = []
    breaker.listen(events.append)

    def fn() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        breaker.call(fn)
    assert [e.type for e in events] == ["ignored"]
    assert isinstance(events[0].exception, KeyError)
    assert events[0].details == CallOutcome(duration=0.0)


def test_retry_events_carry_their_details() -> None:
    clock = FakeClock(start=50.0)
    retry = Retry(3, backoff=Constant(4.0), name="details", clock=clock)
    events: list[Event] = []
    retry.listen(events.append)
    errors = [ConnectionError("1"), ConnectionError("2"), ConnectionError("3")]
    it = iter(errors)

    def fn() -> None:
        raise next(it)

    with pytest.raises(ConnectionError):
        retry.call(fn)
    assert [(e.kind, e.name, e.type, e.details) for e in events] == [
        ("retry", "details", "retry", RetryScheduled(attempt=1, delay=4.0)),
        ("retry", "details", "retry", RetryScheduled(attempt=2, delay=4.0)),
        ("retry", "details", "give_up", GaveUp(attempt=3)),
    ]
    assert [e.exception for e in events] == errors
    assert [e.time for e in events] == [50.0, 54.0, 58.0]


def test_retry_emits_nothing_when_the_first_attempt_succeeds(clock: FakeClock) -> None:
    retry = Retry(3, clock=clock)
    events: list[Event] = []
    retry.listen(events.append)
    assert retry.call(lambda: 1) == 1
    assert events == []


def test_retry_give_up_on_result_has_no_exception(clock: FakeClock) -> None:
    retry = Retry(2, backoff=Constant(1.0), retry_if_result=lambda r: r is None, clock=clock)
    events: list[Event] = []
    retry.listen(events.append)
    assert retry.call(lambda: None) is None
    assert [(e.type, e.details, e.exception) for e in events] == [
        ("retry", RetryScheduled(attempt=1, delay=1.0), None),
        ("give_up", GaveUp(attempt=2), None),
    ]


def test_fallback_queued_and_adaptive_events_carry_their_details(clock: FakeClock) -> None:
    events: list[Event] = []
    fallback = resilience.Fallback("stale", clock=clock)
    fallback.listen(events.append)
    assert fallback.call(boom) == "stale"
    [used] = events
    assert (used.kind, used.type, used.details) == ("fallback", "fallback", None)
    assert isinstance(used.exception, ConnectionError)

    events.clear()
    adaptive = resilience.AdaptiveConcurrency(initial_limit=1, max_queue=0, clock=clock)
    adaptive.listen(events.append)

    def held() -> None:
        clock.advance(0.5)
        with pytest.raises(resilience.BulkheadFull):
            adaptive.call(lambda: None)

    adaptive.call(held)
    assert [(e.kind, e.type, e.details) for e in events] == [
        ("adaptive_concurrency", "acquired", resilience.Acquired(waited=0.0)),
        ("adaptive_concurrency", "rejected", resilience.BulkheadRejected(waited=None)),
        ("adaptive_concurrency", "released", resilience.Released(held=0.5)),
    ]

    events.clear()
    bulkhead = resilience.Bulkhead(1, max_queue=1, max_wait=0, clock=clock)
    bulkhead.listen(events.append)
    with bulkhead, pytest.raises(resilience.BulkheadFull):
        bulkhead.call(lambda: None)  # queued, and max_wait=0 runs out at once
    assert [(e.type, e.details) for e in events] == [
        ("acquired", resilience.Acquired(waited=0.0)),
        ("queued", None),
        ("rejected", resilience.BulkheadRejected(waited=0.0)),
        ("released", resilience.Released(held=0.0)),
    ]


def test_queued_events_have_no_details(clock: FakeClock) -> None:
    events: list[Event] = []
    bulkhead = resilience.Bulkhead(1, max_queue=1, mode="metrics_only", clock=clock)
    bulkhead.listen(events.append)
    with bulkhead:
        assert bulkhead.call(lambda: "over the limit") == "over the limit"
    queued = [e for e in events if e.type == "queued"]
    assert [(e.details, e.exception, e.shadow) for e in queued] == [(None, None, True)]


def test_pipeline_delivers_events_of_its_policies_to_their_listeners(clock: FakeClock) -> None:
    retry = Retry(2, backoff=Constant(0.0), clock=clock)
    breaker = CircuitBreaker(clock=clock)
    retry_events: list[Event] = []
    breaker_events: list[Event] = []
    retry.listen(retry_events.append)
    breaker.listen(breaker_events.append)
    with pytest.raises(ConnectionError):
        Pipeline(retry, breaker).call(boom)
    assert [e.type for e in retry_events] == ["retry", "give_up"]
    assert [e.type for e in breaker_events] == ["failure", "failure"]


# -- nobody listening: no events built ------------------------------------------------


@pytest.fixture
def constructed(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Counts Event constructions by the policies (through the names they use)."""
    made: list[Event] = []

    def counting_event(*args: Any, **kwargs: Any) -> Event:
        event = Event(*args, **kwargs)
        made.append(event)
        return event

    monkeypatch.setattr(resilience._policies.breaker, "Event", counting_event)
    monkeypatch.setattr(resilience._policies.policy, "Event", counting_event)  # Policy._emit_event
    return made


def exercise_sync(clock: FakeClock) -> tuple[CircuitBreaker, Retry]:
    """Every sync event path: breaker success/failure/ignored/rejected/state changes,
    retry retry/give_up/success."""
    breaker = CircuitBreaker(
        consecutive_failures=2, open_for=5.0, ignore=KeyError, slow_call_duration=1.0, clock=clock
    )
    retry = Retry(3, backoff=Constant(1.0), clock=clock)
    breaker.call(lambda: None)

    def ignored() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        breaker.call(ignored)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: None)
    clock.advance(5.0)
    breaker.call(lambda: None)
    breaker.open()
    breaker.close()

    with pytest.raises(ConnectionError):
        retry.call(boom)
    attempts = [0]

    def flaky() -> str:
        attempts[0] += 1
        if attempts[0] < 2:
            raise ConnectionError("once")
        return "ok"

    assert retry.call(flaky) == "ok"
    for _ in retry:  # the attempt iterator
        pass
    return breaker, retry


def test_no_event_is_built_when_nobody_listens(clock: FakeClock, constructed: list[Event]) -> None:
    exercise_sync(clock)
    assert constructed == []


def test_the_counting_hook_does_see_events_when_someone_listens(
    clock: FakeClock, constructed: list[Event]
) -> None:
    """Guards the test above: the hook is where policies build their events."""
    stop = resilience.listen(lambda event: None)
    try:
        exercise_sync(clock)
    finally:
        stop()
    kinds = {(e.kind, e.type) for e in constructed}
    assert ("circuit_breaker", "success") in kinds
    assert ("circuit_breaker", "state_change") in kinds
    assert ("circuit_breaker", "rejected") in kinds
    assert ("retry", "retry") in kinds
    assert ("retry", "give_up") in kinds
    assert ("retry", "success") in kinds


def test_a_listener_on_another_policy_costs_this_one_no_events(
    clock: FakeClock, constructed: list[Event]
) -> None:
    bystander = CircuitBreaker(clock=clock)
    bystander.listen(lambda event: None)
    exercise_sync(clock)
    assert constructed == []


@pytest.mark.anyio
async def test_no_event_is_built_on_async_paths_when_nobody_listens(
    clock: FakeClock, constructed: list[Event]
) -> None:
    breaker = CircuitBreaker(consecutive_failures=1, open_for=1.0, clock=clock)
    retry = Retry(2, backoff=Constant(1.0), clock=clock)

    async def ok() -> int:
        return 1

    async def fails() -> None:
        raise ConnectionError("down")

    assert await breaker.acall(ok) == 1
    with pytest.raises(ConnectionError):
        await breaker.acall(fails)
    with pytest.raises(CircuitOpen):
        await breaker.acall(ok)
    clock.advance(1.0)
    assert await breaker.acall(ok) == 1
    with pytest.raises(ConnectionError):
        await retry.acall(fails)
    assert await Pipeline(retry, breaker).acall(ok) == 1
    assert constructed == []
    assert clock.sleeps == [1.0]
