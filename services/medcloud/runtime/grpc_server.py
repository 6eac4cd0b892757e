"""The gRPC server every service runs: health, reflection, tracing, metrics, error mapping, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry import metrics
from opentelemetry.trace import SpanKind

from medcloud.core.access import AUDITED_ACTIONS, AccessRefused, Identity, Role, authorise
from medcloud.core.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    FailedPrecondition,
    InvalidArgument,
    MedcloudError,
    NotFound,
    Unavailable,
)
from medcloud.runtime.config import HostPort
from medcloud.runtime.tls import Caller, TlsMaterial, caller_of
from medcloud.runtime.tracing import incoming_span

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[MedcloudError], grpc.StatusCode], ...] = (
    (AccessRefused, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (ConcurrencyConflict, grpc.StatusCode.ABORTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def code_for(error: MedcloudError) -> grpc.StatusCode:
    return next(
        (code for kind, code in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL
    )


def status_for(error: MedcloudError) -> grpc.Status:
    """The canonical gRPC status of a domain error; INVALID_ARGUMENT carries google.rpc.BadRequest."""
    status = status_pb2.Status(code=code_for(error).value[0], message=str(error))
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    return rpc_status.to_status(status)


_ROLES = {role.value: role for role in Role}


class AuditListener(Protocol):
    """Told of every refused call, and of every call that changed something (an action in
    medcloud.core.access.AUDITED_ACTIONS), with the outcome's gRPC code."""

    def refused(self, refused: AccessRefused, method: str) -> None: ...

    def performed(self, identity: Identity, action: str, method: str, code: str) -> None: ...


def identity_of(caller: Caller) -> Identity:
    """The caller as the access rules see it: its certificate's common name and the roles among
    its organisations. A certificate that breaks the separation of roles is refused outright."""
    roles = frozenset(_ROLES[group] for group in caller.groups if group in _ROLES)
    try:
        return Identity(caller.subject or "anonymous", roles)
    except InvalidArgument as error:
        raise AccessRefused(
            Identity(caller.subject or "anonymous", frozenset()), "*", str(error)
        ) from error


class _RuntimeInterceptor(grpc.aio.ServerInterceptor):
    """Traces each call in the caller's trace, authorises it by the caller's certificate, maps
    domain errors to canonical codes, counts in-flight calls and records call durations: one
    layer, since each layer costs every call."""

    def __init__(
        self,
        actions: dict[str, str] | None,
        audit: AuditListener | None,
        audits_itself: frozenset[str] = frozenset(),
    ) -> None:
        # Full method path -> action; None when there is no TLS, so no identity to check.
        self._actions = actions
        self._audit = audit
        self._audits_itself = audits_itself
        self.in_flight = 0
        meter = metrics.get_meter("medcloud.runtime.grpc")
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of inbound gRPC calls"
        )

    @contextlib.asynccontextmanager
    async def _observed(
        self, method: str, metadata: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        service, _, name = method.lstrip("/").rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        carrier = {key: value for key, value in metadata or ()}
        self.in_flight += 1
        started, code = time.perf_counter(), grpc.StatusCode.OK
        audited: tuple[Identity, str] | None = None
        with incoming_span(method.lstrip("/"), carrier, SpanKind.SERVER, attributes) as span:
            try:
                audited = self._authorise(method, context)
                yield
            except MedcloudError as error:
                code = code_for(error)
                await context.abort_with_status(status_for(error))
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                raise
            finally:
                self.in_flight -= 1
                if audited is not None and self._audit is not None:
                    self._audit.performed(*audited, method, code.name)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                self._duration.record(
                    (time.perf_counter() - started) * 1000.0,
                    {"rpc.method": method, "rpc.grpc.status_code": code.value[0]},
                )

    def _authorise(
        self, method: str, context: grpc.aio.ServicerContext
    ) -> tuple[Identity, str] | None:
        """Raises AccessRefused unless the caller may call `method`; returns who and what when
        the call is one the audit trail keeps."""
        if self._actions is None or method.startswith(_OPEN_TO_EVERY_CALLER):
            return None
        # Unknown methods get no action, which nobody holds: deny by default.
        action = self._actions.get(method, "unmapped.method")
        identity = identity_of(caller_of(context))
        try:
            authorise(identity, action)
        except AccessRefused as refused:
            if self._audit is not None:
                self._audit.refused(refused, method)
            raise
        if action in AUDITED_ACTIONS and method not in self._audits_itself:
            return identity, action
        return None

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        if handler.unary_unary or handler.stream_unary:
            behavior = handler.unary_unary or handler.stream_unary

            async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._observed(method, metadata, context):
                    return await behavior(request, context)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary_response,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        behavior = handler.unary_stream or handler.stream_stream

        async def streamed_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._observed(method, metadata, context):
                async for item in behavior(request, context):
                    yield item

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            streamed_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# Health checks and reflection answer every authenticated caller (probes, grpcurl).
_OPEN_TO_EVERY_CALLER = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to serve: its full name (for health and reflection), how to add it, and
    the action (medcloud.core.access) each of its methods performs, by method name."""

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]
    actions: Mapping[str, str] = field(default_factory=dict)
    # True where the service's use cases write their own, richer audit records (security).
    audits_itself: bool = False


class GrpcServer:
    """A grpc.aio server with the runtime's interceptors, health checking and reflection."""

    def __init__(
        self,
        bindings: Iterable[ServiceBinding],
        listen: HostPort,
        shutdown_grace_seconds: float,
        drain_delay_seconds: float = 1.0,
        tls: TlsMaterial | None = None,
        audit: AuditListener | None = None,
    ) -> None:
        self._bindings = tuple(bindings)
        self._tls = tls
        self._listen = listen
        self._grace = shutdown_grace_seconds
        self._drain_delay = drain_delay_seconds
        actions = {
            f"/{binding.full_name}/{method}": action
            for binding in self._bindings
            for method, action in binding.actions.items()
        }
        audits_itself = frozenset(
            f"/{binding.full_name}/{method}"
            for binding in self._bindings
            if binding.audits_itself
            for method in binding.actions
        )
        # Without TLS there is no verified caller: only the runtime's own tests serve so.
        self._runtime = _RuntimeInterceptor(actions if tls else None, audit, audits_itself)
        self._health = HealthServicer()
        self._server = grpc.aio.server(interceptors=[self._runtime])
        self._stopped = asyncio.Event()
        self.port = 0

    async def start(self) -> int:
        """Binds and starts serving; returns the bound port and reports every service SERVING."""
        for binding in self._bindings:
            binding.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [b.full_name for b in self._bindings]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        if self._tls is None:
            self.port = self._server.add_insecure_port(str(self._listen))
        else:
            self.port = self._server.add_secure_port(
                str(self._listen), self._tls.server_credentials()
            )
        if self.port == 0:
            raise OSError(f"cannot bind gRPC server to {self._listen}")
        await self._server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def _set_health(self, status: int) -> None:
        for name in ("", *(b.full_name for b in self._bindings)):
            await self._health.set(name, status)

    async def drain_and_stop(self) -> None:
        """Reports NOT_SERVING so that load balancers stop sending, lets in-flight calls finish
        within the grace period, then stops."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("draining", extra={"in_flight_calls": self._runtime.in_flight})
        await asyncio.sleep(self._drain_delay)
        await self._server.stop(self._grace)
        self._stopped.set()

    async def wait_for_termination(self) -> None:
        await self._stopped.wait()


async def wait_for_shutdown_signal() -> signal.Signals:
    """Returns the first SIGTERM or SIGINT the process receives."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: received.done() or received.set_result(s))
    try:
        return await received
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
