"""The HospitalSite operator end to end: the kopf process against three real kube-apiservers
(management, hospital private, carrier public) and medcloud's five services as processes, with
the example region and hospital applied by kubectl."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
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
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from medcloud.security.adapters.signing import generate_key_pair
from tests.support.identities import etcd_administration, identity, kube_apiserver
from tests.support.processes import ROOT, start_service

pytestmark = pytest.mark.integration

KUBECTL = str(venv_bin() / "kubectl")
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "operators" / "crds"
NAMESPACE = "hospital-central"
HOSPITAL = "central-hospital"
OPERATOR = "site-operator"


class SpanCollector(trace_grpc.TraceServiceServicer, metrics_grpc.MetricsServiceServicer):
    """An OTLP/gRPC endpoint the processes export to: it keeps every span it receives."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service, span name, trace id)
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
            return trace_pb.ExportTraceServiceResponse()
        return metrics_pb.ExportMetricsServiceResponse()

    def stop(self) -> None:
        self._server.stop(0)


class Region:
    """Everything the operator works with, started once for the module."""

    def __init__(self, etcd_server, nats_server, region: str, work: Path) -> None:  # type: ignore[no-untyped-def]
        self.collector = SpanCollector()
        self.telemetry = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        self.work = work
        self.region = region
        self.clusters = {
            name: kube_apiserver(name, etcd_server.endpoint, work / name)
            for name in ("op-management", "op-private", "op-public")
        }
        self.processes: list[ManagedProcess] = []
        self.addresses: dict[str, str] = {}
        self._etcd, self._nats = etcd_server, nats_server
        self.operator: ManagedProcess | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.clusters["op-management"].admin_kubeconfig

    def api(self, cluster: str) -> client.ApiClient:
        return config.new_client_from_config(str(self.clusters[cluster].admin_kubeconfig))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
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
            self.start_service(name, extra.get(name, {}))
        with open_channel(self.addresses["inventory"], self.admin) as channel:
            register_region(inventory_grpc.InventoryServiceStub(channel), annex_a_region())
        for path in sorted(CRDS.glob("*.yaml")):
            self.kubectl("apply", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
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

    def start_operator(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KUBECONFIG": str(self.kubeconfig),
            "MEDCLOUD_REGION": self.region,
            "MEDCLOUD_OPERATOR_DRIFT_SECONDS": "5",
            **self.telemetry,
            **{f"MEDCLOUD_{n.upper()}_ADDRESS": a for n, a in self.addresses.items()},
            **identity(OPERATOR, (SYSTEM_ADMINISTRATOR,)).environment(),
        }
        self.operator = ManagedProcess(
            "operator",
            [sys.executable, "-m", "medcloud.operators"],
            self.work / "operator.log",
            env,
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


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    started = Region(etcd_server, nats_server, "optests", tmp_path_factory.mktemp("operator"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


def _site(region: Region) -> dict:  # type: ignore[type-arg]
    objects = client.CustomObjectsApi(region.api("op-management"))
    return objects.get_namespaced_custom_object(
        "medcloud.io", "v1alpha1", NAMESPACE, "hospitalsites", "central"
    )


def _condition(site: dict, kind: str) -> dict:  # type: ignore[type-arg]
    for condition in (site.get("status") or {}).get("conditions", []):
        if condition["type"] == kind:
            return condition
    return {}


def _wait(region: Region, what: str, probe, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            conditions = (_site(region).get("status") or {}).get("conditions")
            raise AssertionError(f"timed out waiting for {what}; conditions: {conditions}")
        time.sleep(0.5)


def _kubeconfig_secret(region: Region, name: str, cluster: str) -> None:
    data = region.clusters[cluster].admin_kubeconfig.read_text()
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "stringData": {"kubeconfig": data},
    }
    path = region.work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    region.kubectl("apply", "-f", str(path))


def test_a_missing_kubeconfig_secret_is_named_then_apply_converges_and_delete_cleans_up(region):
    region.kubectl("apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    region.kubectl("apply", "-f", str(EXAMPLES / "hospital-central.yaml"))

    # No Secrets yet: placement in the member clusters says which field names the missing one.
    placed = _wait(
        region,
        "Placed to report the missing Secret",
        lambda: (c := _condition(_site(region), "Placed")).get("status") == "False" and c,
    )
    assert placed["reason"] == "KubeconfigSecretMissing"
    assert "spec.clusters[0].kubeconfigSecretRef" in placed["message"]
    assert _condition(_site(region), "Inventoried")["status"] == "True"

    _kubeconfig_secret(region, "hospital-private-kubeconfig", "op-private")
    _kubeconfig_secret(region, "carrier-public-kubeconfig", "op-public")
    # No new apply: the operator's retry converges.
    _wait(
        region,
        "Placed and Protected",
        lambda: all(
            _condition(_site(region), kind).get("status") == "True"
            for kind in ("Validated", "Inventoried", "Placed", "Protected")
        ),
        timeout=180,
    )
    site = _site(region)
    status = site["status"]
    assert status["systemsPlaced"] == status["systemCount"] == len(site["spec"]["systems"])
    assert status["observedGeneration"] == site["metadata"]["generation"]
    assert re.fullmatch(r"\d+ pass, \d+ fail, \d+ n/a, \d+ unknown", status["conformance"])
    secured = _condition(site, "Secured")
    assert secured["status"] == "False" and secured["reason"] == "BaselineNotMet"
    assert "MLPS level-3 controls not met" in secured["message"]
    for cluster in ("op-private", "op-public"):
        core = client.CoreV1Api(region.api(cluster))
        quota = core.read_namespaced_resource_quota("medcloud-site", HOSPITAL)
        assert int(quota.spec.hard["pods"]) > 0
        policies = client.NetworkingV1Api(region.api(cluster)).list_namespaced_network_policy(
            HOSPITAL
        )
        assert "default-deny" in {p.metadata.name for p in policies.items}
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        placement = (
            scheduling_grpc.SchedulingServiceStub(channel)
            .GetPlacement(scheduling_api.GetPlacementRequest(system_id=f"{HOSPITAL}-his"))
            .placement
        )
    assert placement.assignments

    listed = region.kubectl("get", "hs", "-n", NAMESPACE).stdout
    assert "central" in listed.splitlines()[1]

    # One reconcile is one trace: the spans of every service it called carry its trace id (a
    # reconcile calls only the services its changed steps need).
    reconciles = {t for s, n, t in region.collector.spans if n == "reconcile HospitalSite"}
    assert reconciles, "the operator exported no reconcile span"
    called = {
        trace_id: {s for s, _, t in region.collector.spans if t == trace_id} - {"medcloud-operator"}
        for trace_id in reconciles
    }
    assert all(called.values()), called
    assert set().union(*called.values()) == {
        f"medcloud-{n}" for n in ("inventory", "scheduling", "security", "backup", "monitoring")
    }, called
    assert max(len(services) for services in called.values()) >= 4, called

    region.kubectl("delete", "hospitalsite", "central", "-n", NAMESPACE, "--timeout=120s")
    for cluster in ("op-private", "op-public"):
        core = client.CoreV1Api(region.api(cluster))
        assert not core.list_namespaced_resource_quota(HOSPITAL).items
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        stub = scheduling_grpc.SchedulingServiceStub(channel)
        listed = stub.ListPlacements(scheduling_api.ListPlacementsRequest()).placements
    assert not [p for p in listed if p.system.id.startswith(HOSPITAL)]
    # The room's links are the region's too (examples/region-panyu.yaml): they stay.
    with open_channel(region.addresses["inventory"], region.admin) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        link = stub.GetLink(inventory_api.GetLinkRequest(id="core-a-production-ip")).link
        clusters = stub.ListClusters(inventory_api.ListClustersRequest(page_size=1000)).clusters
    assert link.id == "core-a-production-ip"
    assert not [c for c in clusters if c.id.startswith(HOSPITAL)]
