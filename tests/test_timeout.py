"""Timeout and remaining(): cancellation at the deadline (asyncio and trio), sync worker
threads (abandonment, reuse, context), nested deadlines, events, and pipelines.

Cancellation happens on the event loop's clock and sync waits on real time, so the
tests that watch a timeout fire use short real durations (tens of milliseconds) around
calls that would otherwise block for seconds, and assert what happened (who was
cancelled, which error, in which order), never how precisely it was timed. Where only
``remaining()`` matters, a FakeClock makes the values exact.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import resilience
from resilience import (
    AbandonedFinished,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Pipeline,
    ResilienceError,
    Retry,
    TimedOut,
    Timeout,
    TimeoutExceeded,
    remaining,
)
from resilience._core.deadline import limit
from resilience.testing import FakeClock

SHORT = 0.05  # a timeout that fires (real seconds)
MEDIUM = 0.2  # one that fires, where the call must surely start before it does
LONG = 10.0  # what a blocked call would otherwise take; never actually waited for
PATIENCE = 5.0  # generous bound for "soon" on a loaded machine


class Boom(Exception):
    pass


class Recorder:
    """A listener that records events and lets a test wait for one from another thread."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def wait_for(self, type_: str, count: int = 1, name: str | None = None) -> list[Event]:
        """The events of this type (and policy name), once there are ``count`` of them."""

        def matching() -> list[Event]:
            return [e for e in self.events if e.type == type_ and name in (None, e.name)]

        with self._cond:
            assert self._cond.wait_for(lambda: len(matching()) >= count, PATIENCE), (
                f"no {type_!r} event within {PATIENCE}s: {self.types()}"
            )
            return matching()


def eventually(predicate: Callable[[], bool]) -> bool:
    """Poll ``predicate`` until it is true, for at most PATIENCE seconds."""
    give_up = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    stop = resilience.listen(rec)
    yield rec
    stop()


class Blocker:
    """A sync call that blocks until released; records when it started and finished."""

    def __init__(self, result: Any = "done", error: BaseException | None = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.thread: int | None = None
        self.left_after: float | None = None  # remaining() once released
        self.result = result
        self.error = error

    def __call__(self) -> Any:
        self.thread = threading.get_ident()
        self.started.set()
        try:
            assert self.release.wait(PATIENCE * 2), "never released"
            self.left_after = remaining()
            if self.error is not None:
                raise self.error
            return self.result
        finally:
            self.finished.set()


# -- construction ---------------------------------------------------------------------


def test_seconds_and_defaults() -> None:
    timeout = Timeout(2)
    assert timeout.seconds == 2.0
    assert isinstance(timeout.seconds, float)
    assert timeout.name is None
    assert timeout.kind == "timeout"
    assert timeout.abandoned == 0
    assert repr(Timeout(1.5, name="db")) == "Timeout(seconds=1.5, name='db')"
    assert Timeout(timedelta(milliseconds=250)).seconds == 0.25


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0,), {}, ValueError, r"seconds must be greater than 0 seconds, got 0"),
        ((-1.5,), {}, ValueError, r"seconds must be greater than 0 seconds, got -1\.5"),
        ((timedelta(0),), {}, ValueError, r"seconds must be greater than 0"),
        ((math.nan,), {}, ValueError, r"seconds must be a finite duration, got nan"),
        ((math.inf,), {}, ValueError, r"seconds must be a finite duration, got inf"),
        ((1e12,), {}, ValueError, r"seconds must be at most .*TIMEOUT_MAX.*got 1000000000000\.0"),
        (("2s",), {}, TypeError, r"seconds must be a duration .*got '2s' \(str\)"),
        ((True,), {}, TypeError, r"seconds must be a duration .*got True \(bool\)"),
        ((None,), {}, TypeError, r"seconds must be a duration .*got None"),
        ((1,), {"name": ""}, ValueError, r"name must be non-empty"),
        ((1,), {"name": 3}, TypeError, r"name must be a str or None, got 3 \(int\)"),
        ((1,), {"clock": object()}, TypeError, r"clock must have monotonic\(\)"),
    ],
)
def test_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Timeout(*args, **kwargs)


