"""PrometheusMetrics, scraped the way Prometheus does: a real ``/metrics`` endpoint
(prometheus-client's HTTP server on a free loopback port), parsed with
prometheus-client's own parser."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import anyio
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import resilience
from resilience import (
    Bulkhead,
    BulkheadFull,
    CallOutcome,
    CircuitBreaker,
    CircuitOpen,
    Constant,
    Event,
    Fallback,
    Pipeline,
    RateLimited,
    Retry,
    RetryScheduled,
    StoreRecovered,
    Timeout,
    TimeoutExceeded,
    TokenBucket,
)
from resilience.metrics.prometheus import PrometheusMetrics
from resilience.testing import FakeClock

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Endpoint:
    """A registry exposed on 127.0.0.1 by prometheus-client's HTTP server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.server, self.thread = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in samples, f"duplicate series {key}"
                samples[key] = sample.value
        return samples

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    # One server for the module (shutting one down takes half a second); every test
    # closes its exporters, which takes their metrics out of the registry.
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def metrics(endpoint: Endpoint) -> Iterator[PrometheusMetrics]:
    exporter = PrometheusMetrics(endpoint.registry)
    stop = resilience.listen(exporter)
    yield exporter
    stop()
    exporter.close()


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def fail() -> None:
    raise ConnectionError("down")


def states(samples: Samples, name: str) -> dict[str, float]:
    return {
        dict(labels)["state"]: v
        for labels, v in series(samples, "resilience_circuit_breaker_state").items()
        if dict(labels)["name"] == name
    }


