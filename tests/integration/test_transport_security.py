"""Every service speaks mutual TLS only: a plaintext client, or one whose certificate another CA
issued, is refused before any method runs (R-7.5a boundary protection, MLPS 8.1.2.2); a caller
whose roles do not allow a method is refused, and the refusal is audited (三员分立)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from medcloud.common.v1.audit_entry_pb2 import AuditEntry
from medcloud.core.errors import Unavailable
from medcloud.devstack.pki import RegionPki
from medcloud.devstack.servers import NatsServer
from medcloud.devstack.stack import AUDIT_ADMINISTRATOR, SYSTEM_ADMINISTRATOR
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from medcloud.runtime.bus import EventBus, stream_name
from medcloud.runtime.config import HostPort
from medcloud.runtime.store import EtcdStore, ProtobufCodec
from medcloud.runtime.tls import TlsMaterial
from tests.support.identities import (
    aio_client_channel,
    client_channel,
    connect_store,
    identity,
    material,
    nats_password,
    nats_users,
)
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


async def test_a_call_with_the_wrong_role_is_refused_and_both_refusal_and_change_audited(
    services, nats_server, region
):
    connection = await nats.connect(nats_server.url)
    audited: list[AuditEntry] = []

    async def received(message) -> None:
        audited.append(AuditEntry.FromString(message.data))

    await connection.subscribe(f"medcloud.{region}.monitoring.AuditEntry", cb=received)
    try:
        # An audit administrator reads the trail; changing monitoring's rules is not theirs.
        async with aio_client_channel(services["monitoring"], (AUDIT_ADMINISTRATOR,)) as channel:
            stub = api_grpc.MonitoringServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.UpdateRuleSettings(api.UpdateRuleSettingsRequest())
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "needs the system-administrator role" in refused.value.details()
        # The system administrator may; the change is on the record too.
        async with aio_client_channel(services["monitoring"]) as channel:
            stub = api_grpc.MonitoringServiceStub(channel)
            await stub.UpdateRuleSettings(api.UpdateRuleSettingsRequest())
        for _ in range(50):
            if len(audited) == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    refusal, change = sorted(audited, key=lambda entry: entry.outcome, reverse=True)
    assert refusal.outcome == "refused"
    assert refusal.action == "monitoring.rules.write"
    assert refusal.actor == "tester-audit-administrator"
    assert list(refusal.roles) == ["audit-administrator"]
    assert refusal.target == "/medcloud.monitoring.v1.MonitoringService/UpdateRuleSettings"
    assert (change.outcome, change.action, change.actor) == (
        "done",
        "monitoring.rules.write",
        "tester-system-administrator",
    )


async def test_a_service_may_publish_only_on_its_own_subjects(nats_server, region):
    """NATS refuses a service that publishes on another's subject (each service logs in as its
    own user; R-7.5a source control)."""
    harness = await EventBus.connect(nats_server.url, region, "inventory")  # inventory's stream
    password = nats_password("scheduling")
    scheduling = await EventBus.connect(
        nats_server.url, region, "scheduling", user="scheduling", password=password
    )
    refusals: list[str] = []

    async def on_error(error: Exception) -> None:
        refusals.append(str(error))

    impostor = await nats.connect(
        nats_server.url, user="scheduling", password=password, error_cb=on_error
    )
    try:
        own = await scheduling.publish(wrappers_pb2.StringValue(value="placed"))
        assert own.stream_sequence == 1
        await impostor.publish(f"medcloud.{region}.inventory.HostStateChanged", b"forged")
        await impostor.flush()
        for _ in range(50):
            if refusals:
                break
            await asyncio.sleep(0.1)
        assert any("permissions violation" in r for r in refusals), refusals
        info = await harness.jetstream.stream_info(stream_name(region, "inventory"))
        assert info.state.messages == 0
    finally:
        await impostor.close()
        await scheduling.close()
        await harness.close()


async def test_etcd_refuses_a_client_without_a_certificate(etcd_server):
    """The platform's own state is reachable only with a certificate of the region's CA (R-7.2.4,
    MLPS 8.1.4.1)."""
    with pytest.raises(Unavailable):
        await EtcdStore.connect(
            HostPort.parse(etcd_server.endpoint), "anywhere", "inventory", wait_seconds=1
        )


async def test_a_service_reads_and_writes_only_its_own_keys_in_etcd(etcd_server, region):
    """Each service's etcd user is confined to its own prefix: inventory can neither read the
    security pool's audit trail nor write into it (R-7.5c)."""
    security = await connect_store(etcd_server.endpoint, region, "security")
    inventory = await connect_store(etcd_server.endpoint, region, "inventory")
    # inventory's own certificate, pointed at the security pool's keys
    trespasser = EtcdStore(inventory._client, region, "security")
    codec = ProtobufCodec(wrappers_pb2.StringValue)
    try:
        await security.collection("audit", codec).create("1", wrappers_pb2.StringValue(value="a"))
        with pytest.raises(Unavailable, match="PERMISSION_DENIED"):
            await trespasser.collection("audit", codec).get("1")
        with pytest.raises(Unavailable, match="PERMISSION_DENIED"):
            await trespasser.collection("audit", codec).create("2", wrappers_pb2.StringValue())
        assert (await security.collection("audit", codec).get("1")).value.value == "a"
    finally:
        await inventory.close()
        await security.close()


@pytest.fixture
def tls_nats(tmp_path) -> Iterator[NatsServer]:
    """A NATS that speaks only mutual TLS, with a serving certificate of the tests' CA."""
    server = NatsServer(
        tmp_path / "nats-tls",
        tmp_path / "nats-tls.log",
        users=nats_users(),
        tls=identity("nats-server"),
    )
    server.start()
    yield server
    server.stop()


async def test_nats_over_mutual_tls_admits_only_the_regions_certificates(tls_nats, region):
    """Events carry clinical context: with a TLS NATS, a service reaches it only with the region's
    CA and its own certificate (R-7.5a, MLPS 8.1.3.3 confidentiality in transit)."""
    assert tls_nats.url.startswith("tls://")
    password = nats_password("inventory")
    bus = await EventBus.connect(
        tls_nats.url,
        region,
        "inventory",
        user="inventory",
        password=password,
        tls=material("inventory", ()).client_ssl_context(),
    )
    try:
        published = await bus.publish(wrappers_pb2.StringValue(value="over tls"))
        assert published.stream_sequence == 1
    finally:
        await bus.close()

    # Without a certificate, or with another CA's, the handshake fails every time (the client
    # keeps retrying, as a service waits for NATS; the server logs each refusal).
    foreign = RegionPki(Path(tempfile.mkdtemp()), "elsewhere").issue("inventory", ())
    for refused in (None, foreign.material().client_ssl_context()):
        handshakes = tls_nats.log_path.read_text().count("TLS handshake error")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                EventBus.connect(
                    tls_nats.url,
                    region,
                    "inventory",
                    user="inventory",
                    password=password,
                    tls=refused,
                    connect_timeout_seconds=1,
                ),
                3,
            )
        assert tls_nats.log_path.read_text().count("TLS handshake error") > handshakes


def test_a_service_process_reaches_a_tls_nats_with_its_own_certificate(
    etcd_server, tls_nats, region, tmp_path
):
    process, address = start_service(
        "medcloud.inventory", etcd_server.endpoint, tls_nats.url, region, tmp_path / "inv.log"
    )
    try:
        with client_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.stop()
