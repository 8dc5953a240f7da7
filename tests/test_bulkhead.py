"""Bulkhead: arguments, admission, the queue, max_wait, cancellation, events, the core.

Calls that must occupy a slot block on a gate the test opens. A slot can also be taken
from the test itself with ``with bulkhead:``, which never blocks while a slot is free.
Timeouts (``max_wait``) use real time, kept small; every real wait in these tests is
either a ``max_wait`` under test or a guard against a hang that working code never
reaches.

Concurrency invariants under many threads and tasks at once are in
``test_bulkhead_concurrency.py``.
"""

from __future__ import annotations

import inspect
import math
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilience
from resilience import (
    Acquired,
    Bulkhead,
    BulkheadFull,
    BulkheadRejected,
    Event,
    Released,
    ResilienceError,
    WaitCancelled,
)
from resilience._core.bulkhead import BulkheadCore, Waiter
from resilience._policies.bulkhead import _AsyncioWaiter, _ThreadWaiter, _TrioWaiter
from resilience.testing import FakeClock

GUARD = 10.0  # seconds: a guard against a hang, never reached when the code works


class Boom(Exception):
    pass


class Abandoned(BaseException):
    """Not an ``Exception``: like an interrupt."""


def wait_until(condition: Callable[[], bool], timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.0005)


async def await_until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(GUARD):
        while not condition():
            await anyio.sleep(0.0005)


def counts(bulkhead: Bulkhead) -> tuple[int, int]:
    return bulkhead.in_flight, bulkhead.queued


class Caller:
    """A thread calling ``bulkhead.call(fn)``; what it got ends up in ``result``/``error``."""

    def __init__(self, bulkhead: Bulkhead, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(bulkhead, fn), daemon=True)
        self.thread.start()

    def _run(self, bulkhead: Bulkhead, fn: Callable[[], Any]) -> None:
        try:
            self.result = bulkhead.call(fn)
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "caller never finished"


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    stop = resilience.listen(lambda e: seen.append(e) if e.kind == "bulkhead" else None)
    yield seen
    stop()


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


# -- construction ----------------------------------------------------------------------------


def test_defaults() -> None:
    bulkhead = Bulkhead(3)
    assert (bulkhead.max_concurrent, bulkhead.max_queue, bulkhead.max_wait) == (3, 0, None)
    assert bulkhead.name is None
    assert counts(bulkhead) == (0, 0)
    assert bulkhead.kind == "bulkhead"
    assert repr(bulkhead) == "Bulkhead(name=None, max_concurrent=3, max_queue=0, max_wait=None)"


