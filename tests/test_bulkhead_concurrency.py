"""Bulkhead under concurrency: one bulkhead (5 slots, 10 queue places) used at once by
200 anyio tasks on the test's event loop (asyncio and trio) and 50 real threads.

Every protected function counts itself in and out, under a lock, with a counter of its
own; the tests never rely on the bulkhead's counts to check the bulkhead. Functions that
must stay in their slot block on gates the test opens, so what the tests assert happens
while nobody can leave a slot.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import anyio.lowlevel
import pytest

from resilience import Bulkhead, BulkheadFull

SLOTS = 5
QUEUE = 10
TASKS = 200
THREADS = 50
GUARD = 20.0  # seconds: a guard against a hang, never reached when the code works


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms, to make races likelier."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


class Occupancy:
    """The test's own count of calls inside the protected function."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.entered = 0
        self.exited = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.entered += 1
            self.peak = max(self.peak, self.now)

    def exit(self) -> None:
        with self.lock:
            self.now -= 1
            self.exited += 1


class Tally:
    """Outcomes counted from many threads and tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.errors: list[BaseException] = []

    def add(self, outcome: str) -> None:
        with self.lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def get(self, outcome: str) -> int:
        with self.lock:
            return self.counts.get(outcome, 0)

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    with anyio.fail_after(GUARD):
        while not condition():
            await anyio.sleep(0.001)


async def join(threads: list[threading.Thread]) -> None:
    await until(lambda: not any(t.is_alive() for t in threads), "threads to finish")


def start_threads(n: int, target: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


async def assert_exactly_capacity(bulkhead: Bulkhead) -> None:
    """Every slot is free: exactly ``max_concurrent`` new calls run at once (one more
    has to wait), they all finish, and the counts are back to 0/0."""
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    n = bulkhead.max_concurrent
    occupancy = Occupancy()
    gate = anyio.Event()

    async def hold() -> None:
        occupancy.enter()
        try:
            await gate.wait()
        finally:
            occupancy.exit()

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(bulkhead.acall, hold)
        await until(lambda: occupancy.now == n)
        assert (bulkhead.in_flight, bulkhead.queued) == (n, 0)
        if bulkhead.max_wait is None:  # one more queues...
            tg.start_soon(bulkhead.acall, hold)
            await until(lambda: bulkhead.queued == 1)
            await anyio.sleep(0.01)  # (a stray free slot would let it in by now)
        else:  # ...or waits in vain
            with pytest.raises(BulkheadFull):
                await bulkhead.acall(hold)
        assert occupancy.now == n
        gate.set()
    assert occupancy.peak == n
    assert occupancy.entered == occupancy.exited
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


# -- the storm -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tasks_and_threads_never_exceed_the_limit() -> None:
    """200 tasks and 50 threads call repeatedly, all at once: never more than 5 inside,
    every call either runs or is rejected, and at the end every slot is free."""
    bulkhead = Bulkhead(SLOTS, max_queue=QUEUE)
    occupancy = Occupancy()
    tally = Tally()
    go = threading.Event()
    rounds = 4

    def sync_work() -> None:
        occupancy.enter()
        try:
            time.sleep(random.choice((0, 0, 0.0002, 0.001)))
        finally:
            occupancy.exit()

    async def async_work() -> None:
        occupancy.enter()
        try:
            for _ in range(random.randrange(4)):
                await anyio.lowlevel.checkpoint()
        finally:
            occupancy.exit()

    def thread_caller(i: int) -> None:
        go.wait(GUARD)
        for _ in range(rounds):
            try:
                bulkhead.call(sync_work)
                tally.add("ran")
            except BulkheadFull:
                tally.add("rejected")
            except BaseException as exc:
                tally.error(exc)

    async def task_caller() -> None:
        await anyio.lowlevel.checkpoint()
        for _ in range(rounds):
            try:
                await bulkhead.acall(async_work)
                tally.add("ran")
            except BulkheadFull:
                tally.add("rejected")

    threads = start_threads(THREADS, thread_caller)
    async with anyio.create_task_group() as tg:
        for _ in range(TASKS):
            tg.start_soon(task_caller)
        go.set()
    await join(threads)

    assert tally.errors == []
    assert tally.get("ran") + tally.get("rejected") == (TASKS + THREADS) * rounds
    assert tally.get("ran") == occupancy.entered == occupancy.exited
    assert tally.get("rejected") > 0  # the storm did overflow the queue...
    assert occupancy.peak == SLOTS  # ...and filled every slot, never more
    await assert_exactly_capacity(bulkhead)


@pytest.mark.anyio
async def test_rejections_are_immediate() -> None:
    """With every slot held and the queue full, every other caller, task or thread, is
    rejected while no slot is freed: nobody waits for a rejection."""
    bulkhead = Bulkhead(SLOTS, max_queue=QUEUE)
    occupancy = Occupancy()
    tally = Tally()
    thread_gate = threading.Event()
    task_gate = anyio.Event()
    rejections: list[BulkheadFull] = []

    def sync_work() -> None:
        occupancy.enter()
        try:
            assert thread_gate.wait(GUARD)
        finally:
            occupancy.exit()

    async def async_work() -> None:
        occupancy.enter()
        try:
            await task_gate.wait()
        finally:
            occupancy.exit()

    def thread_caller(i: int) -> None:
        try:
            bulkhead.call(sync_work)
            tally.add("ran")
        except BulkheadFull as exc:
            rejections.append(exc)
            tally.add("rejected")
        except BaseException as exc:
            tally.error(exc)

    async def task_caller() -> None:
        try:
            await bulkhead.acall(async_work)
            tally.add("ran")
        except BulkheadFull as exc:
            rejections.append(exc)
            tally.add("rejected")

    total = TASKS + THREADS
    async with anyio.create_task_group() as tg:
        threads = start_threads(THREADS, thread_caller)
        for _ in range(TASKS):
            tg.start_soon(task_caller)
        # No gate is open, so no slot can be freed: only immediate rejections add up.
        await until(lambda: tally.get("rejected") == total - SLOTS - QUEUE)
        assert occupancy.now == SLOTS
        assert (bulkhead.in_flight, bulkhead.queued) == (SLOTS, QUEUE)
        assert tally.get("ran") == 0
        thread_gate.set()
        task_gate.set()
    await join(threads)

    assert tally.errors == []
    assert tally.get("ran") == SLOTS + QUEUE
    assert occupancy.peak == SLOTS
    assert all((e.max_concurrent, e.max_queue) == (SLOTS, QUEUE) for e in rejections)
    await assert_exactly_capacity(bulkhead)


# -- FIFO ------------------------------------------------------------------------------------------


class Queued:
    """One caller (a thread or a task) whose call blocks until released."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.thread_gate = threading.Event()
        self.task_gate: anyio.Event | None = None

    def release(self) -> None:
        self.thread_gate.set()
        if self.task_gate is not None:
            self.task_gate.set()