def test_breaker_calls_rejections_state_and_transitions(
    endpoint: Endpoint, metrics: PrometheusMetrics, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(
        "m-inventory", minimum_calls=4, failure_rate=0.5, open_for=10, clock=clock
    )
    before = endpoint.scrape()
    assert states(before, "m-inventory") == {
        "closed": 1.0,
        "open": 0.0,
        "half_open": 0.0,
        "forced_open": 0.0,
        "disabled": 0.0,
    }
    for _ in range(2):
        breaker.call(lambda: 1)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    samples = endpoint.scrape()
    assert value(samples, "resilience_circuit_breaker_failure_rate", name="m-inventory") == (
        pytest.approx(1 / 3)
    )
    assert value(samples, "resilience_circuit_breaker_window_calls", name="m-inventory") == 3
    with pytest.raises(ConnectionError):
        breaker.call(fail)  # 2 of 4: opens
    for _ in range(3):
        with pytest.raises(CircuitOpen):
            breaker.call(lambda: 1)

    samples = endpoint.scrape()
    calls = {
        dict(labels)["outcome"]: v
        for labels, v in series(samples, "resilience_calls_total").items()
        if dict(labels).get("policy") == "circuit_breaker"
    }
    assert calls == {"success": 2, "failure": 2, "rejected": 3}
    assert (
        value(
            samples,
            "resilience_rejections_total",
            policy="circuit_breaker",
            name="m-inventory",
            reason="open",
        )
        == 3
    )
    assert states(samples, "m-inventory")["open"] == 1.0
    assert sum(states(samples, "m-inventory").values()) == 1.0
    assert (
        value(
            samples,
            "resilience_circuit_breaker_transitions_total",
            name="m-inventory",
            from_state="closed",
            to_state="open",
        )
        == 1
    )

    clock.advance(10)  # the open period is over: a caller would now get a trial
    assert states(endpoint.scrape(), "m-inventory")["half_open"] == 1.0
    breaker.call(lambda: 1)
    samples = endpoint.scrape()
    assert states(samples, "m-inventory")["closed"] == 1.0
    assert (
        value(
            samples,
            "resilience_circuit_breaker_transitions_total",
            name="m-inventory",
            from_state="half_open",
            to_state="closed",
        )
        == 1
    )
    breaker.open()
    assert states(endpoint.scrape(), "m-inventory")["forced_open"] == 1.0


def test_latency_histogram_buckets_the_measured_durations(
    endpoint: Endpoint, metrics: PrometheusMetrics, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("m-geo", clock=clock)

    def takes(seconds: float) -> Callable[[], None]:
        return lambda: clock.advance(seconds)

    for seconds in (0.004, 0.3, 0.3, 7.0):
        breaker.call(takes(seconds))
    samples = endpoint.scrape()
    labels = {"policy": "circuit_breaker", "name": "m-geo"}
    bucket = "resilience_call_duration_seconds_bucket"
    assert value(samples, bucket, le="0.005", **labels) == 1
    assert value(samples, bucket, le="0.25", **labels) == 1
    assert value(samples, bucket, le="0.5", **labels) == 3
    assert value(samples, bucket, le="5.0", **labels) == 3
    assert value(samples, bucket, le="10.0", **labels) == 4
    assert value(samples, bucket, le="+Inf", **labels) == 4
    assert value(samples, "resilience_call_duration_seconds_count", **labels) == 4
    assert value(samples, "resilience_call_duration_seconds_sum", **labels) == pytest.approx(7.604)


def test_retries_give_ups_and_successes_after_retry(
    endpoint: Endpoint, metrics: PrometheusMetrics, clock: FakeClock
) -> None:
    retry = Retry(3, backoff=Constant(0.1), name="m-search", clock=clock)
    attempts = iter([ConnectionError(), ConnectionError(), None])

    def flaky() -> str:
        exc = next(attempts)
        if exc is not None:
            raise exc
        return "ok"

    assert retry.call(flaky) == "ok"
    with pytest.raises(ConnectionError):
        retry.call(fail)
    retry.call(lambda: 1)  # first attempt succeeds: nothing to report
    samples = endpoint.scrape()
    assert value(samples, "resilience_retries_total", name="m-search") == 4
    assert (
        value(
            samples, "resilience_retry_calls_total", name="m-search", outcome="success_after_retry"
        )
        == 1
    )
    assert value(samples, "resilience_retry_calls_total", name="m-search", outcome="gave_up") == 1


def test_limiter_waits_and_rate_limited_rejections(
    endpoint: Endpoint, metrics: PrometheusMetrics, clock: FakeClock
) -> None:
    limiter = TokenBucket(1, per=1.0, burst=1, max_wait=0.5, name="m-api", clock=clock)
    limiter.call(lambda: 1)  # free token
    clock.advance(0.6)
    limiter.call(lambda: 1)  # waits 0.4 s for the next one
    with pytest.raises(RateLimited):
        limiter.call(lambda: 1)  # the next is a whole second away
    samples = endpoint.scrape()
    bucket = "resilience_token_bucket_wait_seconds_bucket"
    assert value(samples, bucket, name="m-api", le="0.0") == 1
    assert value(samples, bucket, name="m-api", le="0.25") == 1
    assert value(samples, bucket, name="m-api", le="0.5") == 2
    assert value(samples, "resilience_token_bucket_wait_seconds_sum", name="m-api") == (
        pytest.approx(0.4)
    )
    assert (
        value(
            samples,
            "resilience_rejections_total",
            policy="token_bucket",
            name="m-api",
            reason="rate_limited",
        )
        == 1
    )
    assert value(samples, "resilience_token_bucket_available_tokens", name="m-api") == (
        pytest.approx(0.0)
    )


def test_bulkhead_occupancy_is_read_at_scrape_time(
    endpoint: Endpoint, metrics: PrometheusMetrics
) -> None:
    bulkhead = Bulkhead(2, max_queue=1, name="m-pdf")
    release = threading.Event()
    entered = threading.Barrier(3)

    def hold() -> None:
        entered.wait(5)
        release.wait(5)

    def held() -> None:
        bulkhead.call(hold)

    holders = [threading.Thread(target=held) for _ in range(2)]
    for t in holders:
        t.start()
    entered.wait(5)  # both hold a slot
    waiter = threading.Thread(target=lambda: bulkhead.call(lambda: None))
    waiter.start()
    deadline = time.monotonic() + 5
    while bulkhead.queued == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(BulkheadFull):
        bulkhead.call(lambda: None)  # two running, one queued: full
    samples = endpoint.scrape()
    assert value(samples, "resilience_bulkhead_in_flight", name="m-pdf") == 2
    assert value(samples, "resilience_bulkhead_queued", name="m-pdf") == 1
    assert value(samples, "resilience_bulkhead_max_concurrent", name="m-pdf") == 2
    assert value(samples, "resilience_bulkhead_max_queue", name="m-pdf") == 1
    release.set()
    for t in [*holders, waiter]:
        t.join(5)
    samples = endpoint.scrape()
    assert value(samples, "resilience_bulkhead_in_flight", name="m-pdf") == 0
    assert value(samples, "resilience_bulkhead_queued", name="m-pdf") == 0
    assert (
        value(samples, "resilience_calls_total", policy="bulkhead", name="m-pdf", outcome="success")
        == 3
    )
    assert (
        value(
            samples, "resilience_calls_total", policy="bulkhead", name="m-pdf", outcome="rejected"
        )
        == 1
    )
    assert (
        value(
            samples,
            "resilience_rejections_total",
            policy="bulkhead",
            name="m-pdf",
            reason="bulkhead_full",
        )
        == 1
    )
    assert value(samples, "resilience_bulkhead_wait_seconds_count", name="m-pdf") == 3
    # One of the three waited in the queue: more than the "no wait" bucket.
    assert value(samples, "resilience_bulkhead_wait_seconds_bucket", name="m-pdf", le="0.0") == 2


def test_sync_timeouts_and_abandoned_workers(
    endpoint: Endpoint, metrics: PrometheusMetrics
) -> None:
    timeout = Timeout(0.05, name="m-slow")
    finish = threading.Event()
    with pytest.raises(TimeoutExceeded):
        timeout.call(finish.wait, 5)
    samples = endpoint.scrape()
    assert (
        value(
            samples,
            "resilience_rejections_total",
            policy="timeout",
            name="m-slow",
            reason="timeout",
        )
        == 1
    )
    assert value(samples, "resilience_timeout_abandoned_threads", name="m-slow") == 1
    finish.set()
    deadline = time.monotonic() + 5
    while timeout.abandoned and time.monotonic() < deadline:
        time.sleep(0.001)
    assert value(endpoint.scrape(), "resilience_timeout_abandoned_threads", name="m-slow") == 0


def test_fallbacks_are_counted(endpoint: Endpoint, metrics: PrometheusMetrics) -> None:
    fallback = Fallback("cached", name="m-prices")
    assert fallback.call(fail) == "cached"
    assert fallback.call(lambda: "fresh") == "fresh"
    assert value(endpoint.scrape(), "resilience_fallbacks_total", name="m-prices") == 1


@pytest.mark.anyio
async def test_async_pipeline_events_become_metrics(
    endpoint: Endpoint, metrics: PrometheusMetrics
) -> None:
    breaker = CircuitBreaker("m-async-dep", minimum_calls=100)
    pipeline = Pipeline(
        Retry(2, backoff=Constant(0), name="m-async-dep"),
        breaker,
        Bulkhead(4, name="m-async-dep"),
        Timeout(0.05, name="m-async-dep"),
    )

    async def ok() -> int:
        return 1

    async def hangs() -> None:
        await anyio.sleep(5)

    for _ in range(3):
        assert await pipeline.acall(ok) == 1
    with pytest.raises(TimeoutExceeded):
        await pipeline.acall(hangs)
    samples = endpoint.scrape()
    cb = {"policy": "circuit_breaker", "name": "m-async-dep"}
    assert value(samples, "resilience_calls_total", outcome="success", **cb) == 3
    assert value(samples, "resilience_calls_total", outcome="failure", **cb) == 2
    assert (
        value(
            samples,
            "resilience_rejections_total",
            policy="timeout",
            name="m-async-dep",
            reason="timeout",
        )
        == 2
    )
    assert value(samples, "resilience_retries_total", name="m-async-dep") == 1
    assert (
        value(
            samples,
            "resilience_calls_total",
            policy="bulkhead",
            name="m-async-dep",
            outcome="failure",
        )
        == 2
    )


def test_counts_are_exact_under_threads(endpoint: Endpoint, metrics: PrometheusMetrics) -> None:
    breaker = CircuitBreaker("m-hot", minimum_calls=10**9)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait(5)
        for i in range(500):
            with contextlib.suppress(ConnectionError):
                breaker.call(fail if i % 5 == 0 else (lambda: None))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    samples = endpoint.scrape()
    labels = {"policy": "circuit_breaker", "name": "m-hot"}
    assert value(samples, "resilience_calls_total", outcome="success", **labels) == 3200
    assert value(samples, "resilience_calls_total", outcome="failure", **labels) == 800
    assert value(samples, "resilience_call_duration_seconds_count", **labels) == 4000


def test_host_label_only_when_asked(endpoint: Endpoint) -> None:
    with_host = PrometheusMetrics(endpoint.registry, namespace="withhost", host=True)
    without = PrometheusMetrics(endpoint.registry, namespace="nohost")
    try:
        for exporter in (with_host, without):
            exporter(
                Event(
                    "circuit_breaker",
                    "m-api",
                    "failure",
                    0.0,
                    CallOutcome(duration=0.2),
                    host="https://api.example:443",
                    method="GET",
                    status=503,
                )
            )
            exporter(Event("retry", "m-api", "retry", 0.0, RetryScheduled(attempt=1, delay=0.1)))
        samples = endpoint.scrape()
        labels = {"policy": "circuit_breaker", "name": "m-api", "outcome": "failure"}
        assert value(samples, "withhost_calls_total", host="https://api.example:443", **labels) == 1
        assert value(samples, "withhost_retries_total", name="m-api", host="") == 1
        assert value(samples, "nohost_calls_total", **labels) == 1
        assert all("host" not in dict(labels) for (_, labels) in samples if _.startswith("nohost"))
    finally:
        with_host.close()
        without.close()


def test_names_beyond_max_names_share_one_series(endpoint: Endpoint) -> None:
    exporter = PrometheusMetrics(endpoint.registry, max_names=2)
    try:
        for tenant in ("a", "b", "c", "d"):
            exporter(Event("circuit_breaker", tenant, "success", 0.0, CallOutcome(0.01)))
            exporter(Event("circuit_breaker", tenant, "success", 0.0, CallOutcome(0.01)))
        samples = endpoint.scrape()
        calls = series(samples, "resilience_calls_total")
        names = sorted(dict(labels)["name"] for labels in calls)
        assert names == ["_other", "a", "b"]
        assert (
            value(
                samples,
                "resilience_calls_total",
                policy="circuit_breaker",
                name="_other",
                outcome="success",
            )
            == 4
        )
    finally:
        exporter.close()


def test_gauges_cover_the_policies_listened_to(endpoint: Endpoint) -> None:
    exporter = PrometheusMetrics(endpoint.registry)
    watched = CircuitBreaker("m-watched")
    other = CircuitBreaker("m-other")
    CircuitBreaker()  # unnamed: cannot be told apart, never a gauge
    stop = watched.listen(exporter)
    try:
        samples = endpoint.scrape()
        assert states(samples, "m-watched")["closed"] == 1
        assert states(samples, "m-other") == {}
        stop_all = resilience.listen(exporter)
        try:
            samples = endpoint.scrape()
            assert states(samples, "m-other")["closed"] == 1
            assert {
                dict(k)["name"] for k in series(samples, "resilience_circuit_breaker_state")
            } >= {
                "m-watched",
                "m-other",
            }
            assert "" not in {
                dict(k)["name"] for k in series(samples, "resilience_circuit_breaker_state")
            }
        finally:
            stop_all()
        assert other.state == "closed"
    finally:
        stop()
        exporter.close()


def test_one_exporter_per_registry_and_close_unregisters(endpoint: Endpoint) -> None:
    exporter = PrometheusMetrics(endpoint.registry)
    with pytest.raises(ValueError, match="already has resilience_"):
        PrometheusMetrics(endpoint.registry)
    exporter.close()
    exporter.close()  # twice is harmless
    assert not [k for k in endpoint.scrape() if k[0].startswith("resilience_")]
    again = PrometheusMetrics(endpoint.registry)
    again.close()


def test_default_registry() -> None:
    exporter = PrometheusMetrics()
    try:
        assert exporter.registry is prometheus_client.REGISTRY
        exporter(Event("fallback", "default-registry", "fallback", 0.0))
        text = prometheus_client.generate_latest().decode()
        assert 'resilience_fallbacks_total{name="default-registry"} 1.0' in text
    finally:
        exporter.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"namespace": "1bad"}, ValueError),
        ({"namespace": ""}, ValueError),
        ({"host": "yes"}, TypeError),
        ({"max_names": 0}, ValueError),
        ({"buckets": []}, TypeError),
        ({"buckets": [1.0, 0.5]}, ValueError),
        ({"buckets": ["1"]}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        PrometheusMetrics(CollectorRegistry(), **kwargs)  # type: ignore[arg-type]


def test_events_of_other_kinds_are_ignored(endpoint: Endpoint) -> None:
    exporter = PrometheusMetrics(endpoint.registry)
    try:
        exporter(Event("custom_policy", "x", "whatever", 0.0))
        exporter(Event("circuit_breaker", "x", "unknown_type", 0.0))
        samples = endpoint.scrape()
        assert not series(samples, "resilience_calls_total")
    finally:
        exporter.close()


def test_store_outages_are_counted(endpoint: Endpoint, metrics: PrometheusMetrics) -> None:
    metrics(Event("store", "m-prefix", "unavailable", 0.0, exception=OSError("down")))
    metrics(Event("store", "m-prefix", "recovered", 1.0, StoreRecovered(outage=1.0)))
    assert value(endpoint.scrape(), "resilience_store_outages_total", name="m-prefix") == 1


def test_host_labels_the_gauges_of_per_host_copies(endpoint: Endpoint) -> None:
    import http.server

    import httpx

    from resilience.http.httpx import ResilientTransport

    class Unavailable(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(503 if self.server.server_port == ports[0] else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable) for _ in range(2)]
    ports = [server.server_port for server in servers]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}) for s in servers
    ]
    for thread in threads:
        thread.start()
    exporter = PrometheusMetrics(endpoint.registry, host=True)
    breaker = CircuitBreaker("m-per-host", failure_rate=None, consecutive_failures=1)
    transport = ResilientTransport(Pipeline(breaker))
    stop = transport.listen(exporter)
    try:
        with httpx.Client(transport=transport) as client:
            for port in ports:
                client.get(f"http://127.0.0.1:{port}/")
        samples = endpoint.scrape()
        by_host = {
            dict(labels)["host"]: dict(labels)["state"]
            for labels, v in series(samples, "resilience_circuit_breaker_state").items()
            if dict(labels)["name"] == "m-per-host" and v == 1
        }
        assert by_host[f"http://127.0.0.1:{ports[0]}"] == "open"
        assert by_host[f"http://127.0.0.1:{ports[1]}"] == "closed"
    finally:
        stop()
        exporter.close()
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)
