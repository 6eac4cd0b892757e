"""A HospitalSite's life after its first apply, end to end against three real kube-apiservers and
medcloud's five services as processes: an update re-runs only the work it affects (shown by the
reconcile's trace), a service that is down is named in status and the site converges once it is
back, and a delete leaves nothing of the site anywhere."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from medcloud.backup.v1 import backup_service_pb2 as backup_api
from medcloud.backup.v1 import backup_service_pb2_grpc as backup_grpc
from medcloud.devstack.stack import AGENT, open_channel
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.monitoring.v1 import monitoring_service_pb2 as monitoring_api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as monitoring_grpc
from medcloud.operators.member_clusters import SITE_LABEL, site_label
from medcloud.scheduling.v1 import scheduling_pb2 as scheduling_pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from tests.operator.region_stack import (
    EXAMPLES,
    HOSPITAL,
    NAMESPACE,
    Region,
    SpanRecord,
    condition,
    enrol_kubeconfig,
    site_object,
    started_region,
    wait_for,
)
from tests.support.identities import client_channel

pytestmark = pytest.mark.integration

CENTRAL = f"{NAMESPACE}/central"
NORTH_NAMESPACE, NORTH_HOSPITAL = "hospital-north", "north-hospital"
NORTH = f"{NORTH_NAMESPACE}/north"
ROOM = "panyu-hospital"
MEMBER_CLUSTERS = ("private", "public")
QUOTA = "medcloud-site"
# The timer looks at a site 30 s after the operator first sees it, then every interval; for a
# site whose failures wait for a person (Secured: BaselineNotMet here) it reconciles the failed
# steps itself. One such look per site, behind us before an update, keeps the traces of each
# generation below to the update handler's.
OPERATOR_SETTINGS = {"MEDCLOUD_OPERATOR_DRIFT_SECONDS": "3600"}
# kopf's log line for each run names the handler by its qualified name ("Timer
# 'register.<locals>.recheck_site' succeeded.").
DRIFT_TIMER = "recheck_site'"
# The machine is shared: generous.
CONVERGE_SECONDS = 240
# What the Inventoried step asks of inventory, as opposed to the conformance report's reads
# (ValidateTopology, GetCluster, GetCentre) that follow every reconcile.
REGISTRATION_CALLS = {"GetNetworkNode", "GetLink"} | {
    f"{verb}{kind}"
    for verb in ("Create", "Update")
    for kind in ("Centre", "NetworkNode", "Link", "Cluster")
}
# A new clinical-pathway system: primary in the hospital's cluster, standby in the carrier's.
PATHWAY = {
    "name": "pathway",
    "kind": "clinical-pathway",
    "classification": "personal-health-data",
    "replicas": 1,
    "vcpu": 2,
    "memoryGiB": 8,
    "storageGiB": 100,
    "storageClass": "block-fc-san",
    "drTier": 5,
    "rpoSeconds": 5,
    "rtoSeconds": 600,
    "dependsOn": ["his", "emr"],
    "cluster": "hospital-private",
    "standbyCluster": "carrier-public",
}


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("lifecycle")
    yield from started_region(
        etcd_server, nats_server, work, "lifecycle", "lc", operator_settings=OPERATOR_SETTINGS
    )


@pytest.fixture(scope="module")
def node_agent(region) -> Iterator[None]:
    """A node agent in the hospital's room, heartbeating as medcloud-agent does, so that the
    room reports to monitoring (Monitored). It beats until the module ends: a room that falls
    silent is declared down, and backup and scheduling would act on that."""
    stop = threading.Event()

    def beat() -> None:
        with client_channel(region.addresses["monitoring"], (AGENT,)) as channel:
            stub = monitoring_grpc.MonitoringServiceStub(channel)
            while not stop.is_set():
                # A beat lost to a busy machine is no reason to stop beating.
                with contextlib.suppress(grpc.RpcError):
                    stub.Heartbeat(
                        monitoring_api.HeartbeatRequest(node_id="hospital-core-a", centre_id=ROOM),
                        timeout=10,
                    )
                stop.wait(3)

    beating = threading.Thread(target=beat, name="node-agent", daemon=True)
    beating.start()
    yield
    stop.set()
    beating.join(15)


@pytest.fixture(scope="module")
def central(region, node_agent) -> dict[str, Any]:
    """The example region and hospital applied with their Secrets enrolled, converged as far as
    this region lets a site get; the HospitalSite as it then stood."""
    region.kubectl("apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    enrol_kubeconfig(region, "hospital-private-kubeconfig", "private")
    enrol_kubeconfig(region, "carrier-public-kubeconfig", "public")
    region.kubectl("apply", "-f", str(EXAMPLES / "hospital-central.yaml"))
    return _until(
        region,
        CENTRAL,
        "the central hospital to be placed, protected and monitored",
        lambda: _converged(site_object(region)),
    )


# -- helpers -----------------------------------------------------------------------------------


def _get(region: Region, site: str) -> dict[str, Any]:
    namespace, name = site.split("/")
    return site_object(region, namespace, name)


def _until(
    region: Region, site: str, what: str, probe: Callable[[], Any], timeout: float = 180
) -> Any:
    return wait_for(region, what, probe, timeout, site=site)


def _converged(site: dict[str, Any]) -> dict[str, Any] | None:
    """The site once every step this region lets succeed has (Secured needs the security
    administrator's allocations, which no one makes here)."""
    done = all(
        condition(site, kind).get("status") == "True"
        for kind in ("Validated", "Inventoried", "Placed", "Protected", "Monitored")
    )
    return site if done else None


def _drift_checked(region: Region, site: str) -> bool:
    """Whether the drift timer has checked the site: kopf posts no event for a timer, but logs
    each run, naming the object."""
    namespace, name = site.split("/")
    assert region.operator is not None
    for line in region.operator.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        reference = str(record.get("k8s_ref", ""))
        if (
            DRIFT_TIMER in str(record.get("message", ""))
            and f"'namespace': '{namespace}'" in reference
            and f"'name': '{name}'" in reference
        ):
            return True
    return False


def _warned(region: Region, site: str, reason: str) -> bool:
    namespace, name = site.split("/")
    events = client.CoreV1Api(region.api("management")).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return any(e.reason == reason and e.type == "Warning" for e in events.items)


def _manifest(site: dict[str, Any]) -> dict[str, Any]:
    """What hospital IT keeps and applies: the object without what the server adds."""
    metadata = site["metadata"]
    return {
        "apiVersion": site["apiVersion"],
        "kind": site["kind"],
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
        "spec": copy.deepcopy(site["spec"]),
    }


def _apply(region: Region, manifest: dict[str, Any]) -> int:
    """kubectl apply; the generation the change made."""
    region.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    site = f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}"
    return int(_get(region, site)["metadata"]["generation"])


