"""Every service speaks mutual TLS only: a plaintext client, or one whose certificate another CA
issued, is refused before any method runs (R-7.5a boundary protection, MLPS 8.1.2.2)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from medcloud.devstack.pki import RegionPki
from medcloud.devstack.stack import SYSTEM_ADMINISTRATOR
from medcloud.runtime.tls import TlsMaterial
from tests.support.identities import client_channel, identity
from tests.support.processes import start_service

pytestmark = pytest.mark.integration


@pytest.fixture
def services(etcd_server, nats_server, region, tmp_path) -> Iterator[dict[str, str]]:
    started = []
    addresses: dict[str, str] = {}
    monitoring_env = {
        "MEDCLOUD_MONITORING_METRICS_LISTEN": "127.0.0.1:0",
        "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES": str(16 * 1024**2),
    }
    for name, env in (("inventory", {}), ("scheduling", None), ("monitoring", monitoring_env)):
        if env is None:
            env = {"MEDCLOUD_INVENTORY_ADDRESS": addresses["inventory"]}
        process, address = start_service(
            f"medcloud.{name}",
            etcd_server.endpoint,
            nats_server.url,
            region,
            tmp_path / f"{name}.log",
            extra_env=env,
        )
        started.append(process)
        addresses[name] = address
    yield addresses
    for process in reversed(started):
        process.stop()


def _check(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest()
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status


def test_only_clients_with_a_certificate_of_the_regions_ca_get_in(services, tmp_path):
    # Trusts the region's CA (so the failure is the server's refusal, not the client's) but
    # presents a certificate another CA signed.
    foreign = RegionPki(tmp_path / "other-ca", "elsewhere").issue(
        "stranger", (SYSTEM_ADMINISTRATOR,)
    )
    stranger = TlsMaterial(
        identity("tester").ca.read_bytes(), foreign.cert.read_bytes(), foreign.key.read_bytes()
    )
    for name, address in services.items():
        with client_channel(address) as channel:
            assert _check(channel) == health_pb2.HealthCheckResponse.SERVING, name
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as plain:
            _check(channel)
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE, name
        credentials = stranger.channel_credentials()
        with (
            grpc.secure_channel(address, credentials) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            _check(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, name
