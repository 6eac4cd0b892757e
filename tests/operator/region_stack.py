"""A region for operator tests: three real kube-apiservers (management, hospital private, carrier
public), medcloud's five services as processes, an OTLP collector and the operator process,
started once per test module. A kube-apiserver keeps its state in etcd under /clusters/<name>, so
each module names its clusters apart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from kubernetes import client, config
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.servers import venv_bin
from medcloud.devstack.stack import SYSTEM_ADMINISTRATOR, open_channel
from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.operators.member_work import HOSPITAL_LABEL
from medcloud.security.adapters.signing import generate_key_pair
from tests.support.identities import etcd_administration, identity, kube_apiserver
from tests.support.processes import ROOT, start_service

KUBECTL = str(venv_bin() / "kubectl")
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "operators" / "crds"
NAMESPACE = "hospital-central"
HOSPITAL = "central-hospital"
OPERATOR = "site-operator"
# The operator's own namespace in the management cluster: its Lease and the kubeconfig Secrets.
OPERATOR_NAMESPACE = "medcloud"
CLUSTER_ROLES = ("management", "private", "public")


@dataclass(frozen=True)
class SpanRecord:
    """One span as exported: who sent it (the resource's service.name), its trace, when it
    started, and its attributes as plain values."""

    service: str
    name: str
    trace_id: bytes
    start_unix_nano: int
    attributes: Mapping[str, object] = field(default_factory=dict)


def _attribute_value(value) -> object:  # type: ignore[no-untyped-def]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class SpanCollector(trace_grpc.TraceServiceServicer, metrics_grpc.MetricsServiceServicer):
    """An OTLP/gRPC endpoint the processes export to: it keeps every span it receives."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service, span name, trace id)
        # The same spans with their start and attributes, in the order they arrived.
        self.records: list[SpanRecord] = []
        self._server = grpc.server(ThreadPoolExecutor(4))
        trace_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_grpc.add_MetricsServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        if isinstance(request, trace_pb.ExportTraceServiceRequest):
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span.name, span.trace_id))
                        self.records.append(
                            SpanRecord(
                                service,
                                span.name,
                                span.trace_id,
                                span.start_time_unix_nano,
                                {a.key: _attribute_value(a.value) for a in span.attributes},
                            )
                        )
            return trace_pb.ExportTraceServiceResponse()
        return metrics_pb.ExportMetricsServiceResponse()

    def reconciles(self, site: str, generation: int, recheck: bool = False) -> list[SpanRecord]:
        """The operator's reconcile spans of `site` (`namespace/name`) for one generation, the
        earliest first; `recheck` picks the drift timer's reconciles instead of the handler's."""
        found = [
            record
            for record in list(self.records)
            if record.name == "reconcile HospitalSite"
            and record.attributes.get("medcloud.site") == site
            and record.attributes.get("medcloud.generation") == generation
            and record.attributes.get("medcloud.recheck") == recheck
        ]
        return sorted(found, key=lambda record: record.start_unix_nano)

    def trace(self, trace_id: bytes) -> list[SpanRecord]:
        """Every span received so far of one trace."""
        return [record for record in list(self.records) if record.trace_id == trace_id]

    def stop(self) -> None:
        self._server.stop(0)