def test_name_and_clock_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Timeout(1, "name")  # type: ignore[misc]


def test_abandoned_is_read_only() -> None:
    with pytest.raises(AttributeError):
        Timeout(1).abandoned = 3  # type: ignore[misc]


# -- async: cancellation at the deadline ----------------------------------------------------


@pytest.mark.anyio
async def test_async_call_is_cancelled_at_the_deadline() -> None:
    timeout = Timeout(SHORT, name="search")
    seen: list[str] = []

    async def slow() -> str:
        try:
            await anyio.sleep(LONG)
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")
        return "too late"

    started = time.monotonic()
    with pytest.raises(TimeoutExceeded) as info:
        await timeout.acall(slow)
    assert time.monotonic() - started < PATIENCE
    assert seen == ["cancelled", "finally"]
    exc = info.value
    assert (exc.name, exc.timeout) == ("search", SHORT)
    assert isinstance(exc, ResilienceError)
    assert isinstance(exc, TimeoutError)
    assert exc.__context__ is None  # the cancellation stays an internal detail
    assert remaining() is None


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="mock")],
)
@pytest.mark.anyio
async def test_async_deadline_is_on_the_event_loop_clock() -> None:
    # trio's MockClock jumps virtual time forward whenever every task is blocked: an
    # hour-long timeout fires at once, in virtual time. The deadline is the loop's.
    cancelled_at: list[float] = []

    async def forever() -> None:
        try:
            await anyio.sleep(math.inf)
        finally:
            cancelled_at.append(anyio.current_time())

    start = anyio.current_time()
    with pytest.raises(TimeoutExceeded):
        await Timeout(3600).acall(forever)
    assert cancelled_at == [pytest.approx(start + 3600)]