def test_arguments_by_position_and_keyword() -> None:
    bulkhead = Bulkhead(2, 5, timedelta(milliseconds=250), name="db", clock=FakeClock())
    assert (bulkhead.max_concurrent, bulkhead.max_queue, bulkhead.max_wait) == (2, 5, 0.25)
    assert bulkhead.name == "db"
    assert Bulkhead(1, max_wait=0).max_wait == 0.0
    with pytest.raises(TypeError):
        Bulkhead(1, 0, None, "db")  # type: ignore[misc]  # name is keyword-only


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0,), {}, ValueError, "max_concurrent must be at least 1, got 0"),
        ((-2,), {}, ValueError, "max_concurrent must be at least 1, got -2"),
        ((2.0,), {}, TypeError, "max_concurrent must be an int, got 2.0 (float)"),
        ((True,), {}, TypeError, "max_concurrent must be an int, got True (bool)"),
        (("5",), {}, TypeError, "max_concurrent must be an int, got '5' (str)"),
        ((None,), {}, TypeError, "max_concurrent must be an int, got None"),
        ((1, -1), {}, ValueError, "max_queue must be at least 0, got -1"),
        ((1, 1.5), {}, TypeError, "max_queue must be an int, got 1.5 (float)"),
        ((1, None), {}, TypeError, "max_queue must be an int, got None"),
        ((1, 1, -0.5), {}, ValueError, "max_wait must be 0 or more seconds, got -0.5"),
        ((1, 1, math.nan), {}, ValueError, "max_wait must be a finite duration, got nan"),
        ((1, 1, math.inf), {}, ValueError, "max_wait must be a finite duration, got inf"),
        ((1, 1, "1s"), {}, TypeError, "max_wait must be a duration in seconds"),
        ((1, 1, False), {}, TypeError, "max_wait must be a duration in seconds"),
        ((1,), {"max_wait": timedelta(seconds=-1)}, ValueError, "max_wait must be 0 or more"),
        ((1, 1, 1e300), {}, ValueError, "max_wait must be at most"),
        ((1,), {"name": ""}, ValueError, "name must be non-empty"),
        ((1,), {"name": 7}, TypeError, "name must be a str or None, got 7"),
        ((1,), {"clock": object()}, TypeError, "clock must have monotonic()"),
    ],
)
def test_invalid_arguments_name_the_parameter_and_value(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        Bulkhead(*args, **kwargs)
    assert str(info.value).startswith(message)


def test_counts_are_read_only() -> None:
    bulkhead = Bulkhead(1)
    for attribute in ("in_flight", "queued", "max_concurrent", "max_queue", "max_wait"):
        with pytest.raises(AttributeError):
            setattr(bulkhead, attribute, 5)


# -- admission -------------------------------------------------------------------------------


def test_call_passes_arguments_and_result() -> None:
    bulkhead = Bulkhead(1)
    assert bulkhead.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert counts(bulkhead) == (0, 0)


def test_decorated_function_keeps_its_identity() -> None:
    bulkhead = Bulkhead(2)

    @bulkhead
    def add(a: int, b: int) -> int:
        """Adds."""
        return a + b

    @bulkhead
    async def aadd(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert inspect.iscoroutinefunction(aadd)
    assert anyio.run(aadd, 1, 2) == 3


def test_slots_are_counted_while_calls_run() -> None:
    bulkhead = Bulkhead(3)
    seen = []

    def inner() -> None:
        seen.append(counts(bulkhead))

    def outer() -> None:
        seen.append(counts(bulkhead))
        bulkhead.call(inner)

    bulkhead.call(outer)
    assert seen == [(1, 0), (2, 0)]
    assert counts(bulkhead) == (0, 0)


def test_max_queue_zero_rejects_at_once_without_calling(events: list[Event]) -> None:
    bulkhead = Bulkhead(2, name="pool")
    called = []
    with bulkhead, bulkhead:  # both slots taken
        assert counts(bulkhead) == (2, 0)
        # Waiting here would block this thread forever (max_wait=None): the rejection
        # has to be immediate.
        with pytest.raises(BulkheadFull) as info:
            bulkhead.call(called.append, 1)
        with pytest.raises(BulkheadFull):
            anyio.run(bulkhead.acall, anyio.sleep, 0)
        assert counts(bulkhead) == (2, 0)
    assert called == []
    exc = info.value
    assert (exc.name, exc.max_concurrent, exc.max_queue) == ("pool", 2, 0)
    assert isinstance(exc, ResilienceError)
    assert exc.retry_after is None
    assert str(exc) == "bulkhead pool is full (2 running, 0 queued at most)"
    assert pickle.loads(pickle.dumps(exc)).max_concurrent == 2
    rejected = [e for e in events if e.type == "rejected"]
    assert [(e.name, e.details) for e in rejected] == [
        ("pool", BulkheadRejected(waited=None)),
        ("pool", BulkheadRejected(waited=None)),
    ]
    assert counts(bulkhead) == (0, 0)
    assert bulkhead.call(lambda: "free again") == "free again"


def test_a_full_queue_rejects_at_once() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    gate = threading.Event()
    with bulkhead:
        waiting = Caller(bulkhead, lambda: gate.wait(GUARD))
        wait_until(lambda: bulkhead.queued == 1)
        with pytest.raises(BulkheadFull) as info:
            bulkhead.call(lambda: None)
        assert info.value.max_queue == 1
        assert counts(bulkhead) == (1, 1)
    gate.set()
    waiting.join()
    assert waiting.error is None
    assert waiting.result is True
    assert counts(bulkhead) == (0, 0)


def test_exceptions_pass_through_and_free_the_slot() -> None:
    bulkhead = Bulkhead(1)

    def boom() -> None:
        raise Boom("down")

    for _ in range(3):
        with pytest.raises(Boom, match="down"):
            bulkhead.call(boom)
        assert counts(bulkhead) == (0, 0)
    with pytest.raises(Abandoned):
        bulkhead.call(lambda: (_ for _ in ()).throw(Abandoned()))
    assert counts(bulkhead) == (0, 0)
    assert bulkhead.call(lambda: 1) == 1


@pytest.mark.anyio
async def test_async_exceptions_pass_through_and_free_the_slot() -> None:
    bulkhead = Bulkhead(1)

    async def boom() -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom("down")

    for _ in range(3):
        with pytest.raises(Boom):
            await bulkhead.acall(boom)
        assert counts(bulkhead) == (0, 0)
    with pytest.raises(Boom):
        async with bulkhead:
            raise Boom
    assert counts(bulkhead) == (0, 0)


def test_a_slot_freed_goes_to_the_oldest_waiter_not_to_a_newcomer() -> None:
    """Hand-off: when a slot is freed while a thread waits, it goes straight to that
    thread. A newcomer arriving right after, from the thread that freed it (which keeps
    running, while the waiter still has to wake up), finds no free slot and queues."""
    bulkhead = Bulkhead(1, max_queue=1)
    order: list[str] = []
    with bulkhead:
        waiter = Caller(bulkhead, lambda: order.append("waiter"))
        wait_until(lambda: bulkhead.queued == 1)
    # Granted to the waiter as the block exited, whether or not it has run yet.
    assert counts(bulkhead) == (1, 0)
    bulkhead.call(lambda: order.append("newcomer"))
    waiter.join()
    assert order == ["waiter", "newcomer"]
    assert counts(bulkhead) == (0, 0)


@pytest.mark.parametrize("form", ["call", "with", "listened"])
def test_a_slot_in_transit_goes_to_the_waiter(form: str) -> None:
    """A releaser has pushed its slot back but not yet handed it off (the two steps of
    a lock-free release) when a newcomer arrives: the slot still goes to the waiter."""
    bulkhead = Bulkhead(1, max_queue=1)
    core = bulkhead._core
    order: list[str] = []
    assert core.try_acquire()  # a holder
    waiter = Caller(bulkhead, lambda: order.append("waiter"))
    wait_until(lambda: bulkhead.queued == 1)
    core.free.append(None)  # the holder's release, half done
    if form == "call":
        bulkhead.call(order.append, "newcomer")
    elif form == "with":
        with bulkhead:
            order.append("newcomer")
    else:
        stop = bulkhead.listen(lambda event: None)
        bulkhead.call(order.append, "newcomer")
        stop()
    waiter.join()
    assert order == ["waiter", "newcomer"]
    assert counts(bulkhead) == (0, 0)


def test_a_slot_released_while_a_caller_queues_is_not_lost() -> None:
    """A slot pushed back after the newcomer found none, but before it joined the queue
    (so the releaser saw nobody to hand it to), goes to the newcomer at once."""
    core = BulkheadCore(1, 1)
    assert core.try_acquire()

    def make_waiter() -> Waiter:
        core.release()  # races in between: nobody waits yet, so it is not handed off
        return FakeWaiter(1, True)

    assert core.admit(make_waiter) is True
    assert (core.in_flight, core.queued) == (1, 0)


@pytest.mark.anyio
async def test_a_task_is_woken_from_another_thread() -> None:
    """The slot comes free in a thread while the event loop has nothing else to do: the
    wakeup must reach the loop thread-safely (a plain call_soon or Event.set from the
    thread would leave the loop asleep until the guard fires)."""
    bulkhead = Bulkhead(1, max_queue=1)
    gate = threading.Event()
    holder = Caller(bulkhead, lambda: gate.wait(GUARD))
    wait_until(lambda: bulkhead.in_flight == 1)

    def release_once_queued() -> None:
        wait_until(lambda: bulkhead.queued == 1)
        gate.set()

    releaser = threading.Thread(target=release_once_queued)
    releaser.start()
    with anyio.fail_after(GUARD):
        assert await bulkhead.acall(anyio.sleep, 0) is None
    releaser.join()
    holder.join()
    assert counts(bulkhead) == (0, 0)


@pytest.mark.anyio
async def test_tasks_queue_in_arrival_order() -> None:
    bulkhead = Bulkhead(1, max_queue=10)
    started: list[int] = []

    async def work(i: int) -> None:
        started.append(i)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg, bulkhead:
        for i in range(10):
            tg.start_soon(bulkhead.acall, work, i)
            await await_until(lambda i=i: bulkhead.queued == i + 1)  # type: ignore[misc]
        with pytest.raises(BulkheadFull):
            await bulkhead.acall(work, 99)
    assert started == list(range(10))
    assert counts(bulkhead) == (0, 0)


# -- max_wait ----------------------------------------------------------------------------------


def test_max_wait_expires_with_bulkhead_full(events: list[Event]) -> None:
    bulkhead = Bulkhead(1, max_queue=2, max_wait=0.05, name="slow")
    called = []
    with bulkhead:
        started = time.monotonic()
        with pytest.raises(BulkheadFull) as info:
            bulkhead.call(called.append, 1)
        waited = time.monotonic() - started
        assert counts(bulkhead) == (1, 0)  # it left the queue; our slot is still ours
    assert called == []
    assert waited >= 0.04  # it did wait (generous: timers may round)
    assert (info.value.name, info.value.max_queue) == ("slow", 2)
    assert types(events) == ["acquired", "queued", "rejected", "released"]
    rejected = events[2]
    assert isinstance(rejected.details, BulkheadRejected)
    assert rejected.details.waited is not None
    assert rejected.details.waited >= 0.04
    assert counts(bulkhead) == (0, 0)


@pytest.mark.anyio
async def test_max_wait_expires_for_tasks_too(events: list[Event]) -> None:
    bulkhead = Bulkhead(1, max_queue=2, max_wait=0.05)
    called = []

    async def work() -> None:
        called.append(1)

    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.acall(work)
        assert counts(bulkhead) == (1, 0)
    assert called == []
    assert types(events) == ["acquired", "queued", "rejected", "released"]
    details = events[2].details
    assert isinstance(details, BulkheadRejected)
    assert details.waited is not None
    assert details.waited >= 0.04
    await bulkhead.acall(work)
    assert called == [1]


def test_a_waiter_served_before_max_wait_runs() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)
    with bulkhead:
        waiter = Caller(bulkhead, lambda: "served")
        wait_until(lambda: bulkhead.queued == 1)
    waiter.join()
    assert (waiter.result, waiter.error) == ("served", None)


@pytest.mark.anyio
async def test_max_wait_zero_never_waits() -> None:
    bulkhead = Bulkhead(1, max_queue=5, max_wait=0)
    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.acall(anyio.lowlevel.checkpoint)
        with pytest.raises(BulkheadFull):
            await anyio.to_thread.run_sync(bulkhead.call, lambda: None)
        assert counts(bulkhead) == (1, 0)
    assert await bulkhead.acall(anyio.sleep, 0) is None


def test_max_wait_counts_real_seconds_and_the_clock_measures(events: list[Event]) -> None:
    """FakeClock cannot drive a real blocking wait: max_wait elapses in real time. The
    clock timestamps events and measures the wait they report: here virtual time never
    moves, so the waiter reports having waited 0 virtual seconds."""
    clock = FakeClock(100.0)
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.02, clock=clock)
    with bulkhead, pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)
    rejected = events[2]
    assert (rejected.type, rejected.time, rejected.details) == (
        "rejected",
        100.0,
        BulkheadRejected(waited=0.0),
    )
    assert clock.sleeps == []  # the bulkhead never sleeps on the clock


