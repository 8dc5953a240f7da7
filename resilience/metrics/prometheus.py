"""Prometheus metrics from resilience events: ``resilience.listen(PrometheusMetrics())``.

Needs the ``prometheus`` extra (``pip install 'resiliency[prometheus]'``). Every metric is
described in docs/metrics.md.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

try:
    import prometheus_client
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resilience.metrics.prometheus needs prometheus-client: "
        "pip install 'resiliency[prometheus]'"
    ) from exc

from .._policies.events import Event
from ._catalog import (
    CALL_DURATION,
    EVENT_METRICS,
    LATENCY_BUCKETS,
    LIVE_METRICS,
    Handlers,
    MetricSpec,
    Update,
    check_options,
    sample_live,
    tracked_by,
)

__all__ = ["PrometheusMetrics"]

_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class PrometheusMetrics:
    """A listener that turns events into Prometheus metrics.

    ``resilience.listen(PrometheusMetrics())`` covers every policy; ``policy.listen(...)``
    (or ``pipeline.listen(...)``) only those. Metrics go to ``registry`` (default:
    prometheus-client's global ``REGISTRY``, which ``start_http_server`` and the
    framework integrations expose). Counters and histograms follow events; gauges
    (breaker state and rates, bulkhead occupancy, free tokens, abandoned timeout
    workers) are read from the named policies at each scrape.

    Labels stay bounded: ``policy`` (the kind), ``name``, and an ``outcome`` or
    ``reason`` from a fixed set; ``host`` (scheme://host:port of calls made through
    ``resilience.http``) only with ``host=True``. More than ``max_names`` names of one
    kind (or hosts) are recorded as ``_other``. ``buckets`` are the call-duration
    histogram's upper bounds in seconds.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "resilience",
        host: bool = False,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        max_names: int = 1000,
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace must be a Prometheus name prefix, got {namespace!r}")
        check_options(host, max_names)
        bounds = tuple(buckets)
        if not bounds or any(
            isinstance(b, bool) or not isinstance(b, (int, float)) for b in bounds
        ):
            raise TypeError(f"buckets must be a non-empty sequence of numbers, got {buckets!r}")
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"buckets must be increasing, got {buckets!r}")
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self.namespace = namespace
        self.host = host
        self._metrics: dict[str, Any] = {}
        registered: list[Collector] = []
        try:
            for spec in EVENT_METRICS:
                metric = self._make(spec, bounds)
                registered.append(metric)
                self._metrics[spec.name] = metric
            live = _LiveCollector(self)
            self.registry.register(live)
            registered.append(live)
        except ValueError:
            for collector in registered:
                self.registry.unregister(collector)
            raise ValueError(
                f"the registry already has {namespace}_* metrics: one PrometheusMetrics per "
                "registry and namespace (listen with the one you have, or close() it first)"
            ) from None
        self._collectors = registered
        self._handlers = Handlers(self, host=host, max_names=max_names)
        self._record = self._handlers.record

    def _make(self, spec: MetricSpec, latency_buckets: tuple[float, ...]) -> Any:
        labels = spec.labels + (("host",) if spec.per_host and self.host else ())
        name = f"{self.namespace}_{spec.name}"
        if spec.type == "counter":
            return prometheus_client.Counter(name, spec.help, labels, registry=self.registry)
        buckets = latency_buckets if spec is CALL_DURATION else spec.buckets
        return prometheus_client.Histogram(
            name, spec.help, labels, registry=self.registry, buckets=buckets
        )

    def update(self, spec: MetricSpec, labels: tuple[str, ...]) -> Update:
        """The function that adds to (counter) or observes into (histogram) one series."""
        child = self._metrics[spec.name].labels(*labels)
        return child.inc if spec.type == "counter" else child.observe  # type: ignore[no-any-return]

    def __call__(self, event: Event) -> None:
        self._record(event)

    def close(self) -> None:
        """Remove this object's metrics from its registry (stop listening first)."""
        for collector in self._collectors:
            with contextlib.suppress(KeyError):  # already closed
                self.registry.unregister(collector)
        self._collectors = []

    def _live(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for spec in LIVE_METRICS:
            families[spec.name] = self._family(spec)
        if self._collectors:
            tracked = tracked_by(self, self._handlers.seen)
            for spec, labels, value in sample_live(tracked, self.host):
                families[spec.name].add_metric(list(labels), value)
        yield from families.values()

    def _family(self, spec: MetricSpec) -> GaugeMetricFamily:
        labels = [*spec.labels, "host"] if self.host else list(spec.labels)
        return GaugeMetricFamily(f"{self.namespace}_{spec.name}", spec.help, labels=labels)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(namespace={self.namespace!r}, host={self.host!r})"


class _LiveCollector(Collector):
    """The gauges, read from the policies at collection time."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering does not read every policy (and finds clashes).
        return [self._owner._family(spec) for spec in LIVE_METRICS]

    def collect(self) -> Iterable[Metric]:
        return self._owner._live()