@pytest.mark.anyio
async def test_async_results_and_exceptions_pass_through() -> None:
    timeout = Timeout(LONG)
    error = Boom("down")

    async def ok(x: int, *, y: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x + y

    async def fails() -> None:
        await anyio.lowlevel.checkpoint()
        raise error

    assert await timeout.acall(ok, 1, y=2) == 3
    with pytest.raises(Boom) as info:
        await timeout.acall(fails)
    assert info.value is error
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "fails" in frames


@pytest.mark.anyio
async def test_async_decorator() -> None:
    timeout = Timeout(SHORT)

    @timeout
    async def fetch(delay: float) -> str:
        """Fetch something."""
        await anyio.sleep(delay)
        return "fetched"

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch something."
    assert await fetch(0) == "fetched"
    with pytest.raises(TimeoutExceeded):
        await fetch(LONG)

    class Client:
        @Timeout(SHORT)
        async def get(self, delay: float) -> tuple[Client, str]:
            await anyio.sleep(delay)
            return self, "got"

    client = Client()
    assert await client.get(0) == (client, "got")
    with pytest.raises(TimeoutExceeded):
        await client.get(LONG)


@pytest.mark.anyio
async def test_a_call_that_swallows_its_cancellation_returns_its_result() -> None:
    # As with anyio.fail_after: if the callee catches the cancellation and returns,
    # its result is what the caller gets (it did finish, if late).
    async def stubborn() -> str:
        try:
            await anyio.sleep(LONG)
        except anyio.get_cancelled_exc_class():
            return "finished anyway"
        return "unreachable"

    assert await Timeout(SHORT).acall(stubborn) == "finished anyway"


# -- async: cancellation from outside is not a timeout -----------------------------------


@pytest.mark.anyio
async def test_outer_cancel_scope_is_not_converted(recorder: Recorder) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(LONG)
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise

    with anyio.move_on_after(SHORT) as outer:
        await Timeout(LONG).acall(slow)
        pytest.fail("the outer scope did not cancel the call")
    assert outer.cancelled_caught
    assert seen == ["cancelled"]
    assert recorder.events == []


@pytest.mark.anyio
async def test_task_group_cancellation_is_not_converted() -> None:
    outcomes: list[str] = []

    async def guarded() -> None:
        try:
            await Timeout(LONG).acall(anyio.sleep, LONG)
        except TimeoutExceeded:
            outcomes.append("timeout")
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(guarded)
        await anyio.sleep(SHORT)
        tg.cancel_scope.cancel()
    assert outcomes == ["cancelled"]


@pytest.mark.anyio
async def test_outer_cancellation_wins_when_both_have_fired() -> None:
    # The callee shields itself past both deadlines; when it next checkpoints, both the
    # Timeout's scope and the enclosing one are cancelled: the enclosing one owns it.
    async def shielded() -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(4 * SHORT)
        await anyio.lowlevel.checkpoint()

    with anyio.move_on_after(2 * SHORT) as outer:
        await Timeout(SHORT).acall(shielded)
    assert outer.cancelled_caught


# -- remaining() ---------------------------------------------------------------------------


def test_remaining_is_none_outside_any_timeout() -> None:
    assert remaining() is None


@pytest.mark.anyio
async def test_remaining_in_async_calls(clock: FakeClock) -> None:
    outer, inner, longer = (Timeout(s, clock=clock) for s in (100, 30, 500))
    seen: list[float | None] = []

    async def innermost() -> None:
        seen.append(remaining())  # inner: 30 s from t=10
        clock.advance(5)
        seen.append(remaining())

    async def in_longer() -> None:
        seen.append(remaining())  # 500 s would end after the outer deadline: still outer's

    async def middle() -> None:
        seen.append(remaining())
        clock.advance(10)
        await inner.acall(innermost)
        seen.append(remaining())  # back to the outer deadline
        await longer.acall(in_longer)

    assert remaining() is None
    await outer.acall(middle)
    assert seen == [100.0, 30.0, 25.0, 85.0, 85.0]
    assert remaining() is None


@pytest.mark.anyio
async def test_remaining_is_seen_by_tasks_started_inside_the_call(clock: FakeClock) -> None:
    seen: list[float | None] = []

    async def child() -> None:
        seen.append(remaining())

    async def parent() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)

    await Timeout(7, clock=clock).acall(parent)
    assert seen == [7.0]


@pytest.mark.anyio
async def test_remaining_is_never_negative(clock: FakeClock) -> None:
    async def late() -> float | None:
        clock.advance(60)  # virtual time only: the loop's deadline is far away
        return remaining()

    assert await Timeout(LONG, clock=clock).acall(late) == 0.0


def test_remaining_in_sync_calls_and_on_the_worker_thread(clock: FakeClock) -> None:
    outer, inner, longer = (Timeout(s, clock=clock) for s in (100, 30, 500))
    caller = threading.get_ident()
    seen: list[tuple[float | None, bool]] = []

    def note() -> None:
        seen.append((remaining(), threading.get_ident() != caller))

    def innermost() -> None:
        note()
        clock.advance(5)
        note()

    def middle() -> None:
        note()
        clock.advance(10)
        inner.call(innermost)
        note()
        longer.call(note)

    outer.call(middle)
    assert seen == [
        (100.0, True),
        (30.0, True),
        (25.0, True),
        (85.0, True),
        (85.0, True),
    ]
    assert remaining() is None


def test_the_worker_runs_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller's")

    def read_and_change() -> str:
        value = var.get()
        var.set("worker's")
        return value

    assert Timeout(LONG).call(read_and_change) == "caller's"
    assert var.get() == "caller's"  # the worker's change stays in its copy


