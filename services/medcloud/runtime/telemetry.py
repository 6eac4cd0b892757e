"""OpenTelemetry tracing and metrics for a service process, exported over OTLP when configured."""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler

_spans_recorded = False


def spans_recorded() -> bool:
    """Whether this process records spans (something exports them); otherwise only context travels."""
    return _spans_recorded


def configure_telemetry(
    service: str,
    region: str,
    otlp_endpoint: str | None,
    extra_span_processors: tuple[SpanProcessor, ...] = (),
    extra_metric_readers: tuple[MetricReader, ...] = (),
) -> TracerProvider:
    """Installs the process-wide tracer and meter providers. Trace context always crosses gRPC and
    NATS hops; spans are recorded only where something exports them (an OTLP endpoint), unless
    OTEL_TRACES_SAMPLER says otherwise."""
    resource = Resource.create(
        {
            "service.name": f"medcloud-{service}",
            "service.namespace": "medcloud",
            "medcloud.region": region,
        }
    )
    global _spans_recorded
    exporting = bool(otlp_endpoint or extra_span_processors)
    _spans_recorded = exporting or bool(os.environ.get("OTEL_TRACES_SAMPLER"))
    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(exporting))
    readers: list[MetricReader] = list(extra_metric_readers)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
        )
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=otlp_endpoint)))
    for processor in extra_span_processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return tracer_provider


def _sampler(exporting: bool) -> Sampler | None:
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None  # the SDK reads the standard variable itself
    # Unsampled spans still carry a valid trace id, so a trace stays whole across services.
    return ParentBased(ALWAYS_ON if exporting else ALWAYS_OFF)
