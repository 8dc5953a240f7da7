"""Every public name is documented: on some docs page, and (for the top-level names) in
the overview table of docs/index.md."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import resilience
import resilience.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))
INDEX = (ROOT / "docs" / "index.md").read_text()


@pytest.mark.parametrize("name", resilience.__all__)
def test_top_level_names_are_documented(name: str) -> None:
    assert f"`{name}`" in DOCS
    assert f"`{name}`" in INDEX.split("## What is in the box", 1)[1]


@pytest.mark.parametrize("name", resilience.testing.__all__)
def test_testing_names_are_documented(name: str) -> None:
    assert f"`{name}`" in DOCS or f"`resilience.testing.{name}`" in DOCS


# -- what each public module exports ---------------------------------------------------------

#: The public surface, pinned: a change here is a decision (and a CHANGELOG line), not an
#: accident of a refactoring.
EXPORTS: dict[str, list[str]] = {
    "resilience": [
        "AIMD",
        "AbandonedFinished",
        "Acquired",
        "AdaptiveConcurrency",
        "AdaptiveThrottle",
        "Attempt",
        "Backoff",
        "BreakerMetrics",
        "Bulkhead",
        "BulkheadFull",
        "BulkheadRejected",
        "CallOutcome",
        "Chaos",
        "CircuitBreaker",
        "CircuitOpen",
        "Clock",
        "ConfigError",
        "Constant",
        "CountWindow",
        "DecorrelatedJitter",
        "DescribedPolicy",
        "Event",
        "EventDetails",
        "Exponential",
        "Fallback",
        "GaveUp",
        "Gradient",
        "Hedge",
        "HedgeLaunched",
        "HedgeWon",
        "KeyedPolicy",
        "LatencyInjected",
        "LatencyQuantile",
        "LimitChanged",
        "Linear",
        "Pipeline",
        "PipelineDescription",
        "Policy",
        "RateLimited",
        "Registry",
        "Rejected",
        "Released",
        "ReservationCancelled",
        "ResilienceError",
        "Retry",
        "RetryBudget",
        "RetryScheduled",
        "RetrySucceeded",
        "StateChange",
        "StoreRecovered",
        "SystemClock",
        "ThrottleRejected",
        "Throttled",
        "TimedOut",
        "Timeout",
        "TimeoutExceeded",
        "TokenBucket",
        "WaitCancelled",
        "listen",
        "per_key",
        "remaining",
    ],
    "resilience.errors": [
        "BulkheadFull",
        "CircuitOpen",
        "ConfigError",
        "RateLimited",
        "ResilienceError",
        "Throttled",
        "TimeoutExceeded",
    ],
    "resilience.config": ["Change", "ENV_PREFIX", "PolicyDescription", "Registry"],
    "resilience.testing": ["FakeClock", "LoopClock", "RedisServer"],
    "resilience.cli": ["main"],
    "resilience.stores": [
        "BreakerBackend",
        "BreakerMetrics",
        "BreakerSettings",
        "BreakerStore",
        "BudgetBackend",
        "BudgetSettings",
        "BudgetStore",
        "BulkheadBackend",
        "BulkheadStore",
        "Decision",
        "LimiterBackend",
        "LimiterSettings",
        "LimiterStore",
        "MemoryStore",
        "Permit",
        "Reservation",
        "Take",
        "TransitionCallback",
        "Waiter",
    ],
    "resilience.stores.memory": ["MemoryStore"],
    "resilience.stores.redis": [
        "AsyncRedisStore",
        "BreakerStatus",
        "BucketStatus",
        "BulkheadStatus",
        "RedisStore",
        "StoreOptions",
    ],
    "resilience.http": ["IDEMPOTENT_METHODS", "RETRY_STATUSES", "ResponseError", "idempotent"],
    "resilience.http.httpx": ["AsyncResilientTransport", "ResilientTransport"],
    "resilience.http.aiohttp": ["ResilienceMiddleware"],
    "resilience.metrics.prometheus": ["PrometheusMetrics"],
    "resilience.metrics.opentelemetry": ["OpenTelemetryMetrics"],
    "resilience.metrics.logging": ["LoggingListener"],
}
if sys.version_info >= (3, 11):  # httpx2 needs 3.11
    EXPORTS["resilience.http.httpx2"] = ["AsyncResilientTransport", "ResilientTransport"]


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports_are_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == EXPORTS[module]


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_public_objects_name_a_public_module(module: str) -> None:
    exported = importlib.import_module(module)
    for name in exported.__all__:
        obj = getattr(exported, name)
        home = getattr(obj, "__module__", None)
        if not isinstance(home, str) or not home.startswith("resilience"):
            continue  # constants, and type aliases of other modules' types
        assert not any(part.startswith("_") for part in home.split(".")), (name, home)
        assert getattr(importlib.import_module(home), name) is obj, (name, home)


def test_top_level_objects_report_the_top_level() -> None:
    for name in resilience.__all__:
        obj = getattr(resilience, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "resilience", name
