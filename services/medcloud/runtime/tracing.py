"""Trace context across NATS and gRPC hops (W3C traceparent), cheap when nothing records spans."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from medcloud.runtime import telemetry

_W3C = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("medcloud.runtime.tracing")


@contextlib.contextmanager
def outgoing_span(
    name: str, headers: MutableMapping[str, str], kind: SpanKind, attributes: dict[str, str]
) -> Iterator[Span]:
    """Opens the span of sending a message or call (`kind` PRODUCER or CLIENT) and writes its
    traceparent into `headers`.
    Where no span is recorded, the current trace (or a new trace id) is passed on unchanged, which
    costs a fraction of a span and still lets logs and downstream spans join the trace."""
    if telemetry.spans_recorded():
        with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            _W3C.inject(headers)
            yield span
        return
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        _W3C.inject(headers)
    else:
        # A new, unsampled trace: written directly, as building a span context for it costs more
        # than the rest of sending a message.
        headers["traceparent"] = (
            f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-00"
        )
    yield current


@contextlib.contextmanager
def incoming_span(
    name: str, carrier: MutableMapping[str, str], kind: SpanKind, attributes: dict[str, str]
) -> Iterator[Span]:
    """Runs the handling of a received message or call (`kind` CONSUMER or SERVER) inside the
    sender's trace, read from the traceparent in `carrier` (message headers, gRPC metadata)."""
    parent = _W3C.extract(carrier)
    if telemetry.spans_recorded():
        with _tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes
        ) as span:
            yield span
        return
    token = otel_context.attach(parent)
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)
