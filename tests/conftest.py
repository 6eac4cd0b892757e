"""Fixtures shared by every test tier: real etcd and NATS started once per session on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from medcloud.devstack.servers import EtcdServer, NatsServer
from medcloud.runtime.telemetry import configure_telemetry
from tests.support.identities import HARNESS, nats_users, secured_etcd

# Tracer providers can be installed once per process; the tests share this one and read its spans.
SPANS = InMemorySpanExporter()
configure_telemetry("tests", "test", None, extra_span_processors=(SimpleSpanProcessor(SPANS),))


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    work = tmp_path_factory.mktemp("etcd")
    server = secured_etcd(work)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    work = tmp_path_factory.mktemp("nats")
    server = NatsServer(
        work / "store", work / "nats.log", users=nats_users(), anonymous_user=HARNESS
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def region() -> str:
    """A region name of its own per test, so that keys and streams never collide between tests."""
    return f"t{uuid.uuid4().hex[:10]}"
