"""OpenTelemetryMetrics, read back through the SDK's in-memory metric reader."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import resilience
from resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Rejected,
    Retry,
)
from resilience.metrics.opentelemetry import OpenTelemetryMetrics
from resilience.testing import FakeClock


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    meter_provider = MeterProvider(metric_readers=[reader])
    yield meter_provider
    meter_provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing recorded in this collection
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "resilience"
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), point) for point in metric.data.data_points
                ]
    return found


def fail() -> None:
    raise ConnectionError("down")


def test_counters_histograms_and_gauges(
    reader: InMemoryMetricReader, provider: MeterProvider, clock: FakeClock
) -> None:
    exporter = OpenTelemetryMetrics(provider)
    breaker = CircuitBreaker("otel-db", failure_rate=None, consecutive_failures=2, clock=clock)
    retry = Retry(2, backoff=Constant(0), name="otel-db", clock=clock)
    stop = resilience.listen(exporter)
    try:
        breaker.call(lambda: clock.advance(0.2))
        with pytest.raises(ConnectionError):
            retry.call(breaker.call, fail)
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: 1)
        pool = Bulkhead(3, name="otel-pool")
        found = points(reader)
    finally:
        stop()
        exporter.close()

    calls = {(a["outcome"]): p.value for a, p in found["resilience.calls"]}
    assert calls == {"success": 1, "failure": 2, "rejected": 1}
    assert all(a["policy"] == "circuit_breaker" for a, _ in found["resilience.calls"])
    ((attrs, duration),) = found["resilience.call.duration"]
    assert attrs == {"policy": "circuit_breaker", "name": "otel-db"}
    assert duration.count == 3
    assert duration.sum == pytest.approx(0.2)
    assert 0.25 in duration.explicit_bounds
    assert [(a, p.value) for a, p in found["resilience.retries"]] == [({"name": "otel-db"}, 1)]
    assert [(a["outcome"], p.value) for a, p in found["resilience.retry.calls"]] == [("gave_up", 1)]
    state = {
        a["state"]: p.value
        for a, p in found["resilience.circuit_breaker.state"]
        if a["name"] == "otel-db"
    }
    assert state == {"closed": 0, "open": 1, "half_open": 0, "forced_open": 0, "disabled": 0}
    assert ({"name": pool.name}, 3) in [
        (a, p.value) for a, p in found["resilience.bulkhead.max_concurrent"]
    ]
    transitions = found["resilience.circuit_breaker.transitions"]
    assert [(a["from_state"], a["to_state"], p.value) for a, p in transitions] == [
        ("closed", "open", 1)
    ]


def test_host_attribute_only_when_asked(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    exporter = OpenTelemetryMetrics(provider, host=True)
    exporter(Event("token_bucket", "api", "rejected", 0.0, Rejected(1.0), host="http://a:80"))
    exporter.close()
    ((attrs, point),) = points(reader)["resilience.rejections"]
    assert attrs == {
        "policy": "token_bucket",
        "name": "api",
        "reason": "rate_limited",
        "host": "http://a:80",
    }
    assert point.value == 1


def test_closed_exporter_reports_no_gauges(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    exporter = OpenTelemetryMetrics(provider)
    breaker = CircuitBreaker("otel-closed")
    stop = breaker.listen(exporter)
    try:
        state = points(reader)["resilience.circuit_breaker.state"]
        assert {a["state"] for a, p in state if p.value == 1} == {"closed"}
        exporter.close()
        assert not points(reader).get("resilience.circuit_breaker.state")
    finally:
        stop()


#: Sets an SDK meter provider as the global one, then records an event through an
#: exporter given no provider, and prints what the provider's reader collected.
GLOBAL_PROVIDER_SCRIPT = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from resilience import Event
from resilience.metrics.opentelemetry import OpenTelemetryMetrics

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
exporter = OpenTelemetryMetrics()
exporter(Event("fallback", "x", "fallback", 0.0))
found = {}
data = reader.get_metrics_data()  # None when nothing was recorded
for resource in data.resource_metrics if data is not None else []:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            found[scope.scope.name + " " + metric.name] = [
                [dict(point.attributes or {}), point.value] for point in metric.data.data_points
            ]
exporter.close()
print(json.dumps(found))
"""


def test_global_meter_provider_by_default() -> None:
    # Without a global provider set, the API's no-op one: recording is harmless.
    exporter = OpenTelemetryMetrics()
    exporter(Event("fallback", "x", "fallback", 0.0))
    exporter.close()
    # With one set, the metrics go there. The global provider can be set once per
    # process: in a fresh interpreter, so that no other test sees it.
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"resilience resilience.fallbacks": [[{"name": "x"}, 1]]}


@pytest.mark.parametrize(
    ("kwargs", "error"), [({"host": 1}, TypeError), ({"max_names": 0}, ValueError)]
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        OpenTelemetryMetrics(**kwargs)  # type: ignore[arg-type]
