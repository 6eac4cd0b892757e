"""The inventory service as a real process: facts, references, concurrency, errors, topology."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from medcloud.inventory.client import create, register_region
from medcloud.inventory.domain import model
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_pb2 as pb
from medcloud.inventory.v1 import inventory_service_pb2 as api

pytestmark = pytest.mark.integration


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    bad_request = error_details_pb2.BadRequest()
    rpc_status.from_call(error).details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


def test_the_annex_a_region_registers_and_is_compliant(inventory):
    register_region(inventory.stub, annex_a_region())
    assert list(inventory.stub.ValidateTopology(api.ValidateTopologyRequest()).findings) == []


def test_a_non_compliant_region_is_recorded_and_its_findings_reported(inventory):
    region = annex_a_region()
    region = dataclasses.replace(
        region,
        pools=tuple(p for p in region.pools if p.storage_class is not model.StorageClass.OBJECT),
    )
    register_region(inventory.stub, region)
    findings = inventory.stub.ValidateTopology(api.ValidateTopologyRequest()).findings
    assert [(f.requirement_id, f.subject) for f in findings] == [("R-7.4-0", "region")]


def test_a_96_vcpu_flavor_is_refused_naming_the_field_and_rule(inventory):
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.CreateFlavor(
            api.CreateFlavorRequest(flavor=pb.Flavor(id="huge", vcpu=96, memory_gib=128))
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(raised.value) == [("flavor.vcpu", "must be at most 64 (R-7.3c), got 96")]
    with pytest.raises(grpc.RpcError) as missing:
        inventory.stub.GetFlavor(api.GetFlavorRequest(id="huge"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_unknown_enum_and_negative_capacity_are_refused(inventory):
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.CreateCentre(
            api.CreateCentreRequest(
                centre=pb.Centre(id="x", display_name="X", role=99, city="a", province="b")
            )
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(raised.value)[0][0] == "centre.role"
    register_region(
        inventory.stub, dataclasses.replace(annex_a_region(), hosts=(), pools=(), flavors=())
    )
    with pytest.raises(grpc.RpcError) as negative:
        inventory.stub.CreateStoragePool(
            api.CreateStoragePoolRequest(
                pool=pb.StoragePool(
                    id="neg",
                    centre_id="panyu-hospital",
                    storage_class=pb.STORAGE_CLASS_OBJECT,
                    capacity_gib=-5,
                )
            )
        )
    assert _violations(negative.value) == [("pool.capacity_gib", "must be greater than 0, got -5")]


def test_a_link_to_an_unknown_node_is_refused_and_nothing_is_written(inventory):
    register_region(
        inventory.stub, dataclasses.replace(annex_a_region(), links=(), hosts=(), pools=())
    )
    link = pb.Link(
        id="dangling",
        a_node_id="hospital-core-a",
        b_node_id="no-such-node",
        purpose=pb.LINK_PURPOSE_IP,
        medium=pb.LINK_MEDIUM_DARK_FIBRE,
        pairs=[pb.FibrePair(conduit="c1", up_gbps=10, down_gbps=10)],
    )
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.CreateLink(api.CreateLinkRequest(link=link))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "link.b_node_id: node 'no-such-node' does not exist" in raised.value.details()
    assert list(inventory.stub.ListLinks(api.ListLinksRequest()).links) == []


def test_duplicates_and_removals_of_referred_objects_are_refused(inventory):
    register_region(inventory.stub, annex_a_region())
    with pytest.raises(grpc.RpcError) as duplicate:
        create(inventory.stub, "centre", annex_a_region().centres[0])
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as referred:
        inventory.stub.DeleteCentre(api.DeleteCentreRequest(id="panyu-hospital"))
    assert referred.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is still referred to by" in referred.value.details()


def test_an_update_naming_a_stale_generation_is_aborted(inventory):
    register_region(inventory.stub, annex_a_region())
    host = inventory.stub.GetHost(api.GetHostRequest(id=annex_a_region().hosts[0].id)).host
    host.state = pb.HOST_STATE_MAINTENANCE
    updated = inventory.stub.UpdateHost(api.UpdateHostRequest(host=host)).host
    assert updated.generation == host.generation + 1
    host.state = pb.HOST_STATE_DOWN  # still the old generation
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.UpdateHost(api.UpdateHostRequest(host=host))
    assert raised.value.code() == grpc.StatusCode.ABORTED
    current = inventory.stub.GetHost(api.GetHostRequest(id=host.id)).host
    assert current.state == pb.HOST_STATE_MAINTENANCE


def test_lists_page_through_everything_and_filter(inventory):
    region = annex_a_region()
    register_region(inventory.stub, region)
    seen, token = [], ""
    while True:
        page = inventory.stub.ListHosts(api.ListHostsRequest(page_size=3, page_token=token))
        seen += [h.id for h in page.hosts]
        assert len(page.hosts) <= 3
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(h.id for h in region.hosts)
    cluster_id = region.clusters[0].id
    in_cluster, token = [], ""
    while True:
        page = inventory.stub.ListHosts(
            api.ListHostsRequest(cluster_id=cluster_id, page_size=1, page_token=token)
        )
        in_cluster += [h.id for h in page.hosts]
        token = page.next_page_token
        if not token:
            break
    assert in_cluster == sorted(h.id for h in region.hosts if h.cluster_id == cluster_id)