def _observed(region: Region, site: str, generation: int) -> dict[str, Any]:
    return _until(
        region,
        site,
        f"observedGeneration {generation}",
        lambda: (
            s
            if (s := _get(region, site)).get("status", {}).get("observedGeneration") == generation
            else None
        ),
        timeout=CONVERGE_SECONDS,
    )


def _reconcile_trace(region: Region, site: str, generation: int) -> list[SpanRecord]:
    """The spans of the handler's first reconcile of `generation`: the one that met the change.
    The operator's own spans end before its reconcile span and are exported in the order they
    end, so once that span is here, so is every call the operator made in it."""
    first = _until(
        region,
        site,
        f"the reconcile span of generation {generation}",
        lambda: region.collector.reconciles(site, generation)[:1],
        timeout=30,
    )[0]
    return region.collector.trace(first.trace_id)


def _operator_calls(trace: list[SpanRecord]) -> Counter[tuple[str, str]]:
    """(service, method) of each call the operator made in the trace: its client spans are
    named `medcloud.<service>.v1.<Service>/<Method>`."""
    calls: Counter[tuple[str, str]] = Counter()
    for span in trace:
        if span.service == "medcloud-operator" and span.name.startswith("medcloud."):
            package, _, method = span.name.partition("/")
            calls[(package.split(".")[1], method)] += 1
    return calls