@pytest.mark.anyio
async def test_wait_durations_come_from_the_clock(events: list[Event]) -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(1, max_queue=1, name="io", clock=clock)

    async def work() -> str:
        clock.advance(0.5)  # the call lasts half a virtual second
        return "done"

    async with anyio.create_task_group() as tg, bulkhead:
        tg.start_soon(bulkhead.acall, work)
        await await_until(lambda: bulkhead.queued == 1)
        clock.advance(2.5)  # the queued task waits 2.5 virtual seconds
    assert [(e.type, e.details, e.time) for e in events] == [
        ("acquired", Acquired(waited=0.0), 0.0),  # the block
        ("queued", None, 0.0),
        ("released", Released(held=2.5), 2.5),  # the block: the slot goes to the task...
        ("acquired", Acquired(waited=2.5), 2.5),  # ...which waited 2.5 s
        ("released", Released(held=0.5), 3.0),
    ]
    assert all(e.kind == "bulkhead" and e.name == "io" for e in events)


# -- cancellation --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_queue(events: list[Event]) -> None:
    bulkhead = Bulkhead(1, max_queue=2)
    ran: list[str] = []
    scope = anyio.CancelScope()

    async def work(tag: str) -> None:
        ran.append(tag)

    async def cancelled() -> None:
        with scope:
            await bulkhead.acall(work, "cancelled")

    async with anyio.create_task_group() as tg, bulkhead:
        tg.start_soon(bulkhead.acall, work, "first")
        await await_until(lambda: bulkhead.queued == 1)
        tg.start_soon(cancelled)
        await await_until(lambda: bulkhead.queued == 2)
        scope.cancel()
        await await_until(lambda: bulkhead.queued == 1)
        assert counts(bulkhead) == (1, 1)
    assert ran == ["first"]
    assert scope.cancelled_caught
    assert counts(bulkhead) == (0, 0)
    cancelled_events = [e for e in events if e.type == "cancelled"]
    assert len(cancelled_events) == 1
    assert isinstance(cancelled_events[0].exception, anyio.get_cancelled_exc_class())
    details = cancelled_events[0].details
    assert isinstance(details, WaitCancelled)
    assert details.waited >= 0.0


