"""The conformance report of the example hospital gathered from medcloud's five services as
processes: annex A's region registered in inventory, the site registered, placed and protected as
the operator does it, then judged. A service that stops turns its requirements unknown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.stack import SYSTEM_ADMINISTRATOR, open_channel
from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.operators.conformance import (
    DEFAULT_REQUIREMENTS_FILE,
    INVENTORY,
    JUDGED,
    SCHEDULING,
    Report,
    Status,
    build_report,
    judged_ids,
    load_requirements,
)
from medcloud.operators.conformance_sources import TOPOLOGY_IDS, gather
from medcloud.operators.region import read_region
from medcloud.operators.region_services import GrpcRegionServices, ServiceAddresses
from medcloud.operators.site import HospitalSite, read_site
from medcloud.runtime.tls import TlsMaterial
from medcloud.security.adapters.signing import generate_key_pair
from tests.support.identities import etcd_administration, identity
from tests.support.processes import ROOT, start_service

pytestmark = pytest.mark.integration

SERVICES = ("inventory", "scheduling", "security", "backup", "monitoring")
SITE_SUBJECT = "site/central-hospital"


def _document(path: Path, kind: str) -> dict:  # type: ignore[type-arg]
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind)


@dataclass
class Region:
    addresses: ServiceAddresses
    processes: dict[str, ManagedProcess]
    site: HospitalSite
    tls: TlsMaterial


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("conformance")
    name = f"conf{uuid.uuid4().hex[:8]}"
    key_file = work / "signing.key"
    key_file.write_text(generate_key_pair()[0].hex())
    snapshot = identity("etcd-snapshot", ())
    with etcd_administration(etcd_server.endpoint) as etcd:
        etcd.grant_root("etcd-snapshot")
    addresses = {service: f"127.0.0.1:{free_port()}" for service in SERVICES}
    peers = {f"MEDCLOUD_{s.upper()}_ADDRESS": a for s, a in addresses.items()}
    extra = {
        "security": {"MEDCLOUD_SECURITY_SIGNING_KEY_FILE": str(key_file)},
        "monitoring": {
            "MEDCLOUD_MONITORING_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES": str(16 * 1024**2),
        },
        "backup": {
            "MEDCLOUD_BACKUP_SNAPSHOT_DIR": str(work / "backup-centre"),
            "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE": str(snapshot.cert),
            "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE": str(snapshot.key),
            "MEDCLOUD_BACKUP_VERIFY_READY": "false",
        },
    }

    def start(service: str) -> ManagedProcess:
        process, _ = start_service(
            f"medcloud.{service}",
            etcd_server.endpoint,
            nats_server.url,
            name,
            work / f"{service}.log",
            address=addresses[service],
            extra_env={**peers, **extra.get(service, {})},
        )
        return process

    processes: dict[str, ManagedProcess] = {}
    try:
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            for service, process in zip(SERVICES, pool.map(start, SERVICES), strict=True):
                processes[service] = process
        admin = identity("tester-conformance-admin", (SYSTEM_ADMINISTRATOR,))
        with open_channel(addresses["inventory"], admin) as channel:
            register_region(inventory_grpc.InventoryServiceStub(channel), annex_a_region())
        started = Region(
            ServiceAddresses(**addresses),
            processes,
            read_site(_document(ROOT / "examples" / "hospital-central.yaml", "HospitalSite")),
            admin.material(),
        )
        asyncio.run(_as_the_operator_does(started))
        yield started
    finally:
        for process in processes.values():
            process.stop()


async def _as_the_operator_does(region: Region) -> None:
    """The region's facts, then the site registered, placed and protected."""
    services = GrpcRegionServices(region.addresses, region.tls)
    try:
        await services.apply_region(
            read_region(_document(ROOT / "examples" / "region-panyu.yaml", "Region"))
        )
        await services.register_site(region.site)
        placed = await services.place_systems(region.site)
        assert {p.state for p in placed} == {"placed"}, placed
        await services.protect_systems(region.site)
    finally:
        await services.close()


def _requirements():  # type: ignore[no-untyped-def]
    return (
        load_requirements(DEFAULT_REQUIREMENTS_FILE) if DEFAULT_REQUIREMENTS_FILE.is_file() else []
    )


async def _report(region: Region) -> Report:
    evidence = await gather(region.site, region.addresses, region.tls, inspect_now=True)
    return build_report(evidence, JUDGED, _requirements())


def _table(report: Report) -> str:
    return "\n".join(" | ".join(row) for row in report.rows())