class Region:
    """Everything the operator works with, started once for the module."""

    def __init__(  # type: ignore[no-untyped-def]
        self,
        etcd_server,
        nats_server,
        region: str,
        work: Path,
        prefix: str = "op",
        operator_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.collector = SpanCollector()
        self.telemetry = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        self.work = work
        self.region = region
        # By role: "management", "private" (the hospital's), "public" (the carrier's).
        self.clusters = {
            role: kube_apiserver(f"{prefix}-{role}", etcd_server.endpoint, work / role)
            for role in CLUSTER_ROLES
        }
        self.processes: list[ManagedProcess] = []
        self.addresses: dict[str, str] = {}
        self._etcd, self._nats = etcd_server, nats_server
        self.operator: ManagedProcess | None = None
        # Environment the operator gets on top of `operator_environment`'s (e.g. a drift interval).
        self.operator_settings = dict(operator_settings or {})
        # Each service's own environment as `start` gave it, for `restart_service`.
        self.service_env: dict[str, dict[str, str]] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.clusters["management"].admin_kubeconfig

    def api(self, cluster: str) -> client.ApiClient:
        return config.new_client_from_config(str(self.clusters[cluster].admin_kubeconfig))

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def start(self) -> None:
        for cluster in self.clusters.values():
            cluster.launch()
        for cluster in self.clusters.values():
            cluster.wait_ready()
        key_file = self.work / "signing.key"
        key_file.write_text(generate_key_pair()[0].hex())
        snapshot = identity("etcd-snapshot", ())
        with etcd_administration(self._etcd.endpoint) as etcd:
            etcd.grant_root("etcd-snapshot")
        extra = {
            "security": {"MEDCLOUD_SECURITY_SIGNING_KEY_FILE": str(key_file)},
            "monitoring": {
                "MEDCLOUD_MONITORING_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
                "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES": str(16 * 1024**2),
            },
            "backup": {
                "MEDCLOUD_BACKUP_SNAPSHOT_DIR": str(self.work / "backup-centre"),
                "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE": str(snapshot.cert),
                "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE": str(snapshot.key),
                "MEDCLOUD_BACKUP_VERIFY_READY": "false",
            },
        }
        for name in ("inventory", "scheduling", "monitoring", "security", "backup"):
            self.service_env[name] = extra.get(name, {})
            self.start_service(name, self.service_env[name])
        with open_channel(self.addresses["inventory"], self.admin) as channel:
            register_region(inventory_grpc.InventoryServiceStub(channel), annex_a_region())
        for path in sorted(CRDS.glob("*.yaml")):
            self.kubectl("apply", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        self.start_operator()

    @property
    def admin(self):  # type: ignore[no-untyped-def]
        return identity("tester-operator-admin", (SYSTEM_ADMINISTRATOR,))

    def start_service(self, name: str, env: dict[str, str]) -> None:
        peers = {f"MEDCLOUD_{n.upper()}_ADDRESS": a for n, a in self.addresses.items()}
        address = self.addresses.get(name, "")
        process, address = start_service(
            f"medcloud.{name}",
            self._etcd.endpoint,
            self._nats.url,
            self.region,
            self.work / f"{name}.log",
            address=address,
            extra_env={**peers, **env, **self.telemetry},
        )
        self.addresses[name] = address
        self.processes.append(process)

    def stop_service(self, name: str) -> None:
        for process in self.processes:
            if process.component == f"medcloud.{name}" and process.running:
                process.stop()

    def restart_service(self, name: str) -> None:
        """Starts a stopped service again on its address, with the environment `start` gave it."""
        self.start_service(name, self.service_env.get(name, {}))

    def operator_environment(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "MEDCLOUD_REGION": self.region,
            "MEDCLOUD_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
            "MEDCLOUD_OPERATOR_DRIFT_SECONDS": "5",
            **self.telemetry,
            **{f"MEDCLOUD_{n.upper()}_ADDRESS": a for n, a in self.addresses.items()},
            **identity(OPERATOR, (SYSTEM_ADMINISTRATOR,)).environment(),
            **self.operator_settings,
        }

    def start_operator(self) -> None:
        self.operator = ManagedProcess(
            "operator",
            [sys.executable, "-m", "medcloud.operators"],
            self.work / "operator.log",
            self.operator_environment(),
        )
        self.operator.start()

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        for process in reversed(self.processes):
            process.stop()
        for cluster in self.clusters.values():
            cluster.stop()
        self.collector.stop()


def started_region(  # type: ignore[no-untyped-def]
    etcd_server,
    nats_server,
    work: Path,
    name: str,
    prefix: str,
    operator_settings: Mapping[str, str] | None = None,
) -> Iterator[Region]:
    """For a module's fixture: the region, stopped however the module ends."""
    started = Region(etcd_server, nats_server, name, work, prefix, operator_settings)
    try:
        started.start()
        yield started
    finally:
        started.stop()


def site_object(region: Region, namespace: str = NAMESPACE, name: str = "central") -> dict:  # type: ignore[type-arg]
    objects = client.CustomObjectsApi(region.api("management"))
    return objects.get_namespaced_custom_object(
        "medcloud.io", "v1alpha1", namespace, "hospitalsites", name
    )


def condition(site: dict, kind: str) -> dict:  # type: ignore[type-arg]
    for found in (site.get("status") or {}).get("conditions", []):
        if found["type"] == kind:
            return found
    return {}


def wait_for(  # type: ignore[no-untyped-def]
    region: Region, what: str, probe, timeout: float = 120, site: str = f"{NAMESPACE}/central"
):
    """`probe()` once it is truthy; on timeout an AssertionError showing the site's status."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            namespace, name = site.split("/")
            try:
                status = site_object(region, namespace, name).get("status")
            except client.ApiException as error:
                status = f"unreadable: HTTP {error.status}"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; {status}")
        time.sleep(0.5)


def steps_succeeded(region: Region, *kinds: str) -> bool:
    """Whether the central site's conditions of `kinds` are all True."""
    site = site_object(region)
    return all(condition(site, kind).get("status") == "True" for kind in kinds)


def enrol_kubeconfig(region: Region, name: str, cluster: str, hospital: str = HOSPITAL) -> None:
    """What the region operator does for a hospital's member cluster: its kubeconfig in a Secret
    in the operator's namespace, labelled for the one hospital that may use it."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": OPERATOR_NAMESPACE,
            "labels": {HOSPITAL_LABEL: hospital},
        },
        "stringData": {"kubeconfig": region.clusters[cluster].admin_kubeconfig.read_text()},
    }
    region.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