@pytest.mark.anyio
async def test_a_slot_handed_to_a_waiter_being_cancelled_is_passed_on() -> None:
    """The block exits (granting the slot to A and waking it) and A is cancelled in the
    same step, before it runs. The wakeup and the cancellation race: either A leaves the
    queue and passes the slot on, or it starts its call and is cancelled at the call's
    first checkpoint, freeing the slot in finally. Either way B gets the slot."""
    bulkhead = Bulkhead(1, max_queue=2)
    ran: list[str] = []
    a_scope = anyio.CancelScope()

    async def work(tag: str) -> None:
        ran.append(tag)
        if tag == "A":
            await anyio.sleep_forever()

    async def a() -> None:
        with a_scope:
            await bulkhead.acall(work, "A")

    async with anyio.create_task_group() as tg:
        bulkhead.__enter__()
        tg.start_soon(a)
        await await_until(lambda: bulkhead.queued == 1)
        tg.start_soon(bulkhead.acall, work, "B")
        await await_until(lambda: bulkhead.queued == 2)
        bulkhead.__exit__(None, None, None)  # the slot goes to A...
        assert counts(bulkhead) == (1, 1)
        a_scope.cancel()  # ...cancelled before it could run
    assert ran in (["B"], ["A", "B"])
    assert counts(bulkhead) == (0, 0)
    assert await bulkhead.acall(anyio.sleep, 0) is None


