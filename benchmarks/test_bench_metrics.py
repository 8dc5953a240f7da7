"""What listening costs: a closed breaker, and the recommended pipeline, with and without
listeners, around ``f(x) = x + 1``.

Without listeners a policy takes its fast path and builds no events. A listener makes
every call build its events (a breaker: one per call; the recommended pipeline: a
breaker outcome, a token taken, a bulkhead slot acquired and released) and hand them
over. The rows separate the two costs: a listener that does nothing (the price of the
events themselves), then ``PrometheusMetrics`` (counters and histograms updated per
event) and ``LoggingListener`` (which logs nothing on a successful call).

Listeners are attached to the measured policy (``policy.listen``), not globally, so
that the rest of the run keeps its fast paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.registry import CollectorRegistry

from resilience import Bulkhead, CircuitBreaker, Event, Fallback, Pipeline, Retry, TokenBucket
from resilience.metrics.logging import LoggingListener
from resilience.metrics.prometheus import PrometheusMetrics


def f(x: int) -> int:
    return x + 1


async def af(x: int) -> int:
    return x + 1


def nothing(event: Event) -> None:
    return None


def prometheus() -> PrometheusMetrics:
    return PrometheusMetrics(CollectorRegistry())


def breaker(listener: Callable[[], Any] | None, fn: Callable[..., Any]) -> Callable[[], Any]:
    def make() -> Any:
        policy = CircuitBreaker()
        if listener is not None:
            policy.listen(listener())
        return policy(fn)

    return make


def pipeline(listener: Callable[[], Any] | None, fn: Callable[..., Any]) -> Callable[[], Any]:
    def make() -> Any:
        policy = Pipeline(
            Fallback(None),
            Retry(),
            CircuitBreaker(),
            TokenBucket(1e9, burst=1e9),
            Bulkhead(1_000_000),
        )
        if listener is not None:
            policy.listen(listener())
        return policy(fn)

    return make


def rows(fn: Callable[..., Any], call: str) -> list[tuple[Any, ...]]:
    return [
        ("bare", f"bare call `{call}`", "baseline", lambda: fn),
        ("breaker", "`@CircuitBreaker()`, nobody listening", "ours", breaker(None, fn)),
        (
            "breaker-noop",
            "`@CircuitBreaker()`, a listener that does nothing",
            "ours",
            breaker(lambda: nothing, fn),
        ),
        (
            "breaker-prometheus",
            "`@CircuitBreaker()` + `PrometheusMetrics`",
            "ours",
            breaker(prometheus, fn),
            "primary",
        ),
        (
            "breaker-logging",
            "`@CircuitBreaker()` + `LoggingListener`",
            "ours",
            breaker(LoggingListener, fn),
        ),
        ("pipeline", "recommended pipeline, nobody listening", "ours", pipeline(None, fn)),
        (
            "pipeline-noop",
            "recommended pipeline, a listener that does nothing",
            "ours",
            pipeline(lambda: nothing, fn),
        ),
        (
            "pipeline-prometheus",
            "recommended pipeline + `PrometheusMetrics`",
            "ours",
            pipeline(prometheus, fn),
        ),
    ]


CASES = {"metrics-sync": rows(f, "f(x)"), "metrics-async": rows(af, "await af(x)")}


def test_metrics(case, run_case):
    run_case(case)
