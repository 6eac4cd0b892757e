"""The backup service as a real process: SiteDown from monitoring fails a hospital's Tier 5
systems over between two real kube-apiservers exactly once, though the event arrives twice and
the service is killed in the middle (R-7.6b, R-7.6c)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from kubernetes import client, config

from medcloud.backup.v1 import backup_pb2 as pb
from medcloud.backup.v1 import backup_service_pb2 as api
from medcloud.backup.v1 import backup_service_pb2_grpc as api_grpc
from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.stack import AUDIT_ADMINISTRATOR
from medcloud.monitoring.v1 import monitoring_events_pb2 as monitoring_events
from medcloud.runtime.bus import EventBus, event_subject, stream_name
from medcloud.security.adapters.signing import generate_key_pair
from medcloud.security.v1 import security_service_pb2 as security_api
from medcloud.security.v1 import security_service_pb2_grpc as security_api_grpc
from tests.support.identities import (
    client_channel,
    etcd_administration,
    identity,
    kube_apiserver,
)
from tests.support.processes import start_service

pytestmark = pytest.mark.integration

HOSPITAL = "hospital-a"
SYSTEMS = {"his-db": [], "his": ["his-db"]}
FACTS = pb.RegionFacts(
    centres=[
        pb.Centre(id="gz-a", city="Guangzhou", province="Guangdong"),
        pb.Centre(id="gz-b", city="Guangzhou", province="Guangdong"),
        pb.Centre(id="bj", city="Beijing", province="Beijing"),
    ],
    links=[
        pb.Link(
            a_centre_id="gz-a", b_centre_id="gz-b", bandwidth_gbps=100, distance_km=30, up=True
        ),
        pb.Link(a_centre_id="gz-a", b_centre_id="bj", bandwidth_gbps=10, distance_km=2100, up=True),
    ],
)


def _protection(
    system_id: str, depends_on: list[str], hospital: str = HOSPITAL
) -> pb.ProtectedSystem:
    return pb.ProtectedSystem(
        hospital_id=hospital,
        system_id=system_id,
        tier=5,
        rpo_seconds=60,
        rto_seconds=300,
        backup_schedule_seconds=3600,
        retention_days=30,
        targets=[pb.Target(kind=pb.TARGET_KIND_SAME_CITY_DR, centre_id="gz-b")],
        write_rate_mbps=200,
        depends_on=depends_on,
        driver="kubernetes",
        primary=pb.Endpoint(
            centre_id="gz-a", cluster="hospital-private", namespace=hospital, workload=system_id
        ),
        standby=pb.Endpoint(
            centre_id="gz-b", cluster="carrier-public", namespace=hospital, workload=system_id
        ),
    )


@pytest.fixture(scope="module")
def clusters(etcd_server, tmp_path_factory) -> Iterator[dict[str, client.AppsV1Api]]:
    work = tmp_path_factory.mktemp("backup-clusters")
    started = [
        kube_apiserver(name, etcd_server.endpoint, work / name)
        for name in ("hospital-private", "carrier-public")
    ]
    for cluster in started:
        cluster.launch()
    for cluster in started:
        cluster.wait_ready()
    apis = {}
    for cluster in started:
        api_client = config.new_client_from_config(str(cluster.admin_kubeconfig))
        apis[cluster.name] = (client.AppsV1Api(api_client), cluster.admin_kubeconfig)
    yield apis
    for cluster in started:
        cluster.stop()


def _deploy(apps: client.AppsV1Api, name: str, replicas: int, namespace: str = HOSPITAL) -> None:
    core = client.CoreV1Api(apps.api_client)
    if not [n for n in core.list_namespace().items if n.metadata.name == namespace]:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    labels = {"app": name}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name=name, image=f"hospital/{name}:1")]
                    ),
                ),
            ),
        ),
    )


def _replicas(apps: client.AppsV1Api, name: str, namespace: str = HOSPITAL) -> int:
    return apps.read_namespaced_deployment(name, namespace).spec.replicas


def _mark_ready(apps: client.AppsV1Api, name: str) -> None:
    """What the Deployment controller and kubelets would report, were there nodes."""
    replicas = _replicas(apps, name)
    apps.patch_namespaced_deployment_status(
        name,
        HOSPITAL,
        {
            "status": {
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        },
    )


def _wait_for(what: str, condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class BackupProcess:
    def __init__(self, etcd_server, nats_server, region: str, work: Path, kubeconfigs) -> None:  # type: ignore[no-untyped-def]
        snapshot = identity("etcd-snapshot", ())
        with etcd_administration(etcd_server.endpoint) as etcd:
            etcd.grant_root("etcd-snapshot")
        self.address = f"127.0.0.1:{free_port()}"
        self._args = (etcd_server.endpoint, nats_server.url, region)
        self._work = work
        self._env = {
            "MEDCLOUD_BACKUP_SNAPSHOT_DIR": str(work / "object-store"),
            "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE": str(snapshot.cert),
            "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE": str(snapshot.key),
            "MEDCLOUD_BACKUP_CLUSTERS": ",".join(f"{n}={p}" for n, p in kubeconfigs.items()),
            "MEDCLOUD_BACKUP_VERIFY_READY": "true",
            "MEDCLOUD_BACKUP_VERIFY_TIMEOUT_SECONDS": "120",
        }
        self.process: ManagedProcess | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process, _ = start_service(
            "medcloud.backup",
            *self._args,
            self._work / f"backup-{self.starts}.log",
            address=self.address,
            extra_env=self._env,
        )

    def kill(self) -> None:
        assert self.process is not None and self.process.process is not None
        self.process.process.kill()
        self.process.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def backup(clusters, etcd_server, nats_server, region, tmp_path) -> Iterator[BackupProcess]:
    """The backup service as a process, moving systems between the module's two clusters."""
    process = BackupProcess(
        etcd_server,
        nats_server,
        region,
        tmp_path,
        {name: path for name, (_, path) in clusters.items()},
    )
    process.start()
    yield process
    process.stop()


