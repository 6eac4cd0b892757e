"""Brings up etcd, NATS and every medcloud service that exists, as real processes on loopback."""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from medcloud.core.access import Role
from medcloud.devstack.examples import apply_examples, start_operator
from medcloud.devstack.kube import REGION_CLUSTERS, KubeApiServer, merge_kubeconfigs
from medcloud.devstack.pki import RegionPki, TlsFiles
from medcloud.devstack.processes import ManagedProcess, StackError, free_port
from medcloud.devstack.servers import (
    LOOPBACK,
    EtcdSecurity,
    EtcdServer,
    NatsServer,
    NatsUser,
    service_permissions,
)
from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc

# Roles a certificate carries (its organisations), as the services' access checks read them.
SERVICE = Role.SERVICE.value
AGENT = Role.AGENT.value
SYSTEM_ADMINISTRATOR = Role.SYSTEM_ADMINISTRATOR.value
SECURITY_ADMINISTRATOR = Role.SECURITY_ADMINISTRATOR.value
AUDIT_ADMINISTRATOR = Role.AUDIT_ADMINISTRATOR.value

OPERATOR = "region-operator"
# The region operator watches every event and dead letter, and publishes none.
OPERATOR_NATS_PERMISSIONS = {
    "publish": {"allow": ["$JS.API.>", "$JS.ACK.>", "_INBOX.>"]},
    "subscribe": {"allow": ["medcloud.>", "_INBOX.>"]},
}

# In the order they start: later services may subscribe to earlier ones' streams.
KNOWN_SERVICES = ("inventory", "scheduling", "monitoring", "security", "backup")


def available_services() -> tuple[str, ...]:
    """The services of KNOWN_SERVICES that this checkout contains."""
    return tuple(
        name
        for name in KNOWN_SERVICES
        if importlib.util.find_spec(f"medcloud.{name}") is not None
        and importlib.util.find_spec(f"medcloud.{name}.__main__") is not None
    )


def open_channel(address: str, tls: TlsFiles | None) -> grpc.Channel:
    """A blocking channel to a medcloud service: mutual TLS with `tls`, plaintext without."""
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.material().channel_credentials())


def open_aio_channel(address: str, tls: TlsFiles | None) -> grpc.aio.Channel:
    """The asyncio counterpart of `open_channel`."""
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, tls.material().channel_credentials())


def grpc_serving(address: str, tls: TlsFiles | None, timeout_seconds: float = 1.0) -> bool:
    """True when the server at `address` answers the standard health check with SERVING."""
    with open_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_seconds
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@dataclass
class ServiceProcess:
    """One medcloud service run as `python -m medcloud.<name>`."""

    name: str
    log_path: Path
    environment: dict[str, str]
    tls: TlsFiles
    grpc_port: int = field(default_factory=free_port)
    startup_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        env = {
            **os.environ,
            **self.environment,
            **self.tls.environment(),
            "MEDCLOUD_GRPC_LISTEN": self.address,
        }
        self.process = ManagedProcess(
            self.name, [sys.executable, "-m", f"medcloud.{self.name}"], self.log_path, env
        )

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self) -> None:
        self.process.start()
        self.process.wait_until_healthy(
            lambda: grpc_serving(self.address, self.tls), self.startup_timeout_seconds
        )