@pytest.mark.anyio
async def test_queue_is_fifo_across_threads_and_tasks() -> None:
    """Callers queue, alternately threads and tasks, in a known order (each one is
    queued before the next arrives); slots are then freed one at a time. Callers start
    in arrival order, newcomers that arrive while others wait queue behind them, and a
    newcomer finding the queue full is rejected."""
    bulkhead = Bulkhead(SLOTS, max_queue=QUEUE)
    occupancy = Occupancy()
    started: list[str] = []
    lock = threading.Lock()
    callers: dict[str, Queued] = {}
    threads: list[threading.Thread] = []

    def sync_work(me: Queued) -> None:
        occupancy.enter()
        with lock:
            started.append(me.tag)
        try:
            assert me.thread_gate.wait(GUARD)
        finally:
            occupancy.exit()

    async def async_work(me: Queued) -> None:
        occupancy.enter()
        with lock:
            started.append(me.tag)
        try:
            assert me.task_gate is not None
            await me.task_gate.wait()
        finally:
            occupancy.exit()

    async with anyio.create_task_group() as tg:

        def arrive(tag: str, as_thread: bool) -> None:
            me = callers[tag] = Queued(tag)
            if as_thread:
                thread = threading.Thread(target=bulkhead.call, args=(sync_work, me))
                thread.start()
                threads.append(thread)
            else:
                me.task_gate = anyio.Event()
                tg.start_soon(bulkhead.acall, async_work, me)

        async def arrive_and_settle(tag: str, as_thread: bool, queued: int) -> None:
            arrive(tag, as_thread)
            await until(lambda: bulkhead.queued == queued)

        for i in range(SLOTS):  # the holders
            arrive(f"holder{i}", as_thread=i % 2 == 0)
        await until(lambda: occupancy.now == SLOTS)
        arrival = []
        for i in range(QUEUE):
            tag = f"{'thread' if i % 2 == 0 else 'task'}{i}"
            await arrive_and_settle(tag, as_thread=i % 2 == 0, queued=i + 1)
            arrival.append(tag)
        with pytest.raises(BulkheadFull):
            await bulkhead.acall(async_work, Queued("rejected"))
        with pytest.raises(BulkheadFull):
            await anyio.to_thread.run_sync(bulkhead.call, sync_work, Queued("rejected"))

        # Free one slot at a time (the longest-running caller's): each time exactly the
        # next caller in arrival order starts. The first few times, a latecomer then
        # takes the queue place that freed up: it must start after everyone before it.
        running = [callers[f"holder{i}"] for i in range(SLOTS)]
        late = 0
        while len(started) < SLOTS + len(arrival):
            n = len(started)
            running.pop(0).release()
            await until(lambda n=n: len(started) == n + 1)
            assert started[-1] == arrival[n - SLOTS]
            running.append(callers[started[-1]])
            if late < 3:
                tag = f"late-{'thread' if late % 2 == 0 else 'task'}{late}"
                await arrive_and_settle(tag, as_thread=late % 2 == 0, queued=bulkhead.queued + 1)
                arrival.append(tag)
                late += 1
        for me in running:
            me.release()
    await join(threads)

    assert started[SLOTS:] == arrival
    assert occupancy.peak == SLOTS
    assert occupancy.entered == occupancy.exited == SLOTS + len(arrival)
    await assert_exactly_capacity(bulkhead)


