"""BulkheadCore.resize (config reloads) against a reference model, and under threads."""

from __future__ import annotations

import contextlib
import random
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import Bulkhead, BulkheadFull
from resilience._core.bulkhead import BulkheadCore

OPS = st.lists(
    st.one_of(
        st.just(("acquire", 0)),
        st.just(("release", 0)),
        st.tuples(st.just("resize"), st.integers(1, 6)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(1, 6), ops=OPS)
def test_resize_against_a_model(start: int, ops: list[tuple[str, int]]) -> None:
    """Without a queue: a call gets a slot iff fewer than ``capacity`` calls run, however
    the capacity changed while they ran."""
    core = BulkheadCore(start, 0)
    capacity, running = start, 0
    for op, size in ops:
        if op == "acquire":
            got = core.try_acquire() or core.admit(lambda: None) is True  # type: ignore[arg-type,return-value]
            assert got == (running < capacity)
            running += got
        elif op == "release" and running:
            core.release()
            running -= 1
        elif op == "resize":
            core.resize(size, 0)
            capacity = size
        assert core.in_flight == running
        assert core.queued == 0
        assert core.max_concurrent == capacity
    while running:
        core.release()
        running -= 1
    assert core.in_flight == 0
    assert len(core.free) == capacity


def test_resizing_under_threads_never_leaks_or_loses_a_slot() -> None:
    bulkhead = Bulkhead(4, max_queue=8, max_wait=2.0)
    lock = threading.Lock()
    running = 0
    over: list[tuple[int, int]] = []
    stop = threading.Event()

    def call() -> None:
        nonlocal running
        with lock:
            running += 1
            # Never more than the largest size the bulkhead has had.
            if running > 6:
                over.append((running, bulkhead.max_concurrent))
        threading.Event().wait(random.random() / 2000)
        with lock:
            running -= 1

    def work() -> None:
        while not stop.is_set():
            with contextlib.suppress(BulkheadFull):
                bulkhead.call(call)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    rng = random.Random(7)
    for _ in range(300):
        bulkhead.reconfigure(
            max_concurrent=rng.randint(1, 6), max_queue=rng.randint(0, 8), max_wait=2.0
        )
        threading.Event().wait(0.0005)
    bulkhead.reconfigure(max_concurrent=3, max_queue=8, max_wait=2.0)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert over == []
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    assert len(bulkhead._core.free) == 3
    # Still works, and still limits.
    assert bulkhead.call(lambda: "ok") == "ok"


def test_shrinking_while_calls_wait_in_the_queue() -> None:
    bulkhead = Bulkhead(2, max_queue=2, max_wait=5.0)
    release = threading.Event()
    entered = threading.Barrier(3)
    order: list[str] = []

    def hold(tag: str) -> None:
        order.append(tag)
        if tag.startswith("first"):
            entered.wait(5)
            release.wait(5)

    holders = [threading.Thread(target=bulkhead.call, args=(hold, f"first{i}")) for i in range(2)]
    for thread in holders:
        thread.start()
    entered.wait(5)
    waiter = threading.Thread(target=bulkhead.call, args=(hold, "queued"))
    waiter.start()
    while bulkhead.queued < 1:
        threading.Event().wait(0.001)
    bulkhead.reconfigure(max_concurrent=1)  # two running, one waiting, one slot now
    assert (bulkhead.in_flight, bulkhead.queued) == (2, 1)
    release.set()
    for thread in [*holders, waiter]:
        thread.join(5)
    assert order[-1] == "queued"  # it ran once the debt was paid
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    assert len(bulkhead._core.free) == 1
