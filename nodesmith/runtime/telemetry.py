"""OpenTelemetry set-up for the daemon: metrics exported in Prometheus text, traces per reconcile.

This is the only module that touches the OpenTelemetry *SDK*; everything else records through the API
(``nodesmith.metrics`` declares the instruments). ``setup`` runs once per process, before the reconcilers
start; ``prometheus_text`` renders what ``/metrics`` serves.
"""

from __future__ import annotations

from typing import Final

import prometheus_client
from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from nodesmith import errors

__all__ = ["TRACE_EXPORTERS", "prometheus_text", "setup"]

TRACE_EXPORTERS: Final = ("none", "console")
"""Trace exporters built in; ``none`` (the default) keeps tracing a no-op."""

_configured = False


def setup(*, service_name: str = "nodesmith", traces: str = "none") -> None:
    """Install the meter provider (Prometheus reader) and, if asked, a tracer provider. Idempotent."""
    global _configured
    if traces not in TRACE_EXPORTERS:
        raise errors.ConfigError(
            "traces-exporter", f"must be one of {', '.join(TRACE_EXPORTERS)}, got {traces!r}"
        )
    if _configured:
        return
    resource = Resource.create({"service.name": service_name})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()]))
    if traces == "console":
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    _configured = True


def prometheus_text() -> bytes:
    """The current metrics in Prometheus' text exposition format."""
    return prometheus_client.generate_latest(prometheus_client.REGISTRY)


CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_LATEST