def _services_in(trace: list[SpanRecord]) -> set[str]:
    return {span.service.removeprefix("medcloud-") for span in trace} - {"operator"}


def _wait_for_services(
    region: Region, site: str, trace: list[SpanRecord], services: set[str]
) -> set[str]:
    """The services whose spans joined the trace, once `services` all have (each process
    exports on its own schedule)."""
    trace_id = trace[0].trace_id
    return _until(
        region,
        site,
        f"spans of {sorted(services)} in the reconcile's trace",
        lambda: (
            found if services <= (found := _services_in(region.collector.trace(trace_id))) else None
        ),
        timeout=30,
    )


def _registration(calls: Counter[tuple[str, str]]) -> set[str]:
    return {method for service, method in calls if service == "inventory"} & REGISTRATION_CALLS


def _cpu_quota(region: Region, cluster: str, namespace: str = HOSPITAL) -> Decimal:
    quota = client.CoreV1Api(region.api(cluster)).read_namespaced_resource_quota(QUOTA, namespace)
    return parse_quantity(quota.spec.hard["requests.cpu"])


def _placement(region: Region, system_id: str) -> scheduling_pb.Placement:
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        stub = scheduling_grpc.SchedulingServiceStub(channel)
        return stub.GetPlacement(scheduling_api.GetPlacementRequest(system_id=system_id)).placement


def _placements_of(region: Region, hospital: str) -> list[str]:
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        stub = scheduling_grpc.SchedulingServiceStub(channel)
        listed = stub.ListPlacements(scheduling_api.ListPlacementsRequest()).placements
    return sorted(p.system.id for p in listed if p.system.id.startswith(f"{hospital}-"))


def _protections(region: Region, hospital: str) -> dict[str, int]:
    """system -> DR tier of each protection backup holds for the hospital."""
    with open_channel(region.addresses["backup"], region.admin) as channel:
        stub = backup_grpc.BackupServiceStub(channel)
        reply = stub.ListProtections(backup_api.ListProtectionsRequest(hospital_id=hospital))
    return {system.system_id: system.tier for system in reply.systems}


def _inventory_clusters(region: Region, hospital: str) -> list[str]:
    with open_channel(region.addresses["inventory"], region.admin) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        listed = stub.ListClusters(inventory_api.ListClustersRequest(page_size=1000)).clusters
    return sorted(c.id for c in listed if c.id.startswith(f"{hospital}-"))


def _claims(region: Region, system_ids: list[str]) -> list[str]:
    """Those of the systems whose capacity scheduling still claims in inventory."""
    held = []
    with open_channel(region.addresses["inventory"], region.admin) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        for system_id in system_ids:
            try:
                stub.GetClaim(inventory_api.GetClaimRequest(consumer_id=system_id))
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                continue
            held.append(system_id)
    return held


def _site_objects(region: Region, cluster: str, site: str) -> list[str]:
    """Every quota, limit range and network policy labelled for the site, in any namespace."""
    selector = f"{SITE_LABEL}={site_label(site)}"
    core = client.CoreV1Api(region.api(cluster))
    networking = client.NetworkingV1Api(region.api(cluster))
    listings = {
        "ResourceQuota": core.list_resource_quota_for_all_namespaces,
        "LimitRange": core.list_limit_range_for_all_namespaces,
        "NetworkPolicy": networking.list_network_policy_for_all_namespaces,
    }
    return sorted(
        f"{kind} {item.metadata.namespace}/{item.metadata.name}"
        for kind, listing in listings.items()
        for item in listing(label_selector=selector).items
    )