# -- nested deadlines -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_nested_outer_deadline_first() -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(LONG)
        finally:
            seen.append("callee exited")

    async def through_inner() -> None:
        try:
            await Timeout(LONG, name="inner").acall(slow)
        except TimeoutExceeded:
            seen.append("inner timed out")  # must not happen: the outer cancelled it
            raise
        except anyio.get_cancelled_exc_class():
            seen.append("inner cancelled")
            raise

    with pytest.raises(TimeoutExceeded) as info:
        await Timeout(SHORT, name="outer").acall(through_inner)
    assert info.value.name == "outer"
    assert seen == ["callee exited", "inner cancelled"]


@pytest.mark.anyio
async def test_async_nested_inner_deadline_first() -> None:
    seen: list[str] = []

    async def through_inner() -> str:
        try:
            await Timeout(SHORT, name="inner").acall(anyio.sleep, LONG)
        except TimeoutExceeded as exc:
            seen.append(f"{exc.name} timed out")
        return "outer goes on"

    assert await Timeout(LONG, name="outer").acall(through_inner) == "outer goes on"
    assert seen == ["inner timed out"]


def test_sync_nested_inner_deadline_first(recorder: Recorder) -> None:
    blocker = Blocker()

    def through_inner() -> str:
        try:
            Timeout(SHORT, name="inner").call(blocker)
        except TimeoutExceeded as exc:
            return f"{exc.name} timed out"
        return "no timeout"

    try:
        assert Timeout(LONG, name="outer").call(through_inner) == "inner timed out"
    finally:
        blocker.release.set()
    recorder.wait_for("abandoned_finished")


def test_sync_inner_timeout_never_extends_the_outer(recorder: Recorder) -> None:
    blocker = Blocker()
    inner = Timeout(LONG, name="inner")
    outer = Timeout(SHORT, name="outer")
    started = time.monotonic()
    try:
        # Both waits end at the outer deadline; either may be noticed first.
        with pytest.raises(TimeoutExceeded):
            outer.call(inner.call, blocker)
        assert time.monotonic() - started < PATIENCE
        # The inner wait was cut to what the outer deadline left: it gave up at that
        # deadline, on the outer's worker, instead of keeping it busy for LONG.
        [inner_timeout] = recorder.wait_for("timeout", name="inner")
        assert isinstance(inner_timeout.details, TimedOut)
        assert inner_timeout.details.limit <= SHORT
        assert not blocker.finished.is_set()
    finally:
        blocker.release.set()
    assert eventually(lambda: outer.abandoned == inner.abandoned == 0)


def test_sync_call_is_not_started_once_the_enclosing_deadline_passed(clock: FakeClock) -> None:
    called: list[int] = []

    def overrun() -> None:
        clock.advance(6)  # the outer 5 s deadline passes (on the shared FakeClock)
        assert remaining() == 0.0
        Timeout(LONG, name="inner", clock=clock).call(called.append, 1)

    with pytest.raises(TimeoutExceeded) as info:
        Timeout(5, name="outer", clock=clock).call(overrun)
    assert (info.value.name, info.value.timeout) == ("inner", 0.0)
    assert called == []


@pytest.mark.anyio
async def test_async_timeout_inside_a_sync_one_is_cut_to_its_deadline(
    recorder: Recorder, anyio_backend: str
) -> None:
    # A sync call that runs an event loop of its own: the async Timeout inside it has
    # 10 s, but the sync one around it leaves it SHORT, and no cancel scope of the sync
    # Timeout can enforce that; the async Timeout cuts its own scope instead.
    outcome: list[tuple[str | None, float]] = []
    done = threading.Event()

    async def inside() -> None:
        try:
            await Timeout(LONG, name="inner").acall(anyio.sleep, LONG)
        except TimeoutExceeded as exc:
            outcome.append((exc.name, exc.timeout))
            raise
        finally:
            done.set()

    def run_loop() -> None:
        anyio.run(inside, backend=anyio_backend)

    # Both waits end at the outer deadline; either may be noticed first.
    with pytest.raises(TimeoutExceeded):
        Timeout(SHORT, name="outer").call(run_loop)
    assert await anyio.to_thread.run_sync(done.wait, PATIENCE)  # long before LONG
    [(name, timeout)] = outcome
    assert name == "inner"
    assert 0 < timeout <= SHORT


