"""From a SiteDown event to every affected Tier 5/6 system re-pointed, with the backup service as a
real process moving real Deployments between two real kube-apiservers (no nodes: VERIFY checks
the objects, not ready pods), for regions of 100 and 1,000 business systems.

Hospitals of 10 systems each: 2 databases and 8 applications that need them, so every failover
runs two levels in dependency order. Every system is Tier 5 and serves from the centre that goes
down. Prints figures; asserts nothing."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config

from medcloud.backup.v1 import backup_events_pb2 as events
from medcloud.backup.v1 import backup_pb2 as pb
from medcloud.backup.v1 import backup_service_pb2 as api
from medcloud.backup.v1 import backup_service_pb2_grpc as api_grpc
from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.pki import RegionPki
from medcloud.devstack.servers import (
    EtcdSecurity,
    EtcdServer,
    NatsServer,
    NatsUser,
    service_permissions,
)
from medcloud.devstack.stack import SERVICE, SYSTEM_ADMINISTRATOR, ServiceProcess, open_channel
from medcloud.monitoring.v1 import monitoring_events_pb2 as monitoring_events
from medcloud.runtime.bus import EventBus, ReceivedEvent

SIZES = (100, 1_000)
PER_HOSPITAL = 10
DATABASES = 2
REGION = "bench"


def _systems(count: int) -> list[pb.ProtectedSystem]:
    systems = []
    for number in range(count):
        hospital, index = f"hospital-{number // PER_HOSPITAL:03d}", number % PER_HOSPITAL
        name = f"db-{index}" if index < DATABASES else f"app-{index}"
        needs = [] if index < DATABASES else [f"db-{index % DATABASES}"]
        systems.append(
            pb.ProtectedSystem(
                hospital_id=hospital,
                system_id=name,
                tier=5,
                rpo_seconds=60,
                rto_seconds=300,
                backup_schedule_seconds=3600,
                retention_days=30,
                targets=[pb.Target(kind=pb.TARGET_KIND_SAME_CITY_DR, centre_id="gz-b")],
                write_rate_mbps=100,
                depends_on=needs,
                driver="kubernetes",
                primary=pb.Endpoint(
                    centre_id="gz-a", cluster="private", namespace=hospital, workload=name
                ),
                standby=pb.Endpoint(
                    centre_id="gz-b", cluster="public", namespace=hospital, workload=name
                ),
            )
        )
    return systems


def _deploy_all(kubeconfig: Path, systems: list[pb.ProtectedSystem], replicas: int) -> None:
    apps = client.AppsV1Api(config.new_client_from_config(str(kubeconfig)))
    core = client.CoreV1Api(apps.api_client)
    for hospital in sorted({s.hospital_id for s in systems}):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=hospital)))

    def deploy(system: pb.ProtectedSystem) -> None:
        labels = {"app": system.system_id}
        apps.create_namespaced_deployment(
            system.hospital_id,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name=system.system_id),
                spec=client.V1DeploymentSpec(
                    replicas=replicas,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            containers=[client.V1Container(name="main", image="hospital/app:1")]
                        ),
                    ),
                ),
            ),
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deploy, systems))


async def _measure(nats_url: str, count: int) -> tuple[float, float]:
    """Seconds from publishing SiteDown to the last SystemRepointed, and to the last
    FailoverCompleted."""
    hospitals = count // PER_HOSPITAL
    repointed: list[float] = []
    completed: list[float] = []
    done = asyncio.Event()
    watcher = await EventBus.connect(nats_url, REGION, "watcher")

    async def record(event: ReceivedEvent) -> None:
        now = time.perf_counter()
        if isinstance(event.payload, events.SystemRepointed):
            repointed.append(now)
        else:
            completed.append(now)
        if len(repointed) >= count and len(completed) >= hospitals:
            done.set()

    await watcher.subscribe(
        source_service="backup",
        event_types=[events.SystemRepointed, events.FailoverCompleted],
        durable=f"bench-{count}",
        handler=record,
    )
    monitoring = await EventBus.connect(nats_url, REGION, "monitoring")
    started = time.perf_counter()
    await monitoring.publish(
        monitoring_events.SiteDown(centre_id="gz-a", reason="heartbeats"),
        event_id=f"site-down-{count}",
    )
    await asyncio.wait_for(done.wait(), 1800)
    await monitoring.close()
    await watcher.close()
    return max(repointed) - started, max(completed) - started


def run(count: int, work: Path) -> None:
    pki = RegionPki(work / "pki", REGION)
    etcd = EtcdServer(work / "etcd", work / "etcd.log", security=EtcdSecurity.issued_by(pki))
    password = "bench-backup"
    nats = NatsServer(
        work / "nats",
        work / "nats.log",
        users=(
            NatsUser("backup", password, service_permissions("backup")),
            NatsUser("harness", "harness"),
        ),
        anonymous_user="harness",
    )
    etcd.start()
    nats.start()
    clusters = []
    try:
        with etcd.administration() as admin:
            admin.grant_service("backup", REGION, "backup")
            admin.grant_root("etcd-snapshot")
            for name in ("private", "public"):
                admin.grant_kube_apiserver(f"kube-apiserver-{name}", f"/clusters/{name}")
        clusters = [
            KubeApiServer(
                name, etcd.endpoint, work / name, etcd_tls=pki.issue(f"kube-apiserver-{name}", ())
            )
            for name in ("private", "public")
        ]
        for cluster in clusters:
            cluster.launch()
        for cluster in clusters:
            cluster.wait_ready()
        systems = _systems(count)
        setup = time.perf_counter()
        _deploy_all(clusters[0].admin_kubeconfig, systems, 3)
        _deploy_all(clusters[1].admin_kubeconfig, systems, 0)
        password_file = work / "backup.password"
        password_file.write_text(password)
        snapshot = pki.issue("etcd-snapshot", ())
        service = ServiceProcess(
            "backup",
            work / "backup.log",
            {
                "MEDCLOUD_REGION": REGION,
                "MEDCLOUD_ETCD_ENDPOINT": etcd.endpoint,
                "MEDCLOUD_NATS_URL": nats.url,
                "MEDCLOUD_NATS_USER": "backup",
                "MEDCLOUD_NATS_PASSWORD_FILE": str(password_file),
                "MEDCLOUD_BACKUP_SNAPSHOT_DIR": str(work / "object-store"),
                "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE": str(snapshot.cert),
                "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE": str(snapshot.key),
                "MEDCLOUD_BACKUP_CLUSTERS": ",".join(
                    f"{c.name}={c.admin_kubeconfig}" for c in clusters
                ),
                "MEDCLOUD_BACKUP_VERIFY_READY": "false",
                "MEDCLOUD_LOG_LEVEL": "WARNING",
            },
            pki.issue("backup", (SERVICE,)),
        )
        service.start()
        try:
            with open_channel(
                service.address, pki.issue("bench-admin", (SYSTEM_ADMINISTRATOR,))
            ) as channel:
                stub = api_grpc.BackupServiceStub(channel)
                stub.SetRegionFacts(
                    api.SetRegionFactsRequest(
                        facts=pb.RegionFacts(
                            centres=[
                                pb.Centre(id="gz-a", city="Guangzhou", province="Guangdong"),
                                pb.Centre(id="gz-b", city="Guangzhou", province="Guangdong"),
                            ],
                            links=[
                                pb.Link(
                                    a_centre_id="gz-a",
                                    b_centre_id="gz-b",
                                    bandwidth_gbps=400,
                                    distance_km=30,
                                    up=True,
                                )
                            ],
                        )
                    )
                )
                for system in systems:
                    stub.SetProtection(api.SetProtectionRequest(system=system), timeout=60)
            print(
                f"  {count} systems: set up in {time.perf_counter() - setup:.1f} s "
                "(Deployments in both clusters, protections registered)"
            )
            repointed, completed = asyncio.run(_measure(nats.url, count))
            print(
                f"  {count} systems in {count // PER_HOSPITAL} hospitals: SiteDown -> every system "
                f"re-pointed {repointed:.2f} s, every failover completed (verified, recorded) "
                f"{completed:.2f} s"
            )
        finally:
            service.process.stop()
    finally:
        for cluster in clusters:
            cluster.stop()
        nats.stop()
        etcd.stop()


def main() -> None:
    sizes = tuple(int(n) for n in sys.argv[1:]) or SIZES
    print("backup: SiteDown to re-pointed, backup service process, 2 kube-apiservers, 2 cores")
    for count in sizes:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
            run(count, Path(work))


if __name__ == "__main__":
    main()