def _live_namespaces(region: Region, cluster: str, site: str) -> list[str]:
    """Namespaces labelled for the site that are not being deleted. (These API servers run no
    namespace controller, so a deleted namespace stays Terminating: member_clusters.py.)"""
    listed = client.CoreV1Api(region.api(cluster)).list_namespace(
        label_selector=f"{SITE_LABEL}={site_label(site)}"
    )
    return [n.metadata.name for n in listed.items if n.metadata.deletion_timestamp is None]


def _north_manifest() -> dict[str, Any]:
    """A second hospital in the same room: its own id, namespace and Secrets, and two systems
    (one per member cluster) that backup protects."""
    documents = list(yaml.safe_load_all((EXAMPLES / "hospital-central.yaml").read_text()))
    site = next(d for d in documents if d["kind"] == "HospitalSite")
    spec = copy.deepcopy(site["spec"])
    spec["hospitalId"] = NORTH_HOSPITAL
    spec["displayName"] = "Panyu North Hospital"
    for cluster in spec["clusters"]:
        cluster["kubeconfigSecretRef"] = {"name": f"north-{cluster['role']}-kubeconfig"}
    systems = {s["name"]: s for s in spec["systems"]}
    ris = dict(systems["ris"])
    del ris["dependsOn"]  # his is central's
    spec["systems"] = [ris, systems["portal"]]
    return {
        "apiVersion": site["apiVersion"],
        "kind": "HospitalSite",
        "metadata": {"name": "north", "namespace": NORTH_NAMESPACE},
        "spec": spec,
    }


def _apply_north(region: Region) -> None:
    region.kubectl("create", "namespace", NORTH_NAMESPACE, check=False)
    enrol_kubeconfig(region, "north-private-kubeconfig", "private", hospital=NORTH_HOSPITAL)
    enrol_kubeconfig(region, "north-public-kubeconfig", "public", hospital=NORTH_HOSPITAL)
    _apply(region, _north_manifest())


# -- the tests ---------------------------------------------------------------------------------