def test_async_timeout_inside_an_expired_sync_deadline_does_not_start(clock: FakeClock) -> None:
    called: list[int] = []

    async def record() -> None:
        called.append(1)

    async def inside() -> None:
        await Timeout(LONG, clock=clock).acall(record)

    def overrun() -> None:
        clock.advance(6)
        anyio.run(inside)

    with pytest.raises(TimeoutExceeded) as info:
        Timeout(5, clock=clock).call(overrun)
    assert info.value.timeout == 0.0
    assert called == []


@pytest.mark.anyio
async def test_async_timeout_on_another_threads_loop_is_cut_to_the_outer_deadline(
    anyio_backend: str,
) -> None:
    # An async call hands blocking work to a thread, which runs an event loop of its own
    # with a longer async Timeout. The outer cancel scope cannot cancel that loop (and
    # to_thread waits for the thread): the inner Timeout must stop at the outer deadline.
    done = threading.Event()

    async def on_the_other_loop() -> None:
        try:
            await Timeout(LONG, name="inner").acall(anyio.sleep, LONG)
        finally:
            done.set()

    def in_thread() -> None:
        anyio.run(on_the_other_loop, backend=anyio_backend)

    started = time.monotonic()
    with pytest.raises(TimeoutExceeded):
        await Timeout(SHORT, name="outer").acall(anyio.to_thread.run_sync, in_thread)
    assert time.monotonic() - started < PATIENCE
    assert done.is_set()


# The nesting rule against a reference model: a stack of absolute deadlines, the active
# one is the earliest, and a call under a passed deadline never starts. Time is virtual
# and in steps of 5 s, so any real wait is either 0 or at least 5 s (never hit).


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.integers(0, 30)),
        min_size=1,
        max_size=4,
    )
)
def test_nested_sync_deadlines_match_a_model(levels: list[tuple[int, int]]) -> None:
    clock = FakeClock()
    model: list[float] = []  # absolute deadlines of the enclosing Timeouts
    observed: list[object] = []
    expected: list[object] = []

    def model_remaining() -> float | None:
        return max(0.0, min(model) - clock.monotonic()) if model else None

    def descend(depth: int) -> None:
        observed.append(remaining())
        expected.append(model_remaining())
        if depth == len(levels):
            return
        seconds, advance = (5 * v for v in levels[depth])
        clock.advance(advance)
        left = model_remaining()
        if left is not None and left <= 0:
            expected.append("timeout")
            try:
                Timeout(seconds, clock=clock).call(descend, depth + 1)
            except TimeoutExceeded:
                observed.append("timeout")
            return
        model.append(clock.monotonic() + seconds)
        try:
            Timeout(seconds, clock=clock).call(descend, depth + 1)
        finally:
            model.pop()

    descend(0)
    assert observed == expected


@given(
    outer_at=st.floats(-100, 100),
    now=st.floats(-100, 100),
    seconds=st.floats(0.001, 100),
    outer_loop=st.sampled_from([None, 1, 2]),
    loop=st.sampled_from([None, 1, 2]),
)
def test_limit_never_extends_the_enclosing_deadline(
    outer_at: float, now: float, seconds: float, outer_loop: int | None, loop: int | None
) -> None:
    clock = FakeClock(now)
    outer = (outer_at, clock, outer_loop)
    deadline, wait = limit(outer, clock, now, seconds, loop)
    at = deadline[0]
    # The active deadline is the earlier one; never later than the enclosing one.
    assert at <= outer_at
    assert at == pytest.approx(min(outer_at, now + seconds))
    if deadline is not outer:
        assert deadline == (now + seconds, clock, loop)
        assert wait == seconds
    elif loop is not None and loop == outer_loop:
        assert wait == seconds  # the enclosing cancel scope, on the same loop, fires first
    else:
        assert wait == outer_at - now  # waits exactly until the enclosing deadline
    assert limit(None, clock, now, seconds, loop) == ((now + seconds, clock, loop), seconds)