# -- cancellation storms ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_storm_of_cancellations_leaks_no_slot() -> None:
    """Rounds of 200 tasks, each under a cancel scope cancelled at a random moment
    (while queued, while running, or never), race 50 threads whose calls end and hand
    their slots over from other threads. Afterwards every slot is free."""
    bulkhead = Bulkhead(SLOTS, max_queue=QUEUE)
    occupancy = Occupancy()
    tally = Tally()
    stop = threading.Event()
    rng = random.Random(1234)

    def sync_work() -> None:
        occupancy.enter()
        try:
            time.sleep(rng.choice((0, 0.0001, 0.0005)))
        finally:
            occupancy.exit()

    async def async_work() -> None:
        occupancy.enter()
        try:
            for _ in range(rng.randrange(6)):
                await anyio.lowlevel.checkpoint()
            if rng.random() < 0.3:
                await anyio.sleep_forever()  # only a cancellation gets it out
        finally:
            occupancy.exit()

    def thread_caller(i: int) -> None:
        while not stop.is_set():
            try:
                bulkhead.call(sync_work)
                tally.add("thread ran")
            except BulkheadFull:
                tally.add("thread rejected")
            except BaseException as exc:
                tally.error(exc)
                return

    async def task_caller(scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await bulkhead.acall(async_work)
                tally.add("task ran")
            except BulkheadFull:
                tally.add("task rejected")
                return
        if scope.cancelled_caught:
            tally.add("task cancelled")

    async def canceller(scopes: list[anyio.CancelScope]) -> None:
        order = list(scopes)
        rng.shuffle(order)
        for scope in order:
            for _ in range(rng.randrange(3)):
                await anyio.lowlevel.checkpoint()
            scope.cancel()

    threads = start_threads(THREADS, thread_caller)
    rounds = 0
    try:
        # At least three rounds, and more while no task has been cancelled yet: on a
        # loaded machine the threads can hold every slot and queue place for a whole
        # round, so that every task is turned away before its scope is cancelled.
        while rounds < 3 or (tally.get("task cancelled") == 0 and rounds < 30):
            rounds += 1
            scopes = [anyio.CancelScope() for _ in range(TASKS)]
            async with anyio.create_task_group() as tg:
                for scope in scopes:
                    tg.start_soon(task_caller, scope)
                tg.start_soon(canceller, scopes)
    finally:
        stop.set()
        await join(threads)

    assert tally.errors == []
    assert tally.get("task cancelled") > 0
    assert (
        tally.get("task ran") + tally.get("task rejected") + tally.get("task cancelled")
        == rounds * TASKS
    )
    assert tally.get("thread ran") > 0
    assert occupancy.peak <= SLOTS
    assert occupancy.entered == occupancy.exited
    await assert_exactly_capacity(bulkhead)


@pytest.mark.anyio
async def test_waits_that_time_out_while_slots_are_handed_over_leak_nothing() -> None:
    """Threads and tasks give up waiting (max_wait) just as slots are handed to them,
    over and over: a slot granted to a waiter that has just timed out is used, never
    lost."""
    bulkhead = Bulkhead(2, max_queue=QUEUE, max_wait=0.0005)
    occupancy = Occupancy()
    tally = Tally()
    go = threading.Event()

    def sync_work() -> None:
        occupancy.enter()
        try:
            time.sleep(random.choice((0, 0.0003, 0.0006)))
        finally:
            occupancy.exit()

    async def async_work() -> None:
        occupancy.enter()
        try:
            await anyio.sleep(random.choice((0, 0.0003, 0.0006)))
        finally:
            occupancy.exit()

    def thread_caller(i: int) -> None:
        go.wait(GUARD)
        for _ in range(20):
            try:
                bulkhead.call(sync_work)
                tally.add("ran")
            except BulkheadFull:
                tally.add("rejected")
            except BaseException as exc:
                tally.error(exc)

    async def task_caller() -> None:
        for _ in range(5):
            try:
                await bulkhead.acall(async_work)
                tally.add("ran")
            except BulkheadFull:
                tally.add("rejected")

    threads = start_threads(20, thread_caller)
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(task_caller)
        go.set()
    await join(threads)

    assert tally.errors == []
    assert tally.get("ran") + tally.get("rejected") == 20 * 20 + 100 * 5
    assert tally.get("ran") == occupancy.entered == occupancy.exited
    assert occupancy.peak <= 2
    await assert_exactly_capacity(bulkhead)


def test_threads_only_storm_with_timeouts() -> None:
    """No event loop at all: 50 threads, short max_wait, handing slots to each other."""
    bulkhead = Bulkhead(SLOTS, max_queue=QUEUE, max_wait=0.001)
    occupancy = Occupancy()
    tally = Tally()
    barrier = threading.Barrier(THREADS)

    def sync_work() -> None:
        occupancy.enter()
        try:
            time.sleep(random.choice((0, 0.0002, 0.0008)))
        finally:
            occupancy.exit()

    def caller(i: int) -> None:
        barrier.wait(GUARD)
        for _ in range(20):
            try:
                bulkhead.call(sync_work)
                tally.add("ran")
            except BulkheadFull:
                tally.add("rejected")
            except BaseException as exc:
                tally.error(exc)

    threads = start_threads(THREADS, caller)
    for thread in threads:
        thread.join(GUARD)
        assert not thread.is_alive()
    assert tally.errors == []
    assert tally.get("ran") + tally.get("rejected") == THREADS * 20
    assert occupancy.peak <= SLOTS
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    gate = threading.Event()
    holders = start_threads(SLOTS, lambda i: bulkhead.call(gate.wait, GUARD))
    deadline = time.monotonic() + GUARD
    while bulkhead.in_flight < SLOTS and time.monotonic() < deadline:
        time.sleep(0.001)
    assert (bulkhead.in_flight, bulkhead.queued) == (SLOTS, 0)
    with pytest.raises(BulkheadFull):
        Bulkhead.call(bulkhead, lambda: None)  # max_wait elapses: no slot was left over
    gate.set()
    for thread in holders:
        thread.join(GUARD)
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