async def _publish_site_down_twice(nats_url: str, region: str, centre_id: str) -> None:
    """Monitoring's SiteDown, and the same event again as a redelivery would bring it (same
    CloudEvents id, stored twice)."""
    monitoring = await EventBus.connect(nats_url, region, "monitoring")
    try:
        payload = monitoring_events.SiteDown(centre_id=centre_id, reason="heartbeats")
        first = await monitoring.publish(payload, event_id="site-down-gz-a-1")
        headers = {
            "Nats-Msg-Id": "site-down-gz-a-1-redelivered",
            "ce-specversion": "1.0",
            "ce-id": "site-down-gz-a-1",
            "ce-type": payload.DESCRIPTOR.full_name,
            "ce-source": "medcloud/monitoring",
            "ce-time": "2026-11-26T00:00:00+00:00",
            "content-type": "application/protobuf",
        }
        subject = event_subject(region, "monitoring", "SiteDown")
        second = await monitoring.jetstream.publish(
            subject, payload.SerializeToString(), headers=headers
        )
        assert second.seq == first.stream_sequence + 1  # really stored twice
    finally:
        await monitoring.close()


async def _backup_events(nats_url: str, region: str) -> Counter[str]:
    harness = await EventBus.connect(nats_url, region, "backup")
    try:
        info = await harness.jetstream.stream_info(stream_name(region, "backup"))
        counts: Counter[str] = Counter()
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await harness.jetstream.get_msg(stream_name(region, "backup"), sequence)
            counts[message.subject.rsplit(".", 1)[1]] += 1
        return counts
    finally:
        await harness.close()


