"""Prometheus metrics and logs of shadow mode, hedging, chaos and the adaptive policies."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import anyio
import pytest
from prometheus_client import CollectorRegistry

import resilience
from resilience import (
    AIMD,
    AdaptiveConcurrency,
    AdaptiveThrottle,
    BulkheadFull,
    Chaos,
    CircuitBreaker,
    CircuitOpen,
    Hedge,
    LatencyQuantile,
    Throttled,
    TimeoutExceeded,
)
from resilience.metrics.logging import LoggingListener
from resilience.metrics.prometheus import PrometheusMetrics
from resilience.testing import FakeClock


@pytest.fixture
def metrics() -> Iterator[tuple[PrometheusMetrics, CollectorRegistry]]:
    registry = CollectorRegistry()
    exporter = PrometheusMetrics(registry)
    stop = resilience.listen(exporter)
    yield exporter, registry
    stop()
    exporter.close()


def value(registry: CollectorRegistry, metric: str, /, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def fail() -> None:
    raise ConnectionError


def test_shadow_rejections_are_counted_apart(
    metrics: tuple[PrometheusMetrics, CollectorRegistry], clock: FakeClock
) -> None:
    _, registry = metrics
    shadow = CircuitBreaker(
        "shadowed", failure_rate=None, consecutive_failures=1, mode="metrics_only", clock=clock
    )
    enforcing = CircuitBreaker("enforced", failure_rate=None, consecutive_failures=1, clock=clock)
    for breaker in (shadow, enforcing):
        with contextlib.suppress(ConnectionError):
            breaker.call(fail)
    shadow.call(lambda: None)
    with pytest.raises(CircuitOpen):
        enforcing.call(lambda: None)
    labels = {"policy": "circuit_breaker", "reason": "open"}
    assert value(registry, "resilience_shadow_rejections_total", name="shadowed", **labels) == 1
    assert not value(registry, "resilience_rejections_total", name="shadowed", **labels)
    assert value(registry, "resilience_rejections_total", name="enforced", **labels) == 1
    assert value(registry, "resilience_shadow_mode", policy="circuit_breaker", name="shadowed") == 1
    assert (
        value(registry, "resilience_shadow_mode", policy="circuit_breaker", name="enforced") is None
    )
    # The state it would be in, as for any breaker.
    assert value(registry, "resilience_circuit_breaker_state", name="shadowed", state="open") == 1


async def test_hedge_metrics(
    metrics: tuple[PrometheusMetrics, CollectorRegistry], anyio_backend: str
) -> None:
    _, registry = metrics
    hedge = Hedge(LatencyQuantile(initial=0.001), name="geo")
    calls = []

    async def lookup() -> str:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep_forever()
        return "ok"

    with anyio.fail_after(5):
        assert await hedge.acall(lookup) == "ok"  # won by the hedge
        assert await hedge.acall(lookup) == "ok"  # won by the first attempt
    assert value(registry, "resilience_hedges_total", name="geo") == 1
    assert value(registry, "resilience_hedge_calls_total", name="geo", outcome="hedge") == 1
    assert value(registry, "resilience_hedge_calls_total", name="geo", outcome="first") == 1
    assert value(registry, "resilience_hedge_delay_seconds", name="geo") == pytest.approx(0.001)


def test_chaos_throttle_and_adaptive_concurrency_metrics(
    metrics: tuple[PrometheusMetrics, CollectorRegistry], clock: FakeClock
) -> None:
    _, registry = metrics
    chaos = Chaos.fault(1.0, ConnectionError, name="flaky")
    for _ in range(3):
        with contextlib.suppress(ConnectionError):
            chaos.call(lambda: None)
    assert value(registry, "resilience_chaos_injections_total", name="flaky", injected="fault") == 3

    throttle = AdaptiveThrottle(name="api", seed=1, clock=clock)
    throttled = 0
    for _ in range(40):
        try:
            throttle.call(fail)
        except Throttled:
            throttled += 1
        except ConnectionError:
            pass
    assert throttled > 0
    labels = {"policy": "adaptive_throttle", "name": "api", "reason": "throttled"}
    assert value(registry, "resilience_rejections_total", **labels) == throttled
    probability = value(registry, "resilience_adaptive_throttle_rejection_probability", name="api")
    assert probability == pytest.approx(throttle.probability)

    adaptive = AdaptiveConcurrency(
        AIMD(backoff_ratio=0.5), initial_limit=10, name="db", clock=clock
    )

    def times_out() -> None:
        raise TimeoutExceeded("db", 1.0)

    for _ in range(10):
        with contextlib.suppress(TimeoutExceeded):
            adaptive.call(times_out)
    assert value(registry, "resilience_adaptive_concurrency_limit", name="db") == 5
    with adaptive:
        assert value(registry, "resilience_adaptive_concurrency_in_flight", name="db") == 1
    calls = {"policy": "adaptive_concurrency", "name": "db"}
    assert value(registry, "resilience_calls_total", outcome="failure", **calls) == 10
    single = AdaptiveConcurrency(initial_limit=1, min_limit=1, name="one")
    with single, pytest.raises(BulkheadFull):
        single.call(lambda: None)
    assert (
        value(
            registry,
            "resilience_rejections_total",
            policy="adaptive_concurrency",
            name="one",
            reason="concurrency_limit",
        )
        == 1
    )


def test_logging_says_what_shadow_mode_would_have_done(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(
        "pay", failure_rate=None, consecutive_failures=1, mode="metrics_only", clock=clock
    )
    stop = breaker.listen(LoggingListener(rejection_interval=0))
    try:
        with caplog.at_level(logging.INFO, logger="resilience.events"):
            with contextlib.suppress(ConnectionError):
                breaker.call(fail)
            breaker.call(lambda: None)
    finally:
        stop()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("INFO", "circuit breaker pay: closed -> open (shadow mode: would be)"),
        (
            "INFO",
            "circuit breaker pay: would have rejected a call, let it run (circuit open, "
            "retry after 30.000s)",
        ),
    ]
    assert all(getattr(r, "resilience_shadow", False) for r in caplog.records)