def test_nested_deadlines_on_different_clocks(clock: FakeClock) -> None:
    # remaining() reads the clock of the Timeout that set the active deadline; an inner
    # Timeout on another clock compares what is left, not raw clock readings.
    seen: list[float | None] = []

    def inside() -> None:
        Timeout(1000).call(lambda: seen.append(remaining()))  # later: the outer stays
        Timeout(LONG).call(lambda: seen.append(remaining()))  # earlier: real time

    Timeout(100, clock=clock).call(inside)
    assert seen[0] == 100.0
    assert seen[1] is not None
    assert LONG - 1 < seen[1] <= LONG


# -- sync: worker threads ------------------------------------------------------------------


def test_sync_results_and_exceptions_pass_through() -> None:
    timeout = Timeout(LONG)
    error = Boom("down")

    def fails() -> None:
        raise error

    assert timeout.call(lambda x, *, y: x + y, 1, y=2) == 3
    with pytest.raises(Boom) as info:
        timeout.call(fails)
    assert info.value is error
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "fails" in frames
    assert frames.index("fails") > frames.index("run")  # the caller's frames come first

    class Stop(BaseException):
        pass

    with pytest.raises(Stop):
        timeout.call(_raise, Stop())


def _raise(exc: BaseException) -> None:
    raise exc


def test_sync_timeout_raises_while_the_worker_finishes_in_the_background(
    recorder: Recorder,
) -> None:
    timeout = Timeout(SHORT, name="report")
    blocker = Blocker(result="late result")
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutExceeded) as info:
            timeout.call(blocker)
        assert time.monotonic() - started < PATIENCE
        assert (info.value.name, info.value.timeout) == ("report", SHORT)
        assert blocker.started.is_set()
        assert not blocker.finished.is_set()
        assert timeout.abandoned == 1
        [event] = recorder.events
        assert (event.kind, event.name, event.type) == ("timeout", "report", "timeout")
        assert event.details == TimedOut(limit=SHORT, abandoned=1)
        assert event.exception is info.value
    finally:
        blocker.release.set()
    [finished] = recorder.wait_for("abandoned_finished")
    assert blocker.finished.is_set()
    assert blocker.left_after == 0.0  # an abandoned call sees its deadline has passed
    assert timeout.abandoned == 0
    assert isinstance(finished.details, AbandonedFinished)
    assert finished.details.abandoned == 0
    assert finished.exception is None
    assert finished.details.duration >= SHORT
    assert recorder.types() == ["timeout", "abandoned_finished"]


def test_abandoned_finished_carries_the_late_exception(recorder: Recorder) -> None:
    timeout = Timeout(SHORT)
    error = Boom("late")
    blocker = Blocker(error=error)
    try:
        with pytest.raises(TimeoutExceeded):
            timeout.call(blocker)
    finally:
        blocker.release.set()
    [finished] = recorder.wait_for("abandoned_finished")
    assert finished.exception is error


def test_abandoned_count_tracks_several_stuck_workers(recorder: Recorder) -> None:
    timeout = Timeout(SHORT)
    blockers = [Blocker() for _ in range(3)]
    try:
        for n, blocker in enumerate(blockers, start=1):
            with pytest.raises(TimeoutExceeded):
                timeout.call(blocker)
            assert timeout.abandoned == n
        assert [e.details for e in recorder.events] == [
            TimedOut(limit=SHORT, abandoned=n) for n in (1, 2, 3)
        ]
        assert len({b.thread for b in blockers}) == 3  # a stuck worker is not reused
        blockers[1].release.set()
        recorder.wait_for("abandoned_finished")
        assert timeout.abandoned == 2
    finally:
        for blocker in blockers:
            blocker.release.set()
    finished = recorder.wait_for("abandoned_finished", 3)
    details = [e.details for e in finished]
    assert all(isinstance(d, AbandonedFinished) for d in details)
    counts = [d.abandoned for d in details if isinstance(d, AbandonedFinished)]
    assert counts[0] == 2
    assert sorted(counts) == [0, 1, 2]
    assert timeout.abandoned == 0


