"""OpenTelemetry metrics from resilience events: ``resilience.listen(OpenTelemetryMetrics())``.

Needs the ``otel`` extra (``pip install 'resiliency[otel]'``); an SDK (or any
OpenTelemetry implementation) configured by the application decides where the metrics
go. The instruments are those of docs/metrics.md, under OpenTelemetry names
(``resilience.calls``, ``resilience.call.duration``...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resilience.metrics.opentelemetry needs opentelemetry-api: pip install 'resiliency[otel]'"
    ) from exc

from .._policies.events import Event
from ._catalog import (
    EVENT_METRICS,
    LIVE_METRICS,
    Handlers,
    MetricSpec,
    Update,
    check_options,
    sample_live,
    tracked_by,
)

__all__ = ["OpenTelemetryMetrics"]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("resiliency")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


class OpenTelemetryMetrics:
    """A listener that records events as OpenTelemetry metrics.

    Instruments come from ``meter_provider`` (default: the global one) under the meter
    ``"resilience"``. Counters and histograms follow events; the gauges (breaker state
    and rates, bulkhead occupancy, free tokens, abandoned timeout workers) are
    observable gauges read from the named policies at each collection. Attributes are
    those of the Prometheus labels: ``policy``, ``name``, ``outcome``/``reason``, and
    ``host`` only with ``host=True``; more than ``max_names`` names of one kind (or hosts)
    are recorded as ``_other``.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        host: bool = False,
        max_names: int = 1000,
    ) -> None:
        check_options(host, max_names)
        provider = meter_provider or otel_metrics.get_meter_provider()
        self.meter = provider.get_meter("resilience", _version())
        self.host = host
        self._instruments: dict[str, Any] = {}
        for spec in EVENT_METRICS:
            self._instruments[spec.name] = self._make(spec)
        for spec in LIVE_METRICS:
            self.meter.create_observable_gauge(
                spec.otel, callbacks=[self._observer(spec)], unit=spec.unit, description=spec.help
            )
        self._closed = False
        self._handlers = Handlers(self, host=host, max_names=max_names)
        self._record = self._handlers.record

    def _make(self, spec: MetricSpec) -> Any:
        if spec.type == "counter":
            return self.meter.create_counter(spec.otel, unit=spec.unit, description=spec.help)
        try:
            return self.meter.create_histogram(
                spec.otel,
                unit=spec.unit,
                description=spec.help,
                explicit_bucket_boundaries_advisory=list(spec.buckets),
            )
        except TypeError:  # pragma: no cover - opentelemetry-api before the advisory
            return self.meter.create_histogram(spec.otel, unit=spec.unit, description=spec.help)

    def update(self, spec: MetricSpec, labels: tuple[str, ...]) -> Update:
        """The function that adds to (counter) or records into (histogram) one series."""
        names = spec.labels + (("host",) if spec.per_host and self.host else ())
        attributes = dict(zip(names, labels, strict=True))
        instrument = self._instruments[spec.name]
        method = instrument.add if spec.type == "counter" else instrument.record

        def update(value: float) -> None:
            method(value, attributes)

        return update

    def _observer(self, spec: MetricSpec) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if self._closed:
                return []
            tracked = tracked_by(self, self._handlers.seen)
            names = (*spec.labels, "host") if self.host else spec.labels
            return [
                Observation(value, dict(zip(names, labels, strict=True)))
                for sample, labels, value in sample_live(tracked, self.host)
                if sample is spec
            ]

        return observe

    def __call__(self, event: Event) -> None:
        self._record(event)

    def close(self) -> None:
        """Stop reporting gauges (OpenTelemetry instruments cannot be removed)."""
        self._closed = True

    def __repr__(self) -> str:
        return f"OpenTelemetryMetrics(host={self.host!r})"