@pytest.mark.anyio
async def test_a_cancelled_running_call_frees_its_slot() -> None:
    bulkhead = Bulkhead(2)

    async def forever() -> None:
        await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(bulkhead.acall, forever)
            tg.start_soon(bulkhead.acall, forever)
            await await_until(lambda: bulkhead.in_flight == 2)
            scope.cancel()
    assert scope.cancelled_caught
    assert counts(bulkhead) == (0, 0)


@pytest.mark.anyio
async def test_cancelling_a_block_frees_its_slot() -> None:
    bulkhead = Bulkhead(1)
    with anyio.move_on_after(0.01):
        async with bulkhead:
            await anyio.sleep_forever()
    assert counts(bulkhead) == (0, 0)


def test_an_interrupted_thread_waiter_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``BaseException`` raised while a thread waits (KeyboardInterrupt in the main
    thread) takes the waiter out of the queue."""
    bulkhead = Bulkhead(1, max_queue=1)

    def interrupted(self: Any, timeout: float | None) -> None:
        assert counts(bulkhead) == (1, 1)
        raise Abandoned

    monkeypatch.setattr(_ThreadWaiter, "wait", interrupted)
    with bulkhead:
        with pytest.raises(Abandoned):
            bulkhead.call(lambda: None)
        assert counts(bulkhead) == (1, 0)
    assert counts(bulkhead) == (0, 0)


def test_a_slot_granted_to_an_interrupted_waiter_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The slot is handed to the waiter just before the interrupt reaches it: the
    waiter owns the slot, so leaving must release it."""
    bulkhead = Bulkhead(1, max_queue=1)

    def granted_then_interrupted(self: Any, timeout: float | None) -> None:
        bulkhead.__exit__(None, None, None)  # the holder leaves: the slot is ours
        assert self.granted
        assert counts(bulkhead) == (1, 0)
        raise Abandoned

    monkeypatch.setattr(_ThreadWaiter, "wait", granted_then_interrupted)
    bulkhead.__enter__()
    with pytest.raises(Abandoned):
        bulkhead.call(lambda: None)
    assert counts(bulkhead) == (0, 0)
    monkeypatch.undo()
    assert bulkhead.call(lambda: "ok") == "ok"