def test_a_stuck_worker_does_not_block_new_calls(recorder: Recorder) -> None:
    timeout = Timeout(SHORT)
    stuck = Blocker()
    try:
        with pytest.raises(TimeoutExceeded):
            timeout.call(stuck)
        threads = {timeout.call(threading.get_ident) for _ in range(5)}
        assert stuck.thread not in threads
        assert not stuck.finished.is_set()
    finally:
        stuck.release.set()
    recorder.wait_for("abandoned_finished")


def test_worker_threads_are_reused() -> None:
    timeout = Timeout(LONG)
    caller = threading.get_ident()
    threads = [timeout.call(threading.get_ident) for _ in range(50)]
    assert caller not in threads
    # Not a thread per call: the worker is back in the pool before the caller gets the
    # result, so sequential calls keep finding it there.
    assert len(set(threads)) <= 3
    workers = [t for t in threading.enumerate() if t.name == "resilience-timeout-worker"]
    assert all(t.daemon for t in workers)


def test_concurrent_sync_calls(recorder: Recorder) -> None:
    timeout = Timeout(2.0)
    stuck = [Blocker() for _ in range(4)]
    results: list[object] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        outcome: object
        try:
            outcome = timeout.call(stuck[n] if n < len(stuck) else lambda: n * n)
        except TimeoutExceeded as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(24)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE * 2)
        timeouts = [r for r in results if isinstance(r, TimeoutExceeded)]
        assert len(timeouts) == len(stuck)
        assert sorted(r for r in results if isinstance(r, int)) == [n * n for n in range(4, 24)]
        assert timeout.abandoned == len(stuck)
    finally:
        for blocker in stuck:
            blocker.release.set()
    recorder.wait_for("abandoned_finished", len(stuck))
    assert timeout.abandoned == 0


def test_a_worker_finishing_as_the_caller_gives_up_is_not_abandoned() -> None:
    # The race between the deadline and the worker's last instruction: whoever claims
    # the job first decides; here the worker did, so the caller takes the outcome.
    from resilience._policies.timeout import _Job

    timeout = Timeout(LONG)
    job = _Job(timeout, contextvars.copy_context(), lambda: None, (), {}, 0.0)
    job.claim.pop()  # the worker's claim
    assert timeout._abandon(job) is None
    assert timeout.abandoned == 0
    job = _Job(timeout, contextvars.copy_context(), lambda: None, (), {}, 0.0)
    assert timeout._abandon(job) == 1
    assert job.claim == []


def test_sync_decorator_on_functions_and_methods() -> None:
    @Timeout(LONG)
    def add(x: int, y: int = 1) -> int:
        """Add."""
        return x + y

    assert add(1) == 2
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert not inspect.iscoroutinefunction(add)

    class Repo:
        @Timeout(LONG)
        def get(self, key: str) -> tuple[Repo, str]:
            return self, key

    repo = Repo()
    assert repo.get("k") == (repo, "k")


# -- events ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_timeout_event(clock: FakeClock) -> None:
    timeout = Timeout(SHORT, name="search", clock=clock)
    events: list[Event] = []
    timeout.listen(events.append)
    clock.advance(42)
    with pytest.raises(TimeoutExceeded) as info:
        await timeout.acall(anyio.sleep, LONG)
    [event] = events
    assert (event.kind, event.name, event.type, event.time) == ("timeout", "search", "timeout", 42)
    assert event.details == TimedOut(limit=SHORT, abandoned=None)
    assert event.exception is info.value