def test_an_update_re_runs_only_the_steps_whose_inputs_changed(region, central):
    first_calls = _operator_calls(_reconcile_trace(region, CENTRAL, 1))
    # The first apply registered the room and asked monitoring about it: the checks below
    # would see those calls if an update made them.
    assert _registration(first_calls) >= {"GetNetworkNode", "GetLink"}, first_calls
    assert first_calls[("monitoring", "ListSiteHealth")] == 1, first_calls
    monitored = condition(central, "Monitored")
    assert monitored["reason"] == "Reporting" and ROOM in monitored["message"]
    secured = condition(central, "Secured")
    assert (secured["status"], secured["reason"]) == ("False", "BaselineNotMet")
    inventoried_since = condition(central, "Inventoried")["lastTransitionTime"]

    # Hospital IT moves the portal from Tier 2 (off-site media) to Tier 3 (electronic vaulting).
    assert _protections(region, HOSPITAL)["portal"] == 2
    manifest = _manifest(central)
    portal = next(s for s in manifest["spec"]["systems"] if s["name"] == "portal")
    portal["drTier"] = 3
    generation = _apply(region, manifest)
    site = _observed(region, CENTRAL, generation)
    with open_channel(region.addresses["backup"], region.admin) as channel:
        protection = (
            backup_grpc.BackupServiceStub(channel)
            .GetProtection(
                backup_api.GetProtectionRequest(hospital_id=HOSPITAL, system_id="portal")
            )
            .system
        )
    assert (protection.tier, protection.gbt20988_level) == (3, 3)
    assert protection.replication_mode == "scheduled-copy"
    assert _placement(region, f"{HOSPITAL}-portal").system.dr_tier == 3
    assert condition(site, "Protected")["status"] == "True"
    trace = _reconcile_trace(region, CENTRAL, generation)
    calls = _operator_calls(trace)
    # Scheduling re-checks every rule for the changed system: released and placed again, alone.
    assert calls[("scheduling", "ReleasePlacement")] == calls[("scheduling", "Place")] == 1, calls
    assert calls[("backup", "SetProtection")] == 10, calls
    # Once by the Secured step, once by the conformance report that ends every reconcile.
    assert calls[("security", "EvaluateBaseline")] == 2, calls
    assert not _registration(calls), calls
    assert calls[("monitoring", "ListSiteHealth")] == 0, calls
    assert _wait_for_services(region, CENTRAL, trace, {"scheduling", "backup", "security"})

    # Hospital IT adds a system (once the timer's one look is behind, see OPERATOR_SETTINGS).
    _until(region, CENTRAL, "the drift timer's check", lambda: _drift_checked(region, CENTRAL))
    cpu_before = {cluster: _cpu_quota(region, cluster) for cluster in MEMBER_CLUSTERS}
    manifest = _manifest(site)
    manifest["spec"]["systems"].append(PATHWAY)
    generation = _apply(region, manifest)
    site = _observed(region, CENTRAL, generation)

    status = site["status"]
    assert status["systemCount"] == status["systemsPlaced"] == 11
    placed = {p["system"]: p for p in status["placements"]}
    assert placed["pathway"]["state"] == "placed", placed["pathway"]
    placement = _placement(region, f"{HOSPITAL}-pathway")
    assert placement.state == scheduling_pb.PLACEMENT_STATE_PLACED
    roles = {a.instance.role: a.centre_id for a in placement.assignments}
    assert roles == {
        scheduling_pb.ROLE_PRIMARY: ROOM,
        scheduling_pb.ROLE_STANDBY: "panyu-carrier-production",
    }, placement.assignments
    # Its primary runs in the hospital's cluster and its standby in the carrier's: each quota
    # grew by what one instance of 2 vCPU needs, and by nothing more.
    for cluster in MEMBER_CLUSTERS:
        assert _cpu_quota(region, cluster) - cpu_before[cluster] == 2, cluster
    assert _protections(region, HOSPITAL)["pathway"] == 5
    for kind in ("Validated", "Inventoried", "Placed", "Protected", "Monitored"):
        assert condition(site, kind)["status"] == "True", condition(site, kind)

    # The reconcile that met the change placed the one new system, judged the baseline and
    # protected the systems, and left the room's registration and monitoring alone.
    trace = _reconcile_trace(region, CENTRAL, generation)
    calls = _operator_calls(trace)
    assert calls[("scheduling", "Place")] == 1, calls
    assert calls[("scheduling", "ReleasePlacement")] == 0, calls
    assert calls[("backup", "SetProtection")] == 11, calls
    assert calls[("security", "EvaluateBaseline")] == 2, calls
    assert not _registration(calls), calls
    assert calls[("monitoring", "ListSiteHealth")] == 0, calls
    assert _wait_for_services(region, CENTRAL, trace, {"scheduling", "backup", "security"})
    assert not region.collector.reconciles(CENTRAL, generation, recheck=True)

    # A condition whose step did not run keeps its transition time.
    assert condition(site, "Inventoried")["lastTransitionTime"] == inventoried_since