async def test_the_example_site_fails_the_baseline_and_meets_annex_a_topology(region):
    report = await _report(region)
    table = _table(report)
    assert report.unavailable == {}, table
    assert report.summary["total"] == len(JUDGED)

    # No security administrator has allocated the pool's capabilities to the site.
    for requirement_id in ("R-7.2.4", "R-7.5a", "R-7.5b", "R-A.2.8"):
        entry = report.entry(requirement_id)
        assert entry.status is Status.FAIL, table
        assert SITE_SUBJECT in entry.subject
        assert "MLPS3-" in entry.message and "allocated" in entry.message

    # Annex A's region as registered: every rule ValidateTopology runs finds nothing.
    topology_only = set(TOPOLOGY_IDS) - {"R-7.2.2", "R-7.2.5", "R-7.3c"}
    for requirement_id in topology_only:
        entry = report.entry(requirement_id)
        assert entry.status is Status.PASS, table
        assert entry.subject == "region"
    # The site's clusters are inventory's, private in its room and public at the carrier.
    assert report.entry("R-5.5").status is Status.PASS, table
    assert report.entry("R-7.2.1").status is Status.PASS, table

    # Placed as the standard asks.
    for requirement_id in ("R-7.3a", "R-7.3c", "R-7.4a", "R-7.4b", "R-7.4c", "R-7.9.4", "R-7.9.9"):
        assert report.entry(requirement_id).status is Status.PASS, table
    # No system at tier 6 or above.
    assert report.entry("R-7.6c").status is Status.NOT_APPLICABLE, table
    # No node agent in the room: the inspection run now has no reading of anything.
    temperature = report.entry("R-7.1-1")
    assert temperature.status is Status.FAIL, table
    assert "no reading" in temperature.message
    assert report.entry("R-7.7c").status is Status.FAIL, table
    # Monitoring never inspected the room by itself (it knows no agent there): the inspection run
    # on demand shows the room, not that automated inspection works.
    automated = report.entry("R-6.5b")
    assert automated.status is Status.UNKNOWN, table
    assert "no automated inspection to show" in automated.message

    # Protected as the tiers ask, but no member cluster takes the scheduled copies here.
    assert report.entry("R-7.3-arch").status is Status.PASS, table
    assert report.entry("R-7.6b").status is Status.PASS, table
    backup = report.entry("R-7.2.5")
    assert backup.status is Status.FAIL, table
    assert "scheduled copies not in place" in backup.message

    # Nothing passes without evidence.
    assert not [e.id for e in report.entries if e.status is Status.PASS and not e.message]
    document = report.as_dict()
    assert set(document) == {"requirements", "summary"}
    assert report.summary_line().endswith(f"{report.summary['unknown']} unknown")


async def test_sites_sharing_a_room_register_it_at_once_and_it_keeps_its_name(region):
    """Hospitals whose HospitalSites name one room, applied together: each registration reads
    again after another's write instead of failing, and the room keeps the name it had."""
    admin = identity("tester-conformance-admin", (SYSTEM_ADMINISTRATOR,))
    room = region.site.room_centre_id
    with open_channel(region.addresses.inventory, admin) as channel:
        stub = inventory_grpc.InventoryServiceStub(channel)
        name_before = stub.GetCentre(inventory_api.GetCentreRequest(id=room)).centre.display_name
    sites = []
    for n in range(6):
        document = _document(ROOT / "examples" / "hospital-central.yaml", "HospitalSite")
        document["metadata"]["name"] = f"shared-{n}"
        document["spec"]["hospitalId"] = f"shared-{n}-hospital"
        document["spec"]["displayName"] = f"Shared hospital {n}"
        sites.append(read_site(document))
    services = GrpcRegionServices(region.addresses, region.tls)
    try:
        summaries = await asyncio.gather(*(services.register_site(site) for site in sites))
        assert all(summary.startswith(f"room {room}") for summary in summaries)
        with open_channel(region.addresses.inventory, admin) as channel:
            stub = inventory_grpc.InventoryServiceStub(channel)
            centre = stub.GetCentre(inventory_api.GetCentreRequest(id=room)).centre
            for site in sites:
                for cluster in site.clusters:
                    cluster_id = f"{site.hospital_id}-{cluster.name}"
                    stub.GetCluster(inventory_api.GetClusterRequest(id=cluster_id))
        assert centre.display_name == name_before
        room_ids = frozenset(
            {room, *(n for n, _ in sites[0].nodes), *(lk.id for lk in sites[0].links)}
        )
        for site in sites:
            await services.remove_site(site, room_ids)
    finally:
        await services.close()


async def test_a_stopped_service_turns_its_requirements_unknown_rather_than_pass(region):
    before = await _report(region)
    passed = {e.id for e in before.entries if e.status is Status.PASS}
    scheduled = set(judged_ids(SCHEDULING)) & passed
    assert {"R-7.3a", "R-7.9.9", "R-7.3c"} <= scheduled, _table(before)

    region.processes["scheduling"].stop()
    after = await _report(region)
    table = _table(after)
    assert set(after.unavailable) == {SCHEDULING}, table
    assert "UNAVAILABLE" in after.unavailable[SCHEDULING]
    for requirement_id in scheduled:
        entry = after.entry(requirement_id)
        assert entry.status is Status.UNKNOWN, table
        assert f"no evidence from scheduling: scheduling at {region.addresses.scheduling}" in (
            entry.message
        )
    # R-7.3c was judged by inventory too, and it still says so.
    assert "ValidateTopology finds no breach" in after.entry("R-7.3c").message
    # What the other sources judge stands as it was.
    for requirement_id in set(judged_ids(INVENTORY)) - set(judged_ids(SCHEDULING)):
        assert after.entry(requirement_id).status is before.entry(requirement_id).status
    assert after.entry("R-7.6c").status is Status.NOT_APPLICABLE
