"""AdaptiveConcurrency: a bulkhead whose limit follows latency (AIMD and Gradient)."""

from __future__ import annotations

import importlib.util
import math
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    Bulkhead,
    BulkheadFull,
    Event,
    Gradient,
    LimitChanged,
    TimeoutExceeded,
)
from resilience._core.adaptive import MIN_WINDOW, AIMDState, GradientState, LimitCore
from resilience.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent


def _load_simulation() -> Any:
    """benchmarks/adaptive_sim.py: the simulated server the docs' plot is drawn from."""
    path = ROOT / "benchmarks" / "adaptive_sim.py"
    spec = importlib.util.spec_from_file_location("adaptive_sim", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["adaptive_sim"] = module
    spec.loader.exec_module(module)
    return module


adaptive_sim = _load_simulation()


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"algorithm": "aimd"}, TypeError, r"algorithm must be AIMD\(...\) or Gradient"),
        ({"min_limit": 0}, ValueError, "min_limit must be at least 1, got 0"),
        ({"max_limit": 5, "min_limit": 10, "initial_limit": 10}, ValueError, "max_limit must"),
        ({"initial_limit": 500}, ValueError, r"initial_limit must be within \[min_limit"),
        ({"initial_limit": 2.5}, TypeError, "initial_limit must be an int"),
        ({"max_queue": -1}, ValueError, "max_queue must be at least 0"),
        ({"dropped_on": 1}, TypeError, "dropped_on must be an exception type"),
        ({"dropped_if": 1}, TypeError, "dropped_if must be a callable"),
        ({"mode": "x"}, ValueError, "mode must be"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AdaptiveConcurrency(**kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AIMD(backoff_ratio=1.0), r"backoff_ratio must be a number in \(0, 1\)"),
        (lambda: AIMD(slow_call_duration=0), "slow_call_duration must be greater than 0"),
        (lambda: Gradient(tolerance=0.9), "tolerance must be at least 1"),
        (lambda: Gradient(smoothing=0), r"smoothing must be a number in \(0, 1\]"),
        (lambda: Gradient(probe_interval=0), "probe_interval must be at least 1"),
        (lambda: Gradient(queue_size=0.5), "queue_size must be at least 1"),
        (lambda: Gradient(seed="s"), "seed must be an int or None"),
    ],
)
def test_bad_algorithm_arguments(make: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_defaults_and_repr() -> None:
    adaptive = AdaptiveConcurrency(name="db")
    assert isinstance(adaptive, Bulkhead)
    assert adaptive.kind == "adaptive_concurrency"
    assert (adaptive.limit, adaptive.max_concurrent) == (20, 20)
    assert (adaptive.min_limit, adaptive.max_limit) == (1, 200)
    assert adaptive.algorithm == Gradient()
    assert AIMD() == AIMD(backoff_ratio=0.9)
    assert repr(adaptive).startswith("AdaptiveConcurrency(Gradient(tolerance=1.5")


# -- the algorithms ------------------------------------------------------------------------


def test_aimd_backs_off_on_drops_and_slow_windows_and_grows_when_used() -> None:
    aimd = AIMDState(0.5, slow_call_duration=1.0)
    assert aimd.update(20.0, 0.1, 10, dropped=True) == 10.0
    assert aimd.update(20.0, 1.5, 10, dropped=False) == 10.0  # slower than 1 s
    assert aimd.update(20.0, 0.1, 10, dropped=False) == 21.0  # half used: grow
    assert aimd.update(20.0, 0.1, 9, dropped=False) == 20.0  # app-limited: hold


def test_gradient_settles_where_latency_is_tolerance_times_the_no_load_one() -> None:
    gradient = GradientState(
        2.0, smoothing=1.0, backoff_ratio=0.5, probe_interval=None, queue_size=4, random=lambda: 0
    )
    assert gradient.update(20.0, 0.1, 20, False) == 24.0  # no queueing: + queue_size
    assert gradient.update(24.0, 0.2, 24, False) == 28.0  # 2x no-load: still tolerated
    assert gradient.update(28.0, 0.4, 28, False) == 28 * 0.5 + 4  # 4x: gradient 0.5
    assert gradient.update(18.0, 0.1, 18, True) == 9.0  # a drop backs off
    assert gradient.update(18.0, 0.1, 5, False) == 18.0  # app-limited: hold


def test_gradient_smooths_decreases_only() -> None:
    gradient = GradientState(
        1.0, smoothing=0.25, backoff_ratio=0.9, probe_interval=None, queue_size=2, random=lambda: 0
    )
    gradient.update(10.0, 1.0, 10, False)
    # Latency doubled: target 40 * 0.5 + 2 = 22; a quarter of the way down from 40.
    assert gradient.update(40.0, 2.0, 40, False) == pytest.approx(40 * 0.75 + 22 * 0.25)


def test_gradient_probes_the_no_load_latency_again() -> None:
    gradient = GradientState(
        1.5, smoothing=1.0, backoff_ratio=0.9, probe_interval=3, queue_size=5, random=lambda: 0
    )
    assert gradient.update(10.0, 0.1, 10, False) == 15.0
    assert gradient.update(15.0, 0.1, 15, False) == 20.0
    assert gradient.update(20.0, 0.5, 20, False) == 5.0  # the probe: from queue_size again
    # The dependency is slower now (0.5 s at no load): the new baseline, not a collapse.
    assert gradient.update(5.0, 0.5, 5, False) == 10.0


def test_windows_hold_a_limits_worth_of_samples() -> None:
    core = LimitCore(AIMDState(0.5, None), initial=30, minimum=2, maximum=31)
    for _ in range(29):
        assert core.sample(0.0, 0.1, 30, False) is None
    assert core.sample(0.0, 0.1, 30, False) == 31  # 30 samples: the window ends, +1
    for _ in range(31):
        result = core.sample(0.0, 0.1, 31, False)
    assert result is None  # +1 would pass max_limit: clamped, unchanged
    assert core.limit == 31.0
    for _ in range(30):
        core.sample(1.0, 1.1, 31, dropped=False)
    assert core.sample(1.0, 1.1, 31, dropped=True) == 15  # one drop in the window: halve
    small = LimitCore(AIMDState(0.5, None), initial=1, minimum=1, maximum=5)
    for _ in range(MIN_WINDOW - 1):
        assert small.sample(0.0, 0.1, 1, False) is None
    assert small.sample(0.0, 0.1, 1, False) == 2  # small limits still wait for MIN_WINDOW


def test_calls_admitted_before_a_decrease_do_not_judge_the_new_limit() -> None:
    core = LimitCore(AIMDState(0.5, None), initial=20, minimum=1, maximum=100)
    for _ in range(20):
        core.sample(0.0, 1.0, 20, dropped=False)
    assert core.limit == 21
    for _ in range(21):
        core.sample(2.0, 3.0, 21, dropped=True)  # a window with drops, ending at 3.0
    assert core.limit == 10.5
    for _ in range(50):  # stragglers of the higher limit, started before 3.0: ignored
        assert core.sample(2.5, 4.0, 21, dropped=True) is None
    assert core.limit == 10.5
    for _ in range(11):  # calls admitted under the new limit count again
        core.sample(3.0, 4.0, 10, dropped=False)
    assert core.limit == 11.5


# -- the policy --------------------------------------------------------------------------------


def test_sequential_calls_are_app_limited_and_never_raise_the_limit(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(initial_limit=4, clock=clock)
    for _ in range(200):
        adaptive.call(clock.advance, 0.01)
    assert adaptive.limit == 4


def test_drops_lower_the_limit_and_emit_limit_changes(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(AIMD(backoff_ratio=0.5), initial_limit=16, clock=clock)
    seen: list[Event] = []
    adaptive.listen(lambda e: seen.append(e) if e.type == "limit_change" else None)

    def times_out() -> None:
        raise TimeoutExceeded("t", 1.0)

    for _ in range(16):
        with pytest.raises(TimeoutExceeded):
            adaptive.call(times_out)
    assert adaptive.limit == 8
    assert [(e.kind, e.details) for e in seen] == [("adaptive_concurrency", LimitChanged(limit=8))]
    for _ in range(10):
        with pytest.raises(TimeoutExceeded):
            adaptive.call(times_out)
    assert adaptive.limit == 4


def test_what_counts_as_a_drop(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(
        AIMD(backoff_ratio=0.5),
        initial_limit=10,
        dropped_on=ConnectionError,
        dropped_if=lambda status: status == 503,
        clock=clock,
    )
    for _ in range(10):
        with pytest.raises(KeyError):  # not a drop: a sample like a success
            adaptive.call(_raise, KeyError)
    assert adaptive.limit == 10
    for _ in range(10):
        adaptive.call(lambda: 503)
    assert adaptive.limit == 5
    for _ in range(10):
        with pytest.raises(ConnectionError):
            adaptive.call(_raise, ConnectionError)
    assert adaptive.limit == 2


def _raise(exc: type[BaseException]) -> None:
    raise exc


async def test_async_calls_and_blocks_are_timed(clock: FakeClock, anyio_backend: str) -> None:
    adaptive = AdaptiveConcurrency(
        AIMD(backoff_ratio=0.5, slow_call_duration=1.0), initial_limit=10, clock=clock
    )

    async def slow() -> None:
        clock.advance(2.0)  # slower than slow_call_duration

    for _ in range(5):
        await adaptive.acall(slow)
    for _ in range(5):
        async with adaptive:
            clock.advance(2.0)
    assert adaptive.limit == 5
    for _ in range(10):
        with adaptive:
            clock.advance(2.0)
    assert adaptive.limit == 2
    assert adaptive.in_flight == 0


async def test_a_lower_limit_holds_back_new_calls_until_running_ones_end(
    anyio_backend: str,
) -> None:
    adaptive = AdaptiveConcurrency(initial_limit=4, max_queue=10)
    release = anyio.Event()
    started = []

    async def hold(n: int) -> None:
        started.append(n)
        await release.wait()

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(adaptive.acall, hold, n)
        while len(started) < 4:
            await anyio.sleep(0)
        adaptive._resize(2)  # what a window of slow calls would do
        assert (adaptive.limit, adaptive.in_flight) == (2, 4)
        tg.start_soon(adaptive.acall, hold, 4)
        await anyio.sleep(0.01)
        assert sorted(started) == [0, 1, 2, 3]  # the fifth waits: four run, the limit is 2
        assert adaptive.queued == 1
        release.set()
    assert sorted(started) == [0, 1, 2, 3, 4]
    assert (adaptive.in_flight, adaptive.queued, len(adaptive._core.free)) == (0, 0, 2)


def test_rejects_over_the_limit_without_queue() -> None:
    adaptive = AdaptiveConcurrency(initial_limit=1)
    with adaptive, pytest.raises(BulkheadFull):
        adaptive.call(lambda: None)


def test_threads_never_leak_slots_while_the_limit_moves() -> None:
    adaptive = AdaptiveConcurrency(AIMD(backoff_ratio=0.7), initial_limit=8, max_limit=16)
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()
    running = peak = 0

    def call(drop: bool) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        with lock:
            running -= 1
        if drop:
            raise TimeoutError

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                adaptive.call(call, i % (7 + n) == 0)
            except (BulkheadFull, TimeoutError):
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    resizes = threading.Timer(0.5, stop.set)
    resizes.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert peak <= 16
    core = adaptive._core
    assert (adaptive.in_flight, adaptive.queued) == (0, 0)
    assert len(core.free) == adaptive.limit  # every slot back, the limit's worth


def test_shadow_mode_never_rejects_and_still_adapts(clock: FakeClock) -> None:
    adaptive = AdaptiveConcurrency(
        AIMD(backoff_ratio=0.5), initial_limit=10, mode="metrics_only", clock=clock
    )
    seen: list[Event] = []
    adaptive.listen(seen.append)

    def nested(depth: int) -> int:
        if depth == 0:
            raise TimeoutError  # a drop
        return adaptive.call(nested, depth - 1)

    for _ in range(3):
        with pytest.raises(TimeoutError):
            adaptive.call(nested, 14)  # 15 calls at once: 5 over the limit, none rejected
    assert adaptive.limit < 10
    assert any(e.type == "rejected" and e.shadow for e in seen)
    assert adaptive.in_flight == 0


# -- convergence on a simulated server -------------------------------------------------------

# The server (benchmarks/adaptive_sim.py) has 10 workers, then 5, then 10 again; each
# request takes 50 ms of a worker; the client offers 1.5 times what 10 workers serve.
SCHEDULE = ((0.0, 10), (20.0, 5), (40.0, 10))
SERVICE = 0.05


def settled(trace: Any, start: float, end: float) -> list[int]:
    """The limits of the last 8 seconds of a phase."""
    return trace.limits_between(end - 8, end)


@pytest.mark.parametrize(
    "algorithm",
    [Gradient(seed=1), AIMD(slow_call_duration=2 * SERVICE)],
    ids=["gradient", "aimd"],
)
def test_the_limit_converges_to_what_the_server_can_take(algorithm: Any) -> None:
    trace = adaptive_sim.simulate(
        algorithm, schedule=SCHEDULE, seconds=60, service=SERVICE, initial_limit=40, seed=3
    )
    for start, end, capacity in ((0, 20, 10), (20, 40, 5), (40, 60, 10)):
        limits = settled(trace, start, end)
        # Enough to keep every worker busy, never so much that requests pile up: the
        # limit settles between the capacity and about 2.5 times it (latency of 1.5 to 2
        # service times, by design of the algorithms).
        assert capacity <= min(limits), (start, limits)
        assert max(limits) <= 2.5 * capacity + 5, (start, limits)
        goodput = [g for t, g in zip(trace.times, trace.goodput, strict=True) if end - 8 <= t < end]
        assert sum(goodput) / len(goodput) >= 0.9 * capacity / SERVICE  # the server stays busy
    assert trace.dropped == 0
    late = [
        lat
        for t, lat in zip(trace.times, trace.latencies, strict=True)
        if t > 5 and not math.isnan(lat)
    ]
    assert max(late) < 5 * SERVICE  # bounded latency, where no limit would grow it to the timeout


def test_without_a_limit_the_queue_grows_until_requests_time_out() -> None:
    # The reference point: the same server with a fixed limit far above its capacity.
    trace = adaptive_sim.simulate(
        AIMD(),  # no slow_call_duration, and no drop below the 1 s timeout...
        schedule=SCHEDULE,
        seconds=30,
        service=SERVICE,
        initial_limit=400,
        max_limit=400,
        seed=3,
    )
    assert max(trace.latencies[5:]) > 0.9  # ...so latency climbs to the timeout
    assert trace.dropped > 0
