"""The gRPC runtime as a real service process: health, error mapping, drain on SIGTERM, fail-fast config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry import trace

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.stack import SERVICE
from medcloud.runtime.grpc_client import service_channel
from tests.support.identities import client_channel, material
from tests.support.processes import start_service

pytestmark = pytest.mark.integration
ECHO = [sys.executable, "-m", "tests.support.echo_service"]
ROOT = Path(__file__).resolve().parents[2]


def _health(address: str) -> int:
    with client_channel(address) as channel:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(), timeout=2)
            .status
        )


@pytest.fixture
def echo_service(
    etcd_server, nats_server, region, tmp_path
) -> Iterator[tuple[ManagedProcess, str]]:
    process, address = start_service(
        "tests.support.echo_service",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "echo.log",
    )
    yield process, address
    process.stop()


def test_health_reports_serving_for_the_server_and_each_service(echo_service):
    _, address = echo_service
    with client_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "test.Echo"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_domain_error_arrives_as_invalid_argument_naming_the_field(echo_service):
    _, address = echo_service
    with client_channel(address) as channel:
        reject = channel.unary_unary("/test.Echo/Reject")
        with pytest.raises(grpc.RpcError) as raised:
            reject(b"", timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("spec.vcpu", "must be at most 64 (R-7.3c)")
    ]


def test_a_call_is_handled_inside_the_callers_trace(echo_service):
    _, address = echo_service
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with client_channel(address) as channel:
        reply = channel.unary_unary("/test.Echo/TraceId")(
            b"", metadata=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01")], timeout=5
        )
    assert reply.decode() == trace_id


async def test_a_service_channel_carries_the_callers_trace(echo_service):
    _, address = echo_service
    with trace.get_tracer("tests").start_as_current_span("place HIS") as span:
        async with service_channel(address, material("caller", (SERVICE,))) as channel:
            reply = await channel.unary_unary("/test.Echo/TraceId")(b"", timeout=5)
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert reply.decode() == trace_id


def test_sigterm_reports_not_serving_and_lets_the_in_flight_call_finish(echo_service):
    process, address = echo_service
    outcome: dict[str, object] = {}

    def slow_call() -> None:
        with client_channel(address) as channel:
            try:
                outcome["reply"] = channel.unary_unary("/test.Echo/Echo")(b"2500", timeout=20)
            except grpc.RpcError as error:
                outcome["error"] = error.code()

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.5)  # let the call reach the server before the signal
    process.process.send_signal(signal.SIGTERM)

    statuses = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            statuses.append(_health(address))
        except grpc.RpcError:
            break
        if statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        time.sleep(0.05)
    caller.join(20)

    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    assert outcome == {"reply": b"2500"}
    assert process.process.wait(20) == 0


def test_a_missing_variable_stops_start_up_naming_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDCLOUD_")}
    env.update(PYTHONPATH=str(ROOT), MEDCLOUD_REGION="panyu", MEDCLOUD_NATS_URL="http://wrong")
    result = subprocess.run(ECHO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "MEDCLOUD_ETCD_ENDPOINT: required but not set" in result.stderr
    assert "MEDCLOUD_NATS_URL='http://wrong': must start with nats:// or tls://" in result.stderr


def test_an_unreachable_etcd_stops_start_up_naming_it(nats_server, tmp_path):
    dead_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDCLOUD_REGION": "panyu",
        "MEDCLOUD_ETCD_ENDPOINT": f"127.0.0.1:{dead_port}",
        "MEDCLOUD_NATS_URL": nats_server.url,
    }
    result = subprocess.run(ECHO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert f"cannot reach etcd at 127.0.0.1:{dead_port}" in result.stderr