def test_site_down_twice_and_a_killed_service_still_fail_over_exactly_once(
    clusters, backup, nats_server, region
):
    private, _ = clusters["hospital-private"]
    public, _ = clusters["carrier-public"]
    for system in SYSTEMS:
        _deploy(private, system, 3)
        _deploy(public, system, 0)
    with client_channel(backup.address) as channel:
        stub = api_grpc.BackupServiceStub(channel)
        stub.SetRegionFacts(api.SetRegionFactsRequest(facts=FACTS), timeout=10)
        for system, depends_on in SYSTEMS.items():
            stored = stub.SetProtection(
                api.SetProtectionRequest(system=_protection(system, depends_on)), timeout=10
            ).system
            # No Velero in these clusters: the policy stands, and says its copies are missing.
            assert not stored.copies_scheduled
            assert "is Velero" in stored.schedule_status
    asyncio.run(_publish_site_down_twice(nats_server.url, region, "gz-a"))

    # The database is promoted and waits, in VERIFY, for its replicas to be ready...
    _wait_for("his-db promoted", lambda: _replicas(public, "his-db") == 3)
    assert _replicas(private, "his-db") == 0
    assert _replicas(public, "his") == 0  # the application waits for its database
    backup.kill()  # ...when the service dies.
    backup.start()

    _mark_ready(public, "his-db")
    _wait_for("his promoted", lambda: _replicas(public, "his") == 3)
    _mark_ready(public, "his")
    with client_channel(backup.address) as channel:
        stub = api_grpc.BackupServiceStub(channel)

        def completed() -> bool:
            found = stub.ListFailovers(api.ListFailoversRequest(hospital_id=HOSPITAL))
            return bool(found.failovers) and all(
                f.phase == pb.FAILOVER_PHASE_COMPLETED for f in found.failovers
            )

        _wait_for("the failover to complete", completed)
        failovers = stub.ListFailovers(api.ListFailoversRequest(hospital_id=HOSPITAL)).failovers
        his = stub.GetProtection(api.GetProtectionRequest(hospital_id=HOSPITAL, system_id="his"))

    assert len(failovers) == 1
    (failover,) = failovers
    assert failover.trigger_event_id == "site-down-gz-a-1"
    assert [s.system_id for s in failover.systems] == ["his-db", "his"]
    for progress in failover.systems:
        assert [r.step for r in progress.done] == [
            "fence-primary", "promote-standby", "repoint", "verify", "record"
        ]  # fmt: skip
    assert his.system.active == pb.ACTIVE_COPY_STANDBY
    assert [_replicas(private, s) for s in SYSTEMS] == [0, 0]
    assert [_replicas(public, s) for s in SYSTEMS] == [3, 3]
    time.sleep(1.0)  # room for a wrong extra event
    counts = asyncio.run(_backup_events(nats_server.url, region))
    assert counts["FailoverStarted"] == 1
    assert counts["FailoverCompleted"] == 1
    assert counts["SystemRepointed"] == 2
    assert counts["FailoverFailed"] == 0


def test_an_audit_administrator_reads_protection_but_cannot_fail_over(backup):
    with client_channel(backup.address, roles=(AUDIT_ADMINISTRATOR,)) as channel:
        stub = api_grpc.BackupServiceStub(channel)
        assert not stub.ListProtections(api.ListProtectionsRequest()).systems
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartFailover(
                api.StartFailoverRequest(hospital_id=HOSPITAL, request_id="r1"), timeout=10
            )
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_a_drill_records_measured_rto_and_rpo_and_the_record_verifies_in_the_audit_trail(
    clusters, backup, etcd_server, nats_server, region, tmp_path
):
    hospital = "hospital-drill"
    private, _ = clusters["hospital-private"]
    public, _ = clusters["carrier-public"]
    _deploy(private, "ris", 2, hospital)
    _deploy(public, "ris", 0, hospital)
    key_file = tmp_path / "signing.key"
    key_file.write_text(generate_key_pair()[0].hex())
    security, security_address = start_service(
        "medcloud.security",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "security.log",
        extra_env={"MEDCLOUD_SECURITY_SIGNING_KEY_FILE": str(key_file)},
    )
    try:
        with client_channel(backup.address) as channel:
            stub = api_grpc.BackupServiceStub(channel)
            stub.SetRegionFacts(api.SetRegionFactsRequest(facts=FACTS), timeout=10)
            stub.SetProtection(
                api.SetProtectionRequest(system=_protection("ris", [], hospital)), timeout=10
            )
            drill = stub.RunDrill(
                api.RunDrillRequest(hospital_id=hospital, request_id="drill-2026-q4", dry_run=True),
                timeout=120,
            ).drill
        assert drill.passed, drill.summary
        assert 0 < drill.measured_rto_seconds < 300
        assert _replicas(private, "ris", hospital) == 2  # a dry run moves nothing
        assert _replicas(public, "ris", hospital) == 0

        with client_channel(security_address, (AUDIT_ADMINISTRATOR,)) as channel:
            auditor = security_api_grpc.SecurityServiceStub(channel)

            def evidence() -> list:  # type: ignore[type-arg]
                records = auditor.ListAuditRecords(
                    security_api.ListAuditRecordsRequest(limit=1000)
                ).records
                return [r for r in records if r.action == "backup.drill.record"]

            _wait_for("the drill's record in the audit trail", evidence, timeout=30)
            (record,) = evidence()
            verdict = auditor.VerifyAuditTrail(security_api.VerifyAuditTrailRequest())
        assert record.target == drill.id and record.outcome == "passed"
        assert float(record.detail["measured_rto_seconds"]) == pytest.approx(
            drill.measured_rto_seconds, abs=0.001
        )
        assert record.detail["dry_run"] == "true"
        assert verdict.ok
    finally:
        security.stop()
