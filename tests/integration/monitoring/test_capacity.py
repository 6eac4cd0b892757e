"""Capacity management (R-6.5b): utilisation per centre comes from inventory's claims and is judged
by the capacity rules like any other series."""

from __future__ import annotations

from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_pb2 as inv
from medcloud.inventory.v1 import inventory_service_pb2 as inv_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from medcloud.monitoring.v1 import monitoring_pb2 as pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from tests.support.identities import aio_client_channel, client_channel
from tests.support.processes import start_service


async def test_a_centre_claimed_past_ninety_percent_raises_a_critical_capacity_alert(
    etcd_server, nats_server, region, tmp_path, monitoring_factory, events
):
    inventory, inventory_address = start_service(
        "medcloud.inventory", etcd_server.endpoint, nats_server.url, region, tmp_path / "inv.log"
    )
    try:
        with client_channel(inventory_address) as channel:
            stub = inv_grpc.InventoryServiceStub(channel)
            register_region(stub, annex_a_region())
            clusters = {
                c.id
                for c in stub.ListClusters(inv_api.ListClustersRequest()).clusters
                if c.centre_id == "panyu-hospital"
            }
            hosts = [
                h
                for h in stub.ListHosts(inv_api.ListHostsRequest()).hosts
                if h.cluster_id in clusters
            ]
            stub.PutClaim(
                inv_api.PutClaimRequest(
                    claim=inv.Claim(
                        consumer_id="his-primary",
                        allocations=[
                            inv.Allocation(
                                provider=inv.ProviderRef(host_id=h.id),
                                resources=inv.Resources(vcpu=h.vcpu * 95 // 100, memory_gib=1),
                            )
                            for h in hosts
                        ],
                    )
                )
            )
        monitoring = monitoring_factory(
            MEDCLOUD_INVENTORY_ADDRESS=inventory_address,
            MEDCLOUD_MONITORING_CAPACITY_SECONDS="0.5",
        )
        raised = await events.wait_for("AlertRaised", count=2)
        by_rule = {r.alert.rule_id: r.alert for r in raised}
        assert set(by_rule) == {"capacity.utilisation.warning", "capacity.utilisation.critical"}
        critical = by_rule["capacity.utilisation.critical"]
        assert critical.series.centre_id == "panyu-hospital"
        assert dict(critical.series.labels) == {"resource": "vcpu"}
        assert critical.requirement_id == "R-6.5b"
        assert critical.severity == pb.SEVERITY_CRITICAL

        async with aio_client_channel(monitoring.address) as channel:
            monitoring_stub = api_grpc.MonitoringServiceStub(channel)
            others = await monitoring_stub.ListAlerts(
                api.ListAlertsRequest(centre_id="panyu-carrier-production")
            )
            assert list(others.alerts) == []
    finally:
        inventory.stop()