class LocalStack:
    """etcd, NATS, the region's Kubernetes API servers and the services, started in order and
    stopped in reverse."""

    def __init__(
        self,
        work_dir: Path,
        region: str = "panyu",
        services: tuple[str, ...] | None = None,
        etcd_port: int = 0,
        nats_port: int = 0,
        clusters: tuple[str, ...] = REGION_CLUSTERS,
    ) -> None:
        self.work_dir = work_dir
        self.region = region
        self.service_names = available_services() if services is None else services
        self.cluster_names = clusters
        self.etcd = EtcdServer(work_dir / "etcd", work_dir / "logs" / "etcd.log", etcd_port)
        self.nats = NatsServer(work_dir / "nats", work_dir / "logs" / "nats.log", nats_port)
        self.clusters: list[KubeApiServer] = []
        self.services: list[ServiceProcess] = []
        self.agents: list[ManagedProcess] = []
        self.operator: ManagedProcess | None = None
        self.metrics_port = 0
        self.kubeconfig = work_dir / "kubeconfig"
        self.pki: RegionPki | None = None
        # The region operator's client certificate, for the CLI and the example region.
        self.operator_tls: TlsFiles | None = None

    def environment(self) -> dict[str, str]:
        """What a service needs to reach this stack (its own certificate comes apart)."""
        return {
            "MEDCLOUD_REGION": self.region,
            "MEDCLOUD_ETCD_ENDPOINT": self.etcd.endpoint,
            "MEDCLOUD_NATS_URL": self.nats.url,
        }

    def client_environment(self) -> dict[str, str]:
        """What a person's shell needs: the stack, and the region operator's certificate."""
        tls = self.operator_tls.environment() if self.operator_tls else {}
        nats = self.nats_credentials(OPERATOR) if self.pki else {}
        return {**self.environment(), **tls, **nats}

    def start(self) -> None:
        try:
            self.pki = RegionPki(self.work_dir / "pki", self.region)
            self.operator_tls = self.pki.issue(OPERATOR, (SYSTEM_ADMINISTRATOR,))
            users = [
                NatsUser(name, self._nats_password(name), service_permissions(name))
                for name in self.service_names
            ]
            users.append(
                NatsUser(OPERATOR, self._nats_password(OPERATOR), OPERATOR_NATS_PERMISSIONS)
            )
            self.nats.users = tuple(users)
            self.etcd.security = EtcdSecurity.issued_by(self.pki)
            self.etcd.start()
            self.nats.start()
            self.clusters = [self._cluster(name) for name in self.cluster_names]
            for cluster in self.clusters:
                cluster.launch()
            for cluster in self.clusters:
                cluster.wait_ready()
            merge_kubeconfigs(self.clusters, self.kubeconfig)
            for name in self.service_names:
                # Each service learns where the ones started before it listen.
                peers = {f"MEDCLOUD_{s.name.upper()}_ADDRESS": s.address for s in self.services}
                service = ServiceProcess(
                    name,
                    self.work_dir / "logs" / f"{name}.log",
                    {
                        **self.environment(),
                        **peers,
                        **self.nats_credentials(name),
                        **self._own_environment(name),
                    },
                    self.pki.issue(name, (SERVICE,)),
                )
                with self.etcd.administration() as etcd:
                    etcd.grant_service(name, self.region, name)
                self.services.append(service)
                service.start()
        except StackError:
            self.stop()
            raise

    def _cluster(self, name: str) -> KubeApiServer:
        """A cluster's API server with an etcd user of its own, confined to its prefix."""
        assert self.pki is not None
        user = f"kube-apiserver-{name}"
        cluster = KubeApiServer(
            name,
            self.etcd.endpoint,
            self.work_dir / "clusters" / name,
            etcd_tls=self.pki.issue(user, ()),
        )
        with self.etcd.administration() as etcd:
            etcd.grant_kube_apiserver(user, cluster.etcd_prefix)
        return cluster

    def _nats_password(self, user: str) -> str:
        """A fresh password for `user`, kept in a file only this process and the user read."""
        assert self.pki is not None
        path = self.pki.directory / f"nats-{user}.password"
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
        return path.read_text()

    def nats_credentials(self, user: str) -> dict[str, str]:
        assert self.pki is not None
        return {
            "MEDCLOUD_NATS_USER": user,
            "MEDCLOUD_NATS_PASSWORD_FILE": str(self.pki.directory / f"nats-{user}.password"),
        }

    def _own_environment(self, name: str) -> dict[str, str]:
        if name == "monitoring":
            self.metrics_port = free_port()
            return {"MEDCLOUD_MONITORING_METRICS_LISTEN": f"{LOOPBACK}:{self.metrics_port}"}
        if name == "security":
            assert self.pki is not None
            key_file = self.pki.directory / "audit-signing.key"
            key_file.write_text(Ed25519PrivateKey.generate().private_bytes_raw().hex())
            key_file.chmod(0o600)
            return {"MEDCLOUD_SECURITY_SIGNING_KEY_FILE": str(key_file)}
        if name == "backup":
            return self._backup_environment()
        return {}

    def _backup_environment(self) -> dict[str, str]:
        """The backup centre's object store, the snapshot identity (etcd's root role: etcd has no
        snapshot-only permission) and the member clusters the Kubernetes driver moves systems
        between; no nodes run here, so VERIFY does not wait for ready pods."""
        assert self.pki is not None
        snapshot = self.pki.issue("etcd-snapshot", ())
        with self.etcd.administration() as etcd:
            etcd.grant_root("etcd-snapshot")
        clusters = ",".join(f"{c.name}={c.admin_kubeconfig}" for c in self.clusters)
        return {
            "MEDCLOUD_BACKUP_SNAPSHOT_DIR": str(self.work_dir / "backup-centre"),
            "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE": str(snapshot.cert),
            "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE": str(snapshot.key),
            "MEDCLOUD_BACKUP_CLUSTERS": clusters,
            "MEDCLOUD_BACKUP_VERIFY_READY": "false",
        }

    def start_agents(self) -> str:
        """Starts a node agent with simulated machine-room sensors at each of annex A's network
        nodes, reporting to monitoring (when it runs)."""
        monitoring = next((s for s in self.services if s.name == "monitoring"), None)
        if monitoring is None:
            return "monitoring is not running: no node agents started"
        for number, node in enumerate(annex_a_region().nodes):
            env = {
                **os.environ,
                "MEDCLOUD_REGION": self.region,
                "MEDCLOUD_AGENT_NODE_ID": node.id,
                "MEDCLOUD_AGENT_CENTRE_ID": node.centre_id,
                "MEDCLOUD_MONITORING_ADDRESS": monitoring.address,
                "MEDCLOUD_AGENT_BUFFER_DIR": str(self.work_dir / "agents" / node.id),
                "MEDCLOUD_AGENT_SOURCE": f"simulator:seed={number}",
                **self.pki.issue(f"agent-{node.id}", (AGENT,)).environment(),
            }
            agent = ManagedProcess(
                f"agent {node.id}",
                [sys.executable, "-m", "medcloud.monitoring.agent"],
                self.work_dir / "logs" / f"agent-{node.id}.log",
                env,
            )
            agent.start()
            self.agents.append(agent)
        return (
            f"monitoring: {len(self.agents)} node agents report simulated machine-room sensors; "
            f"Prometheus metrics at http://{LOOPBACK}:{self.metrics_port}/metrics"
        )

    def apply_reference_region(self) -> str:
        """Registers annex A's "three centres, four nodes, one backup" region in inventory (when
        it runs) and says what it did, with the topology findings."""
        inventory = next((s for s in self.services if s.name == "inventory"), None)
        if inventory is None:
            return "inventory is not running: no example region applied"
        with open_channel(inventory.address, self.operator_tls) as channel:
            stub = api_grpc.InventoryServiceStub(channel)
            counts = register_region(stub, annex_a_region())
            findings = stub.ValidateTopology(api.ValidateTopologyRequest(), timeout=10).findings
        registered = ", ".join(f"{count} {kind}s" for kind, count in counts.items())
        verdict = (
            "compliant with clause 7 and annex A"
            if not findings
            else "; ".join(f"{f.requirement_id} {f.subject}: {f.message}" for f in findings)
        )
        return (
            f"inventory: registered annex A's reference region ({registered}); topology: {verdict}"
        )

    def run_examples(self) -> str:
        """The main job: the operator on the management cluster, the example region and its
        central hospital applied, and what became of them (needs every service and cluster)."""
        missing = sorted(set(KNOWN_SERVICES) - {s.name for s in self.services})
        if missing or "management" not in self.cluster_names:
            return "operator: not started (needs every service and the management cluster)"
        self.operator = start_operator(self)
        return apply_examples(self)

    def crashed(self) -> list[str]:
        """Components that were started and are no longer running."""
        names = [s.name for s in self.services if not s.process.running]
        if self.operator is not None and not self.operator.running:
            names.append("operator")
        names += [agent.component for agent in self.agents if not agent.running]
        names += [
            name
            for name, server in (("etcd", self.etcd), ("nats", self.nats))
            if not server.running
        ]
        return names

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        for agent in self.agents:
            agent.stop()
        for service in reversed(self.services):
            service.process.stop()
        for cluster in reversed(self.clusters):
            cluster.stop()
        self.nats.stop()
        self.etcd.stop()

    def describe(self) -> str:
        rows = [
            (
                "etcd",
                f"https://{self.etcd.endpoint}",
                f"{self.etcd.origin}, data in {self.etcd.data_dir}",
            ),
            ("nats", self.nats.url, f"JetStream, store in {self.nats.store_dir}"),
            *(
                (f"k8s {c.name}", c.url, f"kube-apiserver, etcd prefix {c.etcd_prefix}")
                for c in self.clusters
            ),
            *((s.name, f"grpc://{s.address}", f"log {s.log_path}") for s in self.services),
        ]
        width = max(len(name) for name, _, _ in rows)
        lines = [f"  {name:<{width}}  {where:<28} {note}" for name, where, note in rows]
        if not self.services:
            lines.append("  (no medcloud service exists in this checkout yet)")
        return "\n".join(lines)