def test_a_service_down_is_named_and_the_site_converges_when_it_returns(region, central):
    region.stop_service("backup")
    try:
        _apply_north(region)
        site = _until(
            region,
            NORTH,
            "Protected to name the backup service",
            lambda: (
                s
                if condition(s := _get(region, NORTH), "Protected").get("status") == "False"
                else None
            ),
        )
        protected = condition(site, "Protected")
        assert protected["reason"] == "BackupUnavailable", protected
        assert (
            f"backup at {region.addresses['backup']} answered UNAVAILABLE" in protected["message"]
        )
        assert f"protect {NORTH_HOSPITAL}-" in protected["message"]
        # The steps that do not need backup went ahead.
        for kind in ("Validated", "Inventoried", "Placed", "Monitored"):
            assert condition(site, kind)["status"] == "True", condition(site, kind)
        assert condition(site, "Secured")["reason"] == "BaselineNotMet"
        assert site["status"]["systemsPlaced"] == 2
        assert _placements_of(region, NORTH_HOSPITAL) == [
            f"{NORTH_HOSPITAL}-portal",
            f"{NORTH_HOSPITAL}-ris",
        ]
        assert "Protected: " in condition(site, "Ready")["message"]
        # kubectl describe shows it too (kopf posts events in the background).
        _until(
            region,
            NORTH,
            "a Warning event naming backup",
            lambda: _warned(region, NORTH, "BackupUnavailable"),
            timeout=30,
        )
    finally:
        region.restart_service("backup")

    # No new apply: the handler's retry finds backup again.
    site = _until(
        region,
        NORTH,
        "Protected once backup is back",
        lambda: (
            s if condition(s := _get(region, NORTH), "Protected").get("status") == "True" else None
        ),
        timeout=CONVERGE_SECONDS,
    )
    assert site["metadata"]["generation"] == site["status"]["observedGeneration"] == 1
    assert _protections(region, NORTH_HOSPITAL) == {"ris": 4, "portal": 2}
    # The other hospital was not disturbed.
    assert condition(_get(region, CENTRAL), "Protected")["status"] == "True"


def test_a_deleted_site_leaves_nothing_behind(region, central):
    # Another hospital in the same room and member clusters, which must keep everything
    # (applied by the test before; applying it again changes nothing).
    _apply_north(region)
    _until(
        region,
        NORTH,
        "the north hospital to be placed and protected",
        lambda: all(
            condition(_get(region, NORTH), kind).get("status") == "True"
            for kind in ("Placed", "Protected")
        ),
        timeout=CONVERGE_SECONDS,
    )
    system_ids = _placements_of(region, HOSPITAL)
    assert len(system_ids) == len(_get(region, CENTRAL)["spec"]["systems"])
    assert _claims(region, system_ids) == system_ids
    assert _protections(region, HOSPITAL)
    assert _inventory_clusters(region, HOSPITAL)
    for cluster in MEMBER_CLUSTERS:
        assert _site_objects(region, cluster, CENTRAL), cluster

    region.kubectl("delete", "hospitalsite", "central", "-n", NAMESPACE, "--timeout=120s")

    with pytest.raises(ApiException) as gone:
        _get(region, CENTRAL)
    assert gone.value.status == 404
    for cluster in MEMBER_CLUSTERS:
        assert _site_objects(region, cluster, CENTRAL) == [], cluster
        assert _live_namespaces(region, cluster, CENTRAL) == [], cluster
    assert _placements_of(region, HOSPITAL) == []
    assert _claims(region, system_ids) == []
    assert _protections(region, HOSPITAL) == {}
    assert _inventory_clusters(region, HOSPITAL) == []
    with open_channel(region.addresses["inventory"], region.admin) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetCluster(inventory_api.GetClusterRequest(id=f"{HOSPITAL}-hospital-private"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # The room is the region's as well (examples/region-panyu.yaml): it stays.
        assert stub.GetCentre(inventory_api.GetCentreRequest(id=ROOM)).centre.id == ROOM

    # The other hospital keeps its placements, protections, clusters and member objects.
    north_ids = [f"{NORTH_HOSPITAL}-portal", f"{NORTH_HOSPITAL}-ris"]
    assert _placements_of(region, NORTH_HOSPITAL) == north_ids
    assert _claims(region, north_ids) == north_ids
    assert set(_protections(region, NORTH_HOSPITAL)) == {"portal", "ris"}
    assert _inventory_clusters(region, NORTH_HOSPITAL) == [
        f"{NORTH_HOSPITAL}-carrier-public",
        f"{NORTH_HOSPITAL}-hospital-private",
    ]
    for cluster in MEMBER_CLUSTERS:
        assert _live_namespaces(region, cluster, NORTH) == [NORTH_HOSPITAL], cluster
        assert _cpu_quota(region, cluster, NORTH_HOSPITAL) > 0, cluster