@pytest.mark.anyio
async def test_a_slot_granted_to_a_cancelled_task_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, for a task: the slot arrives just before the task is cancelled."""
    bulkhead = Bulkhead(1, max_queue=1)

    def granted_then_cancelled(self: Any) -> Any:
        async def wait() -> None:
            bulkhead.__exit__(None, None, None)
            assert self.granted
            assert counts(bulkhead) == (1, 0)
            raise Abandoned  # stands for the cancellation (trio's has no constructor)

        return wait()

    monkeypatch.setattr(_AsyncioWaiter, "wait", granted_then_cancelled)
    monkeypatch.setattr(_TrioWaiter, "wait", granted_then_cancelled)
    bulkhead.__enter__()
    with pytest.raises(Abandoned):
        await bulkhead.acall(anyio.sleep, 0)
    assert counts(bulkhead) == (0, 0)
    monkeypatch.undo()
    assert await bulkhead.acall(anyio.sleep, 0) is None


# -- with blocks ---------------------------------------------------------------------------------


def test_with_blocks_nest_and_count() -> None:
    bulkhead = Bulkhead(2)
    with bulkhead as entered:
        assert entered is bulkhead
        with bulkhead:
            assert counts(bulkhead) == (2, 0)
            with pytest.raises(BulkheadFull), bulkhead:
                pass
        assert counts(bulkhead) == (1, 0)
    assert counts(bulkhead) == (0, 0)


def test_exit_without_enter_is_an_error_and_frees_nothing() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        bulkhead.__exit__(None, None, None)
    with bulkhead, pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)  # still one slot, still taken
    assert counts(bulkhead) == (0, 0)


@pytest.mark.anyio
async def test_async_with_waits_for_a_slot() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    order: list[str] = []

    async def second() -> None:
        async with bulkhead:
            order.append("second")

    async with anyio.create_task_group() as tg, bulkhead:
        tg.start_soon(second)
        await await_until(lambda: bulkhead.queued == 1)
        order.append("first")
    assert order == ["first", "second"]
    with pytest.raises(RuntimeError):
        await bulkhead.__aexit__(None, None, None)


def test_block_events_and_durations(events: list[Event]) -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(2, clock=clock)
    with bulkhead:
        clock.advance(1)
        with bulkhead:
            clock.advance(2)
        try:
            with bulkhead:
                raise Boom
        except Boom:
            pass
    assert [(e.type, e.details, type(e.exception)) for e in events] == [
        ("acquired", Acquired(waited=0.0), type(None)),
        ("acquired", Acquired(waited=0.0), type(None)),
        ("released", Released(held=2.0), type(None)),
        ("acquired", Acquired(waited=0.0), type(None)),
        ("released", Released(held=0.0), Boom),
        ("released", Released(held=3.0), type(None)),
    ]


def test_listening_may_start_inside_a_block() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(2, clock=clock)
    seen: list[Event] = []
    with bulkhead:  # entered unobserved
        stop = bulkhead.listen(seen.append)
        with bulkhead:  # observed
            clock.advance(1)
        stop()
        with bulkhead:  # unobserved again, nested in an unobserved block
            pass
    assert [(e.type, e.details) for e in seen] == [
        ("acquired", Acquired(waited=0.0)),
        ("released", Released(held=1.0)),
    ]
    assert counts(bulkhead) == (0, 0)
    stop = bulkhead.listen(seen.append)
    with bulkhead:
        stop()
        with bulkhead:  # unobserved inside an observed block: the pairing holds
            pass
        seen.clear()
        stop = bulkhead.listen(seen.append)
    stop()
    assert [(e.type, e.details) for e in seen] == [("released", Released(held=0.0))]
    assert counts(bulkhead) == (0, 0)


# -- events ---------------------------------------------------------------------------------------


def test_call_events(events: list[Event]) -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(1, name="api", clock=clock)

    def work() -> None:
        clock.advance(0.25)

    bulkhead.call(work)
    with pytest.raises(Boom):
        bulkhead.call(lambda: (_ for _ in ()).throw(Boom()))
    assert [(e.type, e.details, type(e.exception).__name__) for e in events] == [
        ("acquired", Acquired(waited=0.0), "NoneType"),
        ("released", Released(held=0.25), "NoneType"),
        ("acquired", Acquired(waited=0.0), "NoneType"),
        ("released", Released(held=0.0), "Boom"),
    ]


def test_no_listener_no_event_and_local_listeners() -> None:
    bulkhead = Bulkhead(1)
    other = Bulkhead(1)
    seen: list[Event] = []
    stop = bulkhead.listen(seen.append)
    other.call(lambda: None)
    bulkhead.call(lambda: None)
    stop()
    bulkhead.call(lambda: None)
    assert types(seen) == ["acquired", "released"]


def test_a_failing_listener_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    bulkhead = Bulkhead(1)

    def bad(event: Event) -> None:
        raise RuntimeError("listener bug")

    bulkhead.listen(bad)
    assert bulkhead.call(lambda: 5) == 5
    assert counts(bulkhead) == (0, 0)
    assert "listener bug" in caplog.text


# -- the core against a reference model ----------------------------------------------------------


class FakeWaiter(Waiter):
    __slots__ = ("alive", "id", "woken")

    def __init__(self, id: int, alive: bool) -> None:
        super().__init__()
        self.id = id
        self.alive = alive  # False: its event loop is gone, so waking it fails
        self.woken = 0

    def wake(self) -> bool:
        self.woken += 1
        return self.alive


class Model:
    """The contract, plainly: a count of busy slots and a FIFO list of waiters."""

    def __init__(self, slots: int, queue: int) -> None:
        self.slots, self.queue_size = slots, queue
        self.busy = 0
        self.queue: list[int] = []
        self.granted: list[int] = []  # waiters handed a slot, in order
        self.dead: set[int] = set()

    def arrive(self, id: int, alive: bool) -> str:
        if not self.queue and self.busy < self.slots:
            self.busy += 1
            return "run"
        if len(self.queue) >= self.queue_size:
            return "full"
        self.queue.append(id)
        if not alive:
            self.dead.add(id)
        return "queued"

    def free(self) -> None:
        while self.queue:
            id = self.queue.pop(0)
            self.granted.append(id)
            if id not in self.dead:
                return  # the slot is now that waiter's
        self.busy -= 1

    def give_up(self, id: int) -> bool:
        if id in self.queue:
            self.queue.remove(id)
            return False
        return True


@settings(max_examples=300, deadline=None)
@given(
    slots=st.integers(1, 4),
    queue=st.integers(0, 4),
    ops=st.lists(
        st.tuples(st.sampled_from(["arrive", "arrive_dead", "finish", "give_up"]), st.integers()),
        max_size=60,
    ),
)
def test_core_matches_the_model(slots: int, queue: int, ops: list[tuple[str, int]]) -> None:
    core = BulkheadCore(slots, queue)
    model = Model(slots, queue)
    running = 0  # callers holding a slot (fast path or granted and alive)
    waiters: dict[int, FakeWaiter] = {}
    granted: list[int] = []
    next_id = 0
    for op, pick in ops:
        if op in ("arrive", "arrive_dead"):
            alive = op == "arrive"
            next_id += 1
            expected = model.arrive(next_id, alive)
            if core.try_acquire():
                got: Waiter | bool = True
            else:
                got = core.admit(lambda id=next_id, alive=alive: FakeWaiter(id, alive))
            if got is True:
                assert expected == "run"
                running += 1
            elif got is False:
                assert expected == "full"
            else:
                assert expected == "queued"
                assert isinstance(got, FakeWaiter)
                waiters[got.id] = got
        elif op == "finish" and running:
            running -= 1
            before = [w for w in waiters.values() if w.granted]
            core.release()
            model.free()
            for waiter in waiters.values():
                if waiter.granted and waiter not in before:
                    granted.append(waiter.id)
                    assert waiter.woken == 1
                    if waiter.alive:
                        running += 1
        elif op == "give_up":
            queued = [w for w in waiters.values() if not w.granted]
            if queued:
                waiter = queued[pick % len(queued)]
                assert core.withdraw(waiter) is model.give_up(waiter.id) is False
                del waiters[waiter.id]
        assert granted == model.granted
        assert core.queued == len(model.queue)
        assert [w.id for w in core.waiters] == model.queue
        assert core.in_flight == model.busy == running
        # At rest, a free slot and a waiter never coexist: freed slots go to waiters.
        assert not (core.free and core.waiters)


def test_core_withdraw_after_a_grant_reports_the_slot() -> None:
    core = BulkheadCore(1, 1)
    assert core.try_acquire()
    waiter = core.admit(lambda: FakeWaiter(1, True))
    assert isinstance(waiter, FakeWaiter)
    assert not waiter.granted
    core.release()  # handed to the waiter, which has not woken yet
    assert waiter.granted
    assert waiter.woken == 1
    assert (core.in_flight, core.queued) == (1, 0)
    assert core.withdraw(waiter) is True  # it owns the slot: it must release it
    core.release()
    assert (core.in_flight, core.queued) == (0, 0)


def test_core_wakes_waiters_even_if_making_one_fails() -> None:
    core = BulkheadCore(1, 2)
    assert core.try_acquire()
    first = core.admit(lambda: FakeWaiter(1, True))
    assert isinstance(first, FakeWaiter)
    core.free.append(None)  # a releaser between its push and its hand-off

    def broken() -> Waiter:
        raise RuntimeError("no event loop")

    with pytest.raises(RuntimeError):
        core.admit(broken)  # the slot pushed back still reaches the first waiter
    assert first.granted
    assert first.woken == 1
    assert (core.in_flight, core.queued) == (1, 0)


def test_unsupported_async_library_is_an_error() -> None:
    import sniffio

    bulkhead = Bulkhead(1, max_queue=1)

    async def run() -> None:
        token = sniffio.current_async_library_cvar.set("curio")
        try:
            await bulkhead.acall(anyio.sleep, 0)
        finally:
            sniffio.current_async_library_cvar.reset(token)

    with bulkhead, pytest.raises(RuntimeError, match="not in 'curio'"):
        anyio.run(run)
    assert counts(bulkhead) == (0, 0)


# -- bulkheads in a store ----------------------------------------------------------------


def test_bulkheads_with_the_same_key_in_a_memory_store_share_their_slots() -> None:
    from resilience.stores import MemoryStore

    store = MemoryStore()
    one = Bulkhead(2, store=store, name="db")
    two = Bulkhead(2, store=store, key="db")
    alone = Bulkhead(2, store=store)
    assert one.key == two.key == "db"
    with one, two:
        assert one.in_flight == two.in_flight == 2
        with pytest.raises(BulkheadFull):
            one.call(lambda: None)
        assert alone.call(lambda: "own slots") == "own slots"
    assert one.call(lambda: 1) == 1
    with pytest.raises(ValueError, match="bulkhead 'db' already exists"):
        Bulkhead(3, store=store, key="db")
    with pytest.raises(TypeError, match="store must be a bulkhead store"):
        Bulkhead(1, store=object())  # type: ignore[arg-type]
