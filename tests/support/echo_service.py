"""A service built only on the shared runtime, run as a real process by the gRPC runtime tests.

`test.Echo/Echo` answers with its request after sleeping as many milliseconds as the request says
(bytes as decimal text), `test.Echo/Reject` fails with a field violation, and
`test.Echo/TraceId` answers with the trace id the call was handled in."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import grpc
from opentelemetry import trace

from medcloud.core import access
from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.service import ServiceContext, run_service

SERVICE_NAME = "test.Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(int(request or b"0") / 1000)
    return request


async def _trace_id(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return format(trace.get_current_span().get_span_context().trace_id, "032x").encode()


async def _reject(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise InvalidArgument([FieldViolation("spec.vcpu", "must be at most 64 (R-7.3c)")])


def _add(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE_NAME,
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(_echo),
                    "Reject": grpc.unary_unary_rpc_method_handler(_reject),
                    "TraceId": grpc.unary_unary_rpc_method_handler(_trace_id),
                },
            )
        ]
    )


async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
    # A test service: its methods count as reads, which services and system administrators hold.
    actions = dict.fromkeys(("Echo", "Reject", "TraceId"), access.INVENTORY_READ)
    return [ServiceBinding(SERVICE_NAME, _add, actions)]


if __name__ == "__main__":
    sys.exit(run_service("echo", bootstrap))
