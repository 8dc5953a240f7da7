"""A simulated overloaded server, and a client that protects it with AdaptiveConcurrency.

The server has ``capacity`` workers; each request takes about ``service`` seconds of
one worker's time (uniformly +-20%); requests beyond the workers wait in an unbounded
FIFO queue, so latency grows with the queue. Its capacity can change during the run
(``schedule``): a deployment that loses half its replicas, then gets them back.

The client sends requests at ``rate_factor`` times what the server can serve (Poisson
arrivals), each through ``Pipeline(AdaptiveConcurrency(...), Timeout(timeout))``: a
call over the limit is shed at once (``BulkheadFull``), a call that takes longer than
``timeout`` is cut and counts as dropped. Without a limit, the queue (and latency)
would grow without bound.

Everything runs with real trio tasks on trio's virtual clock (``MockClock`` with
``autojump_threshold=0``): a run of minutes takes a second or two of real time, and
is reproducible from its seed. The tests (tests/test_adaptive.py) import ``simulate``;
``plot_adaptive.py`` draws its traces for the docs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio
import trio.testing

from resilience import (
    AIMD,
    AdaptiveConcurrency,
    BulkheadFull,
    Gradient,
    Pipeline,
    Timeout,
    TimeoutExceeded,
)
from resilience.testing import LoopClock


@dataclass
class Trace:
    """What a run looked like, sampled every ``step`` seconds."""

    step: float
    times: list[float] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)
    capacities: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # mean of the calls that ended
    goodput: list[float] = field(default_factory=list)  # successful calls per second
    shed: int = 0
    dropped: int = 0
    ok: int = 0

    def limits_between(self, start: float, end: float) -> list[int]:
        return [lim for t, lim in zip(self.times, self.limits, strict=True) if start <= t < end]


def simulate(
    algorithm: AIMD | Gradient,
    *,
    schedule: Sequence[tuple[float, int]] = ((0.0, 40),),
    seconds: float = 120.0,
    service: float = 0.05,
    rate_factor: float = 1.5,
    timeout: float = 1.0,
    initial_limit: int = 20,
    max_limit: int = 400,
    step: float = 1.0,
    seed: int = 1,
) -> Trace:
    """Run the scenario and return its trace. ``schedule`` lists ``(from_second,
    capacity)`` pairs; the request rate follows the largest capacity."""
    rng = random.Random(seed)
    trace = Trace(step)
    peak_capacity = max(capacity for _, capacity in schedule)
    rate = rate_factor * peak_capacity / service  # requests per second offered

    async def main() -> None:
        workers = trio.CapacityLimiter(schedule[0][1])
        adaptive = AdaptiveConcurrency(
            algorithm,
            initial_limit=initial_limit,
            max_limit=max_limit,
            clock=LoopClock(),
        )
        client = Pipeline(adaptive, Timeout(timeout, clock=LoopClock()))
        window: list[float] = []
        successes = 0

        async def server() -> None:
            async with workers:
                await trio.sleep(service * rng.uniform(0.8, 1.2))

        async def request() -> None:
            nonlocal successes
            start = trio.current_time()
            try:
                await client.acall(server)
            except BulkheadFull:
                trace.shed += 1
                return
            except TimeoutExceeded:
                trace.dropped += 1
                window.append(trio.current_time() - start)
                return
            trace.ok += 1
            successes += 1
            window.append(trio.current_time() - start)

        async def capacity_changes() -> None:
            for at, capacity in schedule[1:]:
                await trio.sleep_until(at)
                workers.total_tokens = capacity

        async def sampler() -> None:
            nonlocal successes
            current = schedule[0][1]
            changes = list(schedule)
            while trio.current_time() < seconds:
                await trio.sleep(step)
                now = trio.current_time()
                while changes and changes[0][0] <= now - step / 2:
                    current = changes.pop(0)[1]
                trace.times.append(now)
                trace.limits.append(adaptive.limit)
                trace.capacities.append(current)
                trace.latencies.append(sum(window) / len(window) if window else math.nan)
                trace.goodput.append(successes / step)
                window.clear()
                successes = 0

        async with trio.open_nursery() as nursery:
            nursery.start_soon(capacity_changes)
            nursery.start_soon(sampler)
            while trio.current_time() < seconds:
                await trio.sleep(rng.expovariate(rate))
                nursery.start_soon(request)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trace


if __name__ == "__main__":  # a quick look without matplotlib
    for algo in (Gradient(), AIMD(slow_call_duration=0.1)):
        run = simulate(algo, schedule=((0, 40), (40, 20), (80, 40)), seconds=120)
        print(algo)
        for t, lim, cap, lat, good in zip(
            run.times, run.limits, run.capacities, run.latencies, run.goodput, strict=True
        ):
            if int(t) % 5 == 0:
                print(
                    f"  t={t:5.0f}s capacity={cap:3d} limit={lim:4d} "
                    f"latency={lat * 1000:7.1f}ms goodput={good:6.0f}/s"
                )
        print(f"  ok={run.ok} shed={run.shed} dropped={run.dropped}")
