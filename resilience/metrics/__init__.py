"""Listeners that export what policies do: Prometheus (``resilience.metrics.prometheus``,
the ``prometheus`` extra), OpenTelemetry (``resilience.metrics.opentelemetry``, the
``otel`` extra) and the standard library's ``logging`` (``resilience.metrics.logging``).

Nothing is imported here, so that each exporter needs only its own extra.
"""
