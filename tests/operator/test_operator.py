"""The HospitalSite operator end to end: the kopf process against three real kube-apiservers
(management, hospital private, carrier public) and medcloud's five services as processes, with
the example region and hospital applied by kubectl."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from kubernetes import client

from medcloud.devstack.stack import open_channel
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from tests.operator.region_stack import (
    EXAMPLES,
    HOSPITAL,
    NAMESPACE,
    Region,
    condition,
    enrol_kubeconfig,
    site_object,
    started_region,
    steps_succeeded,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("operator")
    yield from started_region(etcd_server, nats_server, work, "optests", "op")


def test_a_missing_kubeconfig_secret_is_named_then_apply_converges_and_delete_cleans_up(region):
    region.kubectl("apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    region.kubectl("apply", "-f", str(EXAMPLES / "hospital-central.yaml"))

    # No Secrets yet: placement in the member clusters says which field names the missing one.
    placed = wait_for(
        region,
        "Placed to report the missing Secret",
        lambda: (c := condition(site_object(region), "Placed")).get("status") == "False" and c,
    )
    assert placed["reason"] == "KubeconfigSecretMissing"
    assert "spec.clusters[0].kubeconfigSecretRef" in placed["message"]
    assert condition(site_object(region), "Inventoried")["status"] == "True"

    # A Secret enrolled for another hospital is refused: a site cannot borrow credentials.
    enrol_kubeconfig(region, "hospital-private-kubeconfig", "private", hospital="other-hospital")
    wait_for(
        region,
        "Placed to refuse the other hospital's Secret",
        lambda: (
            condition(site_object(region), "Placed").get("reason") == "KubeconfigSecretNotEnrolled"
        ),
    )
    assert (
        "spec.clusters[0].kubeconfigSecretRef"
        in condition(site_object(region), "Placed")["message"]
    )

    enrol_kubeconfig(region, "hospital-private-kubeconfig", "private")
    enrol_kubeconfig(region, "carrier-public-kubeconfig", "public")
    # No new apply: the operator's retry converges.
    wait_for(
        region,
        "Placed and Protected",
        lambda: steps_succeeded(region, "Validated", "Inventoried", "Placed", "Protected"),
        timeout=180,
    )
    site = site_object(region)
    status = site["status"]
    assert status["systemsPlaced"] == status["systemCount"] == len(site["spec"]["systems"])
    assert status["observedGeneration"] == site["metadata"]["generation"]
    assert re.fullmatch(r"\d+ pass, \d+ fail, \d+ n/a, \d+ unknown", status["conformance"])
    secured = condition(site, "Secured")
    assert secured["status"] == "False" and secured["reason"] == "BaselineNotMet"
    assert "MLPS level-3 controls not met" in secured["message"]
    for cluster in ("private", "public"):
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
    for cluster in ("private", "public"):
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
