"""Channels for calling other medcloud services: the caller's trace travels with every call."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.trace import SpanKind

from medcloud.runtime.tls import TlsMaterial
from medcloud.runtime.tracing import outgoing_span


class _TraceContextInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
):
    """Writes the W3C traceparent of the current trace into each call's metadata."""

    def _with_trace(self, details: grpc.aio.ClientCallDetails, headers: dict[str, str]) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in headers.items():
            metadata[key] = value
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        headers: dict[str, str] = {}
        with outgoing_span(method.lstrip("/"), headers, SpanKind.CLIENT, {"rpc.system": "grpc"}):
            return await continuation(self._with_trace(details, headers), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        headers: dict[str, str] = {}
        with outgoing_span(method.lstrip("/"), headers, SpanKind.CLIENT, {"rpc.system": "grpc"}):
            return await continuation(self._with_trace(details, headers), request)


def service_channel(address: str, tls: TlsMaterial | None) -> grpc.aio.Channel:
    """A channel to another service, carrying trace context: mutual TLS with this process's
    certificate, or plaintext where no TLS material is configured."""
    if tls is None:
        return grpc.aio.insecure_channel(address, interceptors=[_TraceContextInterceptor()])
    return grpc.aio.secure_channel(
        address, tls.channel_credentials(), interceptors=[_TraceContextInterceptor()]
    )
