"""CircuitBreaker under concurrency: half-open permits raced by real threads and by anyio
tasks, cancelled or abandoned trials, and outcomes counted from many threads at once.

Trial functions block until every racer has tried (admitted or rejected), so the trials
admitted are all in flight together: nothing is admitted merely because an earlier trial
had already finished. Each test counts admissions itself, inside the called function.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from resilience import (
    CircuitBreaker,
    CircuitOpen,
    CountWindow,
    Event,
    StateChange,
)
from resilience.testing import FakeClock

THREADS = 50
TASKS = 500
JOIN_TIMEOUT = 30.0  # a guard against a hang, never reached when the code works
OPEN_FOR = 30.0


class Boom(Exception):
    pass


class Benign(Exception):
    """Not in ``failure_on``: counts as a success."""


class Skip(Exception):
    """In ``ignore``: no outcome."""


class Abandoned(BaseException):
    """Like a thread interrupted mid-call: not an ``Exception``."""


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms, to make races likelier."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def boom() -> None:
    raise Boom


def open_breaker(clock: FakeClock, half_open_calls: int) -> tuple[CircuitBreaker, list[Event]]:
    """A breaker that one failure opens, opened, with its state changes recorded."""
    breaker = CircuitBreaker(
        "race",
        minimum_calls=1,
        window=CountWindow(100),
        open_for=OPEN_FOR,
        half_open_calls=half_open_calls,
        clock=clock,
    )
    changes: list[Event] = []
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        if event.type == "state_change":
            with lock:
                changes.append(event)

    breaker.listen(on_event)
    trip(breaker, clock)
    return breaker, changes


def trip(breaker: CircuitBreaker, clock: FakeClock) -> None:
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state == "open"
    clock.advance(OPEN_FOR)
    assert breaker.state == "half_open"


def transitions(changes: list[Event]) -> list[tuple[str, str]]:
    details = [e.details for e in changes]
    assert all(isinstance(d, StateChange) for d in details)
    return [(d.from_state, d.to_state) for d in details if isinstance(d, StateChange)]


# -- threads ----------------------------------------------------------------------------


class ThreadTrial:
    """One admitted trial, blocked until the test decides how it ends."""

    def __init__(self) -> None:
        self.fate: Callable[[], Any] | None = None
        self.decided = threading.Event()
        self.done = threading.Event()

    def end(self, fate: Callable[[], Any]) -> None:
        self.fate = fate
        self.decided.set()


class ThreadWave:
    """``n`` threads calling the breaker at once."""

    def __init__(self, breaker: CircuitBreaker, n: int) -> None:
        self.breaker = breaker
        self.n = n
        self.lock = threading.Lock()
        self.tried = 0
        self.all_tried = threading.Event()
        self.trials: list[ThreadTrial] = []
        self.rejected: list[CircuitOpen] = []
        self.results: list[Any] = []
        self.raised: list[BaseException] = []
        self.start_line = threading.Barrier(n)
        self.threads = [threading.Thread(target=self._racer) for _ in range(n)]
        for thread in self.threads:
            thread.start()
        assert self.all_tried.wait(JOIN_TIMEOUT), "racers never all tried"

    def _tick(self) -> None:
        with self.lock:
            self.tried += 1
            if self.tried == self.n:
                self.all_tried.set()

    def _trial(self, trial: ThreadTrial) -> Any:
        with self.lock:
            self.trials.append(trial)
        self._tick()
        assert trial.decided.wait(JOIN_TIMEOUT), "the test never decided the trial's fate"
        assert trial.fate is not None
        return trial.fate()

    def _racer(self) -> None:
        self.start_line.wait(JOIN_TIMEOUT)
        trial = ThreadTrial()
        try:
            result = self.breaker.call(self._trial, trial)
        except CircuitOpen as exc:
            with self.lock:
                self.rejected.append(exc)
            self._tick()
        except BaseException as exc:
            with self.lock:
                self.raised.append(exc)
        else:
            with self.lock:
                self.results.append(result)
        finally:
            trial.done.set()

    def end_all(self, fate: Callable[[], Any]) -> None:
        for trial in self.trials:
            trial.end(fate)
        self.join()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads)


def success() -> str:
    return "ok"


def abandon() -> None:
    raise Abandoned


@pytest.mark.parametrize("half_open_calls", [1, 3])
def test_threads_racing_half_open_get_exactly_the_permits(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    for round_ in range(5):
        wave = ThreadWave(breaker, THREADS)
        assert len(wave.trials) == half_open_calls, f"round {round_}"
        assert len(wave.rejected) == THREADS - half_open_calls
        assert {(e.retry_after, e.state, e.name) for e in wave.rejected} == {
            (0.0, "half_open", "race")
        }
        assert breaker.state == "half_open"
        wave.end_all(success)
        assert wave.results == ["ok"] * half_open_calls
        assert wave.raised == []
        assert breaker.state == "closed"
        m = breaker.metrics()
        assert (m.calls, m.consecutive_opens) == (0, 0)
        trip(breaker, clock)
    assert transitions(changes) == [
        ("closed", "open"),
        *[("open", "half_open"), ("half_open", "closed"), ("closed", "open")] * 5,
    ]


@pytest.mark.parametrize("half_open_calls", [1, 3])
def test_failing_thread_trials_reopen_once(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    wave = ThreadWave(breaker, THREADS)
    assert len(wave.trials) == half_open_calls
    wave.end_all(boom)
    assert len(wave.raised) == half_open_calls
    assert all(isinstance(exc, Boom) for exc in wave.raised)
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2
    assert transitions(changes) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
    ]


@pytest.mark.parametrize("half_open_calls", [1, 3])
def test_abandoned_thread_trials_give_their_permits_back(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    wave = ThreadWave(breaker, THREADS)
    assert len(wave.trials) == half_open_calls
    wave.end_all(abandon)
    assert len(wave.raised) == half_open_calls
    assert all(isinstance(exc, Abandoned) for exc in wave.raised)
    assert breaker.state == "half_open"
    assert breaker.metrics().consecutive_opens == 1

    wave = ThreadWave(breaker, THREADS)  # all the permits are free again
    assert len(wave.trials) == half_open_calls
    assert len(wave.rejected) == THREADS - half_open_calls
    wave.end_all(success)
    assert breaker.state == "closed"
    assert transitions(changes) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_one_abandoned_thread_trial_frees_exactly_one_permit() -> None:
    clock = FakeClock()
    breaker, _ = open_breaker(clock, half_open_calls=3)
    first = ThreadWave(breaker, THREADS)
    assert len(first.trials) == 3
    gone, *staying = first.trials
    gone.end(abandon)
    assert gone.done.wait(JOIN_TIMEOUT)

    second = ThreadWave(breaker, THREADS)  # two trials still in flight: one permit is free
    assert len(second.trials) == 1
    assert len(second.rejected) == THREADS - 1
    for trial in staying:
        trial.end(success)
    first.join()
    assert breaker.state == "half_open"  # two of three trials have succeeded
    second.end_all(success)
    assert breaker.state == "closed"


def test_threads_tripping_a_closed_breaker_open_it_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        minimum_calls=10, failure_rate=0.5, window=CountWindow(100), clock=clock
    )
    changes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        if event.type == "state_change":
            assert isinstance(event.details, StateChange)
            with lock:
                changes.append((event.details.from_state, event.details.to_state))

    breaker.listen(on_event)
    admitted = 0
    outcomes: Counter[str] = Counter()
    start_line = threading.Barrier(THREADS)

    def failing() -> None:
        nonlocal admitted
        with lock:
            admitted += 1
        raise Boom

    def racer() -> None:
        start_line.wait(JOIN_TIMEOUT)
        try:
            breaker.call(failing)
        except Boom:
            kind = "failed"
        except CircuitOpen:
            kind = "rejected"
        with lock:
            outcomes[kind] += 1

    threads = [threading.Thread(target=racer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert outcomes["failed"] == admitted >= 10
    assert outcomes["failed"] + outcomes["rejected"] == THREADS
    assert changes == [("closed", "open")]
    m = breaker.metrics()
    assert (m.state, m.consecutive_opens, m.calls) == ("open", 1, 0)


@pytest.mark.parametrize("window", [CountWindow(10_000), 3600.0], ids=["count", "time"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "failure_if+listener"])
def test_many_threads_never_lose_or_double_count_outcomes(window: Any, plain: bool) -> None:
    threads, per_thread = 32, 250  # 8000 calls: fewer than the count window holds
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate=1.0,
        minimum_calls=1_000_000,  # never opens: every outcome stays in the window
        window=window,
        failure_on=(Boom,),
        ignore=(Skip,),
        failure_if=None if plain else (lambda result: result == "bad"),
        clock=clock,
    )
    lock = threading.Lock()
    events: Counter[str] = Counter()
    if not plain:

        def on_event(event: Event) -> None:
            with lock:
                events[event.type] += 1

        breaker.listen(on_event)

    def call(kind: str) -> str:
        if kind == "boom":
            raise Boom
        if kind == "benign":
            raise Benign
        if kind == "skip":
            raise Skip
        return kind  # "ok", or "bad" (a failure when failure_if is set)

    pattern = ["ok", "boom", "ok", "benign", "skip", "bad", "ok"]
    made: Counter[str] = Counter()
    start_line = threading.Barrier(threads)

    def worker(index: int) -> None:
        mine: Counter[str] = Counter()
        start_line.wait(JOIN_TIMEOUT)
        for i in range(per_thread):
            kind = pattern[(index + i) % len(pattern)]
            with contextlib.suppress(Boom, Benign, Skip):
                assert breaker.call(call, kind) == kind
            mine[kind] += 1
        with lock:
            made.update(mine)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(JOIN_TIMEOUT)
    assert sum(made.values()) == threads * per_thread

    recorded = threads * per_thread - made["skip"]
    failures = made["boom"] + (0 if plain else made["bad"])
    m = breaker.metrics()
    assert m.state == "closed"
    assert (m.calls, m.failures, m.slow_calls) == (recorded, failures, 0)
    assert m.failure_rate == failures / recorded
    if not plain:
        assert events == Counter(
            success=recorded - failures, failure=failures, ignored=made["skip"]
        )


# -- anyio tasks ------------------------------------------------------------------------


class TaskTrial:
    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.fate: Callable[[], Any] | None = None
        self.decided = anyio.Event()
        self.done = anyio.Event()

    def end(self, fate: Callable[[], Any]) -> None:
        self.fate = fate
        self.decided.set()


class TaskWave:
    """``n`` tasks calling the breaker at once, started in the task group ``tg``."""

    def __init__(self, breaker: CircuitBreaker, n: int, tg: anyio.abc.TaskGroup) -> None:
        self.breaker = breaker
        self.n = n
        self.tried = 0
        self.all_tried = anyio.Event()
        self.trials: list[TaskTrial] = []
        self.rejected: list[CircuitOpen] = []
        self.results: list[Any] = []
        self.raised: list[BaseException] = []
        self.finished = 0
        self.all_finished = anyio.Event()
        for _ in range(n):
            tg.start_soon(self._racer)

    def _tick(self) -> None:
        self.tried += 1
        if self.tried == self.n:
            self.all_tried.set()

    async def _trial(self, trial: TaskTrial) -> Any:
        self.trials.append(trial)
        self._tick()
        await trial.decided.wait()
        assert trial.fate is not None
        return trial.fate()

    async def _racer(self) -> None:
        await anyio.lowlevel.checkpoint()  # let every racer start before any calls
        with anyio.CancelScope() as scope:
            trial = TaskTrial(scope)
            try:
                result = await self.breaker.acall(self._trial, trial)
            except CircuitOpen as exc:
                self.rejected.append(exc)
                self._tick()
            except Exception as exc:
                self.raised.append(exc)
            else:
                self.results.append(result)
            finally:
                trial.done.set()
                self.finished += 1
                if self.finished == self.n:
                    self.all_finished.set()

    async def end_all(self, fate: Callable[[], Any]) -> None:
        for trial in self.trials:
            trial.end(fate)
        await self.all_finished.wait()

    async def cancel(self, trials: list[TaskTrial]) -> None:
        for trial in trials:
            trial.scope.cancel()
        for trial in trials:
            await trial.done.wait()


@pytest.mark.anyio
@pytest.mark.parametrize("half_open_calls", [1, 3])
async def test_tasks_racing_half_open_get_exactly_the_permits(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    with anyio.fail_after(JOIN_TIMEOUT):
        for _ in range(2):
            async with anyio.create_task_group() as tg:
                wave = TaskWave(breaker, TASKS, tg)
                await wave.all_tried.wait()
                assert len(wave.trials) == half_open_calls
                assert len(wave.rejected) == TASKS - half_open_calls
                assert {(e.retry_after, e.state) for e in wave.rejected} == {(0.0, "half_open")}
                assert breaker.state == "half_open"
                await wave.end_all(success)
            assert wave.results == ["ok"] * half_open_calls
            assert breaker.state == "closed"
            trip(breaker, clock)
    assert transitions(changes) == [
        ("closed", "open"),
        *[("open", "half_open"), ("half_open", "closed"), ("closed", "open")] * 2,
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("half_open_calls", [1, 3])
async def test_failing_task_trials_reopen_once(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    with anyio.fail_after(JOIN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            wave = TaskWave(breaker, TASKS, tg)
            await wave.all_tried.wait()
            assert len(wave.trials) == half_open_calls
            await wave.end_all(boom)
    assert len(wave.raised) == half_open_calls
    assert breaker.state == "open"
    assert breaker.metrics().consecutive_opens == 2
    assert transitions(changes) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("half_open_calls", [1, 3])
async def test_cancelled_task_trials_give_their_permits_back(half_open_calls: int) -> None:
    clock = FakeClock()
    breaker, changes = open_breaker(clock, half_open_calls)
    with anyio.fail_after(JOIN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            wave = TaskWave(breaker, TASKS, tg)
            await wave.all_tried.wait()
            assert len(wave.trials) == half_open_calls
            await wave.cancel(wave.trials)
        assert all(trial.scope.cancelled_caught for trial in wave.trials)
        assert wave.results == wave.raised == []
        assert breaker.state == "half_open"
        assert breaker.metrics().consecutive_opens == 1

        async with anyio.create_task_group() as tg:
            wave = TaskWave(breaker, TASKS, tg)  # every permit is free again
            await wave.all_tried.wait()
            assert len(wave.trials) == half_open_calls
            assert len(wave.rejected) == TASKS - half_open_calls
            await wave.end_all(success)
    assert breaker.state == "closed"
    assert transitions(changes) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.anyio
async def test_one_cancelled_task_trial_frees_exactly_one_permit() -> None:
    clock = FakeClock()
    breaker, _ = open_breaker(clock, half_open_calls=3)
    with anyio.fail_after(JOIN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            first = TaskWave(breaker, TASKS, tg)
            await first.all_tried.wait()
            assert len(first.trials) == 3
            gone, *staying = first.trials
            await first.cancel([gone])
            assert gone.scope.cancelled_caught

            second = TaskWave(breaker, 100, tg)  # two still in flight: one permit is free
            await second.all_tried.wait()
            assert len(second.trials) == 1
            assert len(second.rejected) == 99

            for trial in staying:
                trial.end(success)
            for trial in staying:
                await trial.done.wait()
            assert breaker.state == "half_open"  # two of three trials have succeeded
            await second.end_all(success)
    assert breaker.state == "closed"


@pytest.mark.anyio
async def test_a_trial_cancelled_from_outside_its_task_group(clock: FakeClock) -> None:
    """Cancelling the whole task group (as a timeout around it would) frees every permit."""
    breaker, _ = open_breaker(clock, half_open_calls=3)
    with anyio.fail_after(JOIN_TIMEOUT):
        with anyio.CancelScope() as outer:
            async with anyio.create_task_group() as tg:
                wave = TaskWave(breaker, TASKS, tg)
                await wave.all_tried.wait()
                assert len(wave.trials) == 3
                outer.cancel()
        assert outer.cancelled_caught
        assert breaker.state == "half_open"
        async with anyio.create_task_group() as tg:
            wave = TaskWave(breaker, TASKS, tg)
            await wave.all_tried.wait()
            assert len(wave.trials) == 3
            await wave.end_all(success)
    assert breaker.state == "closed"
