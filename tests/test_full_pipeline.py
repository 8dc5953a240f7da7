"""The recommended pipeline, Fallback, Retry, CircuitBreaker, TokenBucket, Bulkhead,
Timeout, over a flaky dependency: a scenario written the way a user would tell it.

One FakeClock drives retries, the breaker and the limiter; the timeout and the bulkhead
work in real time, with short waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from resilience import (
    Bulkhead,
    CircuitBreaker,
    Constant,
    Event,
    Fallback,
    Pipeline,
    Retry,
    Timeout,
    TokenBucket,
    listen,
)
from resilience.testing import FakeClock

STALE = "stale"


class Upstream:
    """The dependency: scripted outcomes first, then `mode` for every call."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.mode = "up"
        self.script: list[str] = []
        self.started: list[float] = []  # fake time of every call that reached it
        self.block = threading.Event()
        self.entered = threading.Semaphore(0)

    def _next(self) -> str:
        self.started.append(self.clock.monotonic())
        return self.script.pop(0) if self.script else self.mode

    def __call__(self, sku: str) -> str:
        outcome = self._next()
        if outcome == "down":
            raise ConnectionError("connection refused")
        if outcome == "stall":
            time.sleep(0.6)  # past the Timeout: the caller moves on, this thread finishes
        if outcome == "hold":
            self.entered.release()
            self.block.wait(5)
        return f"stock {sku}"

    async def acall(self, sku: str) -> str:
        outcome = self._next()
        if outcome == "down":
            raise ConnectionError("connection refused")
        if outcome == "stall":
            await anyio.sleep(5)  # cancelled by the Timeout
        if outcome == "hold":
            self.entered.release()
            while not self.block.is_set():
                await anyio.sleep(0.005)
        return f"stock {sku}"


class Shop:
    """The six policies, in the recommended order."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "inventory", failure_rate=0.5, minimum_calls=10, open_for=30, clock=self.clock
        )
        self.limiter = TokenBucket(10, per=1.0, burst=10, clock=self.clock, name="inventory")
        self.bulkhead = Bulkhead(2, name="inventory")
        self.timeout = Timeout(0.25, name="inventory")
        self.retry = Retry(3, backoff=Constant(0.1, max=1.0), clock=self.clock)
        self.pipeline = Pipeline(
            Fallback(STALE),
            self.retry,
            self.breaker,
            self.limiter,
            self.bulkhead,
            self.timeout,
        )
        self.upstream = Upstream(self.clock)


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.upstream.block.set()


def assert_rate_bound(started: list[float], rate: float, burst: float) -> None:
    """Calls that reached the dependency never beat the bucket: over every interval
    between two of them, at most burst + rate * length."""
    for i, first in enumerate(started):
        for j in range(i, len(started)):
            assert j - i + 1 <= burst + rate * (started[j] - first) + 1e-9


def test_sync_story(shop: Shop) -> None:
    upstream, pipeline, clock = shop.upstream, shop.pipeline, shop.clock
    get = pipeline(upstream)  # decorate the dependency's client call

    # Healthy: answers pass straight through.
    assert [get("A") for _ in range(3)] == ["stock A"] * 3
    assert len(upstream.started) == 3

    # A blip: the first attempt fails, the retry (after 0.1 s) succeeds.
    upstream.script = ["down"]
    assert get("A") == "stock A"
    assert len(upstream.started) == 5
    assert clock.sleeps == [0.1]

    # A burst of 15 at one instant: the bucket lets 10 minus those already used through,
    # the rest wait the limiter's retry_after through the Retry, and all succeed.
    assert [get("B") for _ in range(15)] == ["stock B"] * 15
    assert_rate_bound(upstream.started, rate=10, burst=10)
    assert shop.breaker.state == "closed"  # rate limiting is not a dependency failure

    # Outage: every attempt fails; the fallback answers; the breaker opens once the
    # failure rate reaches 50% of the window.
    upstream.mode = "down"
    answers = [get("C") for _ in range(10)]
    assert answers == [STALE] * 10
    assert shop.breaker.state == "open"
    reached = len(upstream.started)
    assert [get("C") for _ in range(5)] == [STALE] * 5
    assert len(upstream.started) == reached  # an open breaker shields the dependency

    # Recovery: after open_for the next call is the trial; it succeeds and closes.
    upstream.mode = "up"
    clock.advance(30)
    assert get("D") == "stock D"
    assert shop.breaker.state == "closed"

    # A stalled attempt: the Timeout gives up on it, the Retry tries again.
    upstream.script = ["stall"]
    assert get("E") == "stock E"
    assert shop.timeout.abandoned <= 1  # the stalled worker may still be finishing

    # Crowding: two calls hold both bulkhead slots; a third is refused at once
    # (BulkheadFull carries no retry hint, so the Retry does not retry it) and the
    # fallback answers for it.
    upstream.script = ["hold", "hold"]
    results: list[str] = []
    holders = [threading.Thread(target=lambda: results.append(get("F"))) for _ in range(2)]
    for holder in holders:
        holder.start()
    for _ in range(2):
        assert upstream.entered.acquire(timeout=5)
    before = len(upstream.started)
    assert get("F") == STALE
    assert len(upstream.started) == before
    upstream.block.set()
    for holder in holders:
        holder.join(5)
    assert results == ["stock F", "stock F"]
    assert shop.bulkhead.in_flight == 0
    assert shop.breaker.state == "closed"


@pytest.mark.anyio
async def test_async_story(shop: Shop) -> None:
    upstream, pipeline, clock = shop.upstream, shop.pipeline, shop.clock
    kinds: list[str] = []

    def record(event: Event) -> None:
        kinds.append(f"{event.kind}:{event.type}")

    stop = listen(record)
    try:
        assert await pipeline.acall(upstream.acall, "A") == "stock A"

        upstream.script = ["down"]
        assert await pipeline.acall(upstream.acall, "A") == "stock A"
        assert "retry:retry" in kinds

        results = [await pipeline.acall(upstream.acall, "B") for _ in range(15)]
        assert results == ["stock B"] * 15
        assert_rate_bound(upstream.started, rate=10, burst=10)
        assert "token_bucket:rejected" in kinds

        upstream.mode = "down"
        assert [await pipeline.acall(upstream.acall, "C") for _ in range(10)] == [STALE] * 10
        assert shop.breaker.state == "open"
        assert "circuit_breaker:state_change" in kinds
        reached = len(upstream.started)
        assert await pipeline.acall(upstream.acall, "C") == STALE
        assert len(upstream.started) == reached

        upstream.mode = "up"
        clock.advance(30)
        assert await pipeline.acall(upstream.acall, "D") == "stock D"
        assert shop.breaker.state == "closed"

        # The stalled attempt is cancelled at the deadline and retried.
        upstream.script = ["stall"]
        with anyio.fail_after(3):  # the test's own guard, far above the 0.25 s timeout
            assert await pipeline.acall(upstream.acall, "E") == "stock E"
        assert "timeout:timeout" in kinds

        upstream.script = ["hold", "hold"]
        held: list[str] = []

        async def hold() -> None:
            held.append(await pipeline.acall(upstream.acall, "F"))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            tasks.start_soon(hold)
            while shop.bulkhead.in_flight < 2:
                await anyio.sleep(0.005)
            assert await pipeline.acall(upstream.acall, "F") == STALE
            assert "bulkhead:rejected" in kinds
            upstream.block.set()
        assert held == ["stock F", "stock F"]
        assert shop.bulkhead.in_flight == 0
        assert "fallback:fallback" in kinds
    finally:
        stop()