@pytest.mark.anyio
async def test_no_events_without_a_timeout() -> None:
    timeout = Timeout(LONG)
    events: list[Event] = []
    timeout.listen(events.append)
    await timeout.acall(anyio.sleep, 0)
    timeout.call(time.sleep, 0)
    with pytest.raises(Boom):
        timeout.call(_raise, Boom())
    assert events == []


# -- in pipelines ---------------------------------------------------------------------------


def script(*delays: float, result: str = "ok") -> Callable[[], str]:
    """A sync call whose n-th attempt sleeps ``delays[n]`` real seconds."""
    attempts = iter(delays)

    def call() -> str:
        seen.append(remaining())
        delay = next(attempts)
        if delay:
            release.wait(delay)
        return result

    release = threading.Event()
    seen: list[float | None] = []
    call.seen = seen  # type: ignore[attr-defined]
    call.release = release  # type: ignore[attr-defined]
    return call


def test_retry_around_timeout_gives_each_attempt_its_deadline(recorder: Recorder) -> None:
    clock = FakeClock()  # drives Retry's sleeps; the Timeout waits on real time
    pipeline = Pipeline(
        Retry(3, backoff=Constant(1), clock=clock, name="r"), Timeout(MEDIUM, name="t")
    )
    call = script(LONG, LONG, 0)
    started = time.monotonic()
    try:
        assert pipeline.call(call) == "ok"
    finally:
        call.release.set()  # type: ignore[attr-defined]
    assert time.monotonic() - started > 2 * MEDIUM
    # Every attempt had time left, though the first attempt's deadline had long passed
    # when the third began: each attempt gets a deadline of its own.
    seen = call.seen  # type: ignore[attr-defined]
    assert len(seen) == 3
    assert all(left is not None and 0 < left <= MEDIUM for left in seen)
    retries = [e for e in recorder.events if e.kind == "retry" and e.type == "retry"]
    assert [type(e.exception) for e in retries] == [TimeoutExceeded, TimeoutExceeded]
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.anyio
async def test_async_retry_around_timeout(clock: FakeClock) -> None:
    attempts: list[float | None] = []
    cancelled: list[int] = []

    async def flaky() -> str:
        attempts.append(remaining())
        if len(attempts) < 3:
            try:
                await anyio.sleep(LONG)
            except anyio.get_cancelled_exc_class():
                cancelled.append(len(attempts))
                raise
        return "ok"

    pipeline = Pipeline(Retry(3, backoff=Constant(0.5), clock=clock), Timeout(MEDIUM))
    started = time.monotonic()
    assert await pipeline.acall(flaky) == "ok"
    assert time.monotonic() - started > 2 * MEDIUM
    assert cancelled == [1, 2]
    assert all(left is not None and 0 < left <= MEDIUM for left in attempts)
    assert clock.sleeps == [0.5, 0.5]


@pytest.mark.anyio
async def test_timeouts_count_as_breaker_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "dep", failure_rate=None, consecutive_failures=2, open_for=30, clock=clock
    )
    pipeline = Pipeline(breaker, Timeout(SHORT))
    for _ in range(2):
        with pytest.raises(TimeoutExceeded):
            await pipeline.acall(anyio.sleep, LONG)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await pipeline.acall(anyio.sleep, 0)


def test_sync_timeouts_count_as_breaker_failures(clock: FakeClock, recorder: Recorder) -> None:
    breaker = CircuitBreaker(
        "dep", failure_rate=None, consecutive_failures=2, open_for=30, clock=clock
    )
    pipeline = Pipeline(breaker, Timeout(SHORT))
    blocker = Blocker()
    try:
        for _ in range(2):
            with pytest.raises(TimeoutExceeded):
                pipeline.call(blocker)
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            pipeline.call(blocker)
    finally:
        blocker.release.set()
    recorder.wait_for("abandoned_finished", 2)
