"""The topology rules: annex A's reference region passes, and each rule, given one changed fact,
names the requirement, the room, link or flavor at fault, and the numbers involved."""

from __future__ import annotations

from dataclasses import replace

from medcloud.inventory.domain.model import (
    CentreRole,
    FibrePair,
    Flavor,
    LinkMedium,
    LinkPurpose,
    NodeRole,
    Region,
    StorageClass,
)
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.domain.topology import Finding, validate_topology

ANNEX_A = annex_a_region()


def changed(region: Region, facts: str, fact_id: str, **changes: object) -> Region:
    """The region with the fact `fact_id` of `facts` ("links", "centres" ...) changed."""
    items = getattr(region, facts)
    assert fact_id in {item.id for item in items}, f"no {fact_id} in {facts}"
    return replace(
        region,
        **{facts: tuple(replace(i, **changes) if i.id == fact_id else i for i in items)},
    )


def without(region: Region, facts: str, *fact_ids: str) -> Region:
    items = getattr(region, facts)
    assert set(fact_ids) <= {item.id for item in items}, f"not all of {fact_ids} in {facts}"
    return replace(region, **{facts: tuple(i for i in items if i.id not in fact_ids)})


def pair_of(conduit: str, gbps: float, down_gbps: float | None = None) -> FibrePair:
    return FibrePair(conduit, up_gbps=gbps, down_gbps=gbps if down_gbps is None else down_gbps)


def where(region: Region) -> list[tuple[str, str]]:
    """Each finding as (requirement, subject), in the order validate_topology gives them."""
    return [(finding.requirement_id, finding.subject) for finding in validate_topology(region)]


def only_finding(region: Region) -> Finding:
    findings = validate_topology(region)
    assert len(findings) == 1, findings
    return findings[0]


def test_annex_a_reference_region_is_compliant():
    assert {centre.role for centre in ANNEX_A.centres} == set(CentreRole)
    assert validate_topology(ANNEX_A) == []


# R-A.2: three centres, four nodes, one backup


def test_hospital_room_without_core_node_b_is_reported_on_the_room():
    region = changed(ANNEX_A, "nodes", "hospital-core-b", role=NodeRole.CORE)
    # Without a core node B there is also nothing for core node A's local link to reach.
    assert where(region) == [
        ("R-A.2", "centre/panyu-hospital"),
        ("R-A.2.4", "centre/panyu-hospital"),
    ]
    assert "core node B" in validate_topology(region)[0].message


def test_region_without_backup_centre_is_reported_on_the_region():
    finding = only_finding(without(ANNEX_A, "centres", "guiyang-backup"))
    assert (finding.requirement_id, finding.subject) == ("R-A.2", "region")
    assert "backup centre" in finding.message


def test_each_missing_piece_is_one_finding_where_it_is_missing():
    region = without(ANNEX_A, "nodes", "standby-core")
    assert where(region) == [
        ("R-A.2", "centre/panyu-carrier-standby"),
        ("R-A.2.3", "centre/panyu-hospital"),
        ("R-A.2.4", "centre/panyu-carrier-production"),
    ]


def test_backup_centre_needs_no_network_node_of_its_own():
    region = without(ANNEX_A, "nodes", "backup-core")
    region = without(region, "links", "production-backup-ip")
    assert validate_topology(region) == []


# same-city active-active


def test_hospital_room_outside_the_carrier_production_city_is_reported():
    finding = only_finding(changed(ANNEX_A, "centres", "panyu-hospital", city="Foshan"))
    assert (finding.requirement_id, finding.subject) == ("R-7.2.2", "centre/panyu-hospital")
    assert "Foshan" in finding.message and "Guangzhou" in finding.message


def test_city_names_match_regardless_of_case_and_spaces():
    region = changed(ANNEX_A, "centres", "panyu-hospital", city=" guangzhou")
    assert validate_topology(region) == []


# out-of-province backup


def test_backup_centre_in_the_hospital_province_is_reported():
    region = changed(ANNEX_A, "centres", "guiyang-backup", city="Shenzhen", province="Guangdong")
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-7.2.5", "centre/guiyang-backup")
    for named in ("Guangdong", "panyu-hospital", "panyu-carrier-production"):
        assert named in finding.message


def test_backup_centre_in_any_other_province_is_compliant():
    region = changed(ANNEX_A, "centres", "guiyang-backup", city="Changsha", province="Hunan")
    assert validate_topology(region) == []


# R-A.2.1: core node A to carrier production, IP, 2 pairs, 20 Gbit/s


def test_core_a_uplink_with_one_pair_is_reported_on_the_link():
    link = next(link for link in ANNEX_A.links if link.id == "core-a-production-ip")
    finding = only_finding(changed(ANNEX_A, "links", link.id, pairs=link.pairs[:1]))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.1", "link/core-a-production-ip")
    for number in ("1 pair carrying 10 Gbit/s", "2 pairs", "20 Gbit/s"):
        assert number in finding.message


def test_core_a_without_uplink_is_reported_on_its_room():
    finding = only_finding(without(ANNEX_A, "links", "core-a-production-ip"))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.1", "centre/panyu-hospital")
    assert "hospital-core-a" in finding.message and "20 Gbit/s" in finding.message


def test_links_count_whichever_end_is_named_first():
    region = changed(
        ANNEX_A,
        "links",
        "core-a-production-ip",
        a_node_id="production-core",
        b_node_id="hospital-core-a",
    )
    assert validate_topology(region) == []


# R-A.2.2: hospital room to carrier production, FC-SAN, 2 pairs, 20 Gbit/s


def test_fc_san_link_with_one_pair_is_reported_on_the_link():
    link = next(link for link in ANNEX_A.links if link.id == "hospital-production-fc-san")
    finding = only_finding(changed(ANNEX_A, "links", link.id, pairs=link.pairs[:1]))
    assert (finding.requirement_id, finding.subject) == (
        "R-A.2.2",
        "link/hospital-production-fc-san",
    )
    assert "1 pair carrying 10 Gbit/s" in finding.message and "20 Gbit/s" in finding.message


def test_hospital_room_without_fc_san_link_is_reported_on_the_room():
    finding = only_finding(without(ANNEX_A, "links", "hospital-production-fc-san"))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.2", "centre/panyu-hospital")
    assert "FC-SAN" in finding.message and "20 Gbit/s" in finding.message


def test_fc_san_link_may_leave_from_any_node_of_the_hospital_room():
    region = changed(ANNEX_A, "links", "hospital-production-fc-san", a_node_id="hospital-core-b")
    assert validate_topology(region) == []


# R-A.2.3: core node B to carrier standby, IP, 2 pairs, 20 Gbit/s


def test_core_b_uplink_of_two_slow_pairs_is_reported_on_the_link():
    region = changed(
        ANNEX_A,
        "links",
        "core-b-standby-ip",
        medium=LinkMedium.LEASED_LINE,
        pairs=(pair_of("east", 5), pair_of("west", 5)),
    )
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-A.2.3", "link/core-b-standby-ip")
    assert "2 pairs carrying 10 Gbit/s" in finding.message and "20 Gbit/s" in finding.message


def test_core_b_link_of_another_purpose_does_not_count_as_its_uplink():
    region = changed(ANNEX_A, "links", "core-b-standby-ip", purpose=LinkPurpose.LOCAL)
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-A.2.3", "centre/panyu-hospital")
    assert "hospital-core-b" in finding.message


def test_uplink_speed_is_its_slower_direction():
    fast_enough = (pair_of("east", 12, 10), pair_of("west", 12, 10))
    too_slow = (pair_of("east", 12, 9), pair_of("west", 12, 10))
    leased = {"medium": LinkMedium.LEASED_LINE}
    assert (
        validate_topology(
            changed(ANNEX_A, "links", "core-b-standby-ip", pairs=fast_enough, **leased)
        )
        == []
    )
    finding = only_finding(changed(ANNEX_A, "links", "core-b-standby-ip", pairs=too_slow, **leased))
    assert finding.requirement_id == "R-A.2.3" and "19 Gbit/s" in finding.message


# R-A.2.4: core A to core B, and carrier production to standby, local, 40 Gbit/s


def test_core_interconnect_of_three_pairs_is_reported_on_the_link():
    link = next(link for link in ANNEX_A.links if link.id == "core-a-core-b-local")
    finding = only_finding(changed(ANNEX_A, "links", link.id, pairs=link.pairs[:3]))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.4", "link/core-a-core-b-local")
    assert "30 Gbit/s" in finding.message and "40 Gbit/s" in finding.message


def test_carrier_rooms_without_interconnect_are_reported_on_carrier_production():
    finding = only_finding(without(ANNEX_A, "links", "production-standby-local"))
    assert (finding.requirement_id, finding.subject) == (
        "R-A.2.4",
        "centre/panyu-carrier-production",
    )
    assert "production-core" in finding.message and "40 Gbit/s" in finding.message


def test_core_nodes_a_and_b_of_different_hospital_rooms_make_no_interconnect():
    hospital = next(centre for centre in ANNEX_A.centres if centre.id == "panyu-hospital")
    region = replace(ANNEX_A, centres=(*ANNEX_A.centres, replace(hospital, id="east-hospital")))
    region = changed(region, "nodes", "hospital-core-b", centre_id="east-hospital")
    assert where(region) == [
        ("R-A.2", "centre/panyu-hospital"),
        ("R-A.2", "centre/east-hospital"),
        ("R-A.2.2", "centre/east-hospital"),
        ("R-A.2.4", "centre/panyu-hospital"),
    ]


def test_core_interconnect_of_two_25g_pairs_is_compliant():
    pairs = (pair_of("tray-1", 25), pair_of("tray-2", 25))
    assert validate_topology(changed(ANNEX_A, "links", "core-a-core-b-local", pairs=pairs)) == []


# R-A.2.5: branch lines in pairs, to the hospital room and to carrier production, 1000M each


def test_branch_without_line_to_carrier_production_is_reported_on_the_branch_site():
    finding = only_finding(without(ANNEX_A, "links", "shiqiao-production-line"))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.5", "centre/shiqiao-branch")
    for named in ("shiqiao-access", "carrier production", "1 Gbit/s"):
        assert named in finding.message


def test_branch_line_circuit_below_1000m_is_reported_on_the_line():
    link = next(link for link in ANNEX_A.links if link.id == "shiqiao-hospital-line")
    pairs = (*link.pairs[:2], pair_of("shiqiao-duct-3", 0.5))
    finding = only_finding(changed(ANNEX_A, "links", link.id, pairs=pairs))
    assert (finding.requirement_id, finding.subject) == ("R-A.2.5", "link/shiqiao-hospital-line")
    for number in ("1 of its 3", "0.5 Gbit/s", "1 Gbit/s"):
        assert number in finding.message


def test_one_line_to_each_room_is_enough_for_a_branch():
    region = changed(ANNEX_A, "links", "shiqiao-hospital-line", pairs=(pair_of("north", 1),))
    region = changed(region, "links", "shiqiao-production-line", pairs=(pair_of("south", 1),))
    assert validate_topology(region) == []


# R-A.2.6: paired resources in different conduits


def test_link_with_both_pairs_in_one_conduit_is_reported():
    region = changed(
        ANNEX_A,
        "links",
        "core-a-production-ip",
        pairs=(pair_of("Hospital-East", 10), pair_of("hospital-east ", 10)),
    )
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-A.2.6", "link/core-a-production-ip")
    assert "Hospital-East" in finding.message
    assert "2 of the 2 pairs" in finding.message and "at most 1" in finding.message


def test_link_with_three_of_four_pairs_in_one_conduit_is_reported():
    pairs = (pair_of("tray-1", 10), pair_of("tray-1", 10), pair_of("tray-1", 10))
    region = changed(ANNEX_A, "links", "core-a-core-b-local", pairs=(*pairs, pair_of("tray-2", 10)))
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-A.2.6", "link/core-a-core-b-local")
    assert "3 of the 4 pairs" in finding.message and "at most 2" in finding.message


def test_four_pairs_split_evenly_over_two_conduits_are_compliant():
    pairs = tuple(pair_of(conduit, 10) for conduit in ("tray-1", "tray-1", "tray-2", "tray-2"))
    assert validate_topology(changed(ANNEX_A, "links", "core-a-core-b-local", pairs=pairs)) == []


# R-7.8a: dark fibre at 10GE or more, symmetric


def test_asymmetric_dark_fibre_pair_is_reported():
    link = next(link for link in ANNEX_A.links if link.id == "core-a-production-ip")
    pairs = (link.pairs[0], replace(link.pairs[1], up_gbps=10, down_gbps=12))
    finding = only_finding(changed(ANNEX_A, "links", link.id, pairs=pairs))
    assert (finding.requirement_id, finding.subject) == ("R-7.8a", "link/core-a-production-ip")
    for number in ("Pair 2", "10 Gbit/s up", "12 Gbit/s down"):
        assert number in finding.message


def test_each_dark_fibre_pair_below_10g_is_reported():
    region = changed(ANNEX_A, "links", "shiqiao-hospital-line", medium=LinkMedium.DARK_FIBRE)
    findings = validate_topology(region)
    assert where(region) == [("R-7.8a", "link/shiqiao-hospital-line")] * 3
    assert [f.message.split(" of ")[0] for f in findings] == ["Pair 1", "Pair 2", "Pair 3"]
    assert all("1 Gbit/s up" in f.message and "10 Gbit/s" in f.message for f in findings)


def test_branch_line_on_10g_dark_fibre_is_compliant():
    region = changed(
        ANNEX_A,
        "links",
        "shiqiao-hospital-line",
        medium=LinkMedium.DARK_FIBRE,
        pairs=(pair_of("north", 10), pair_of("south", 10)),
    )
    assert validate_topology(region) == []


# R-7.8b: xPON is asymmetric by design and carries no FC-SAN or core interconnect


def test_asymmetric_gpon_branch_lines_are_compliant():
    gpon = (pair_of("north", 1.24416, 2.48832), pair_of("south", 1.24416, 2.48832))
    region = ANNEX_A
    for line in ("shiqiao-hospital-line", "shiqiao-production-line"):
        region = changed(region, "links", line, medium=LinkMedium.XPON, pairs=gpon)
    assert validate_topology(region) == []


def test_fc_san_over_xpon_is_reported():
    region = changed(ANNEX_A, "links", "hospital-production-fc-san", medium=LinkMedium.XPON)
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == (
        "R-7.8b",
        "link/hospital-production-fc-san",
    )
    assert "FC-SAN" in finding.message and "dark fibre" in finding.message


def test_core_interconnect_over_xpon_is_reported():
    region = changed(ANNEX_A, "links", "production-standby-local", medium=LinkMedium.XPON)
    finding = only_finding(region)
    assert (finding.requirement_id, finding.subject) == ("R-7.8b", "link/production-standby-local")
    assert "2.48832 Gbit/s" in finding.message


# R-7.4-0: block, object and file storage


def test_region_without_object_storage_is_reported():
    finding = only_finding(without(ANNEX_A, "pools", "production-object"))
    assert (finding.requirement_id, finding.subject) == ("R-7.4-0", "region")
    assert "0 object storage pools" in finding.message


def test_region_without_nas_is_reported():
    finding = only_finding(without(ANNEX_A, "pools", "hospital-pacs-nas"))
    assert (finding.requirement_id, finding.subject) == ("R-7.4-0", "region")
    assert "0 file (NAS) storage pools" in finding.message


def test_one_pool_each_of_block_object_and_file_is_enough():
    required = {StorageClass.BLOCK_FC_SAN, StorageClass.OBJECT, StorageClass.FILE_NAS}
    first_of_each = {}
    for pool in ANNEX_A.pools:
        if pool.storage_class in required:
            first_of_each.setdefault(pool.storage_class, pool)
    assert validate_topology(replace(ANNEX_A, pools=tuple(first_of_each.values()))) == []


# R-7.3c: the largest single instance is 64 vCPU and 256 GiB


def test_flavor_over_64_vcpu_is_reported():
    finding = only_finding(changed(ANNEX_A, "flavors", "c64m256", vcpu=65))
    assert (finding.requirement_id, finding.subject) == ("R-7.3c", "flavor/c64m256")
    assert "65 vCPU" in finding.message and "64 vCPU" in finding.message


def test_flavor_over_256_gib_is_reported():
    finding = only_finding(changed(ANNEX_A, "flavors", "c64m256", memory_gib=512))
    assert (finding.requirement_id, finding.subject) == ("R-7.3c", "flavor/c64m256")
    assert "512 GiB" in finding.message and "256 GiB" in finding.message


def test_flavor_at_exactly_64_vcpu_and_256_gib_is_compliant():
    region = replace(ANNEX_A, flavors=(Flavor("largest", vcpu=64, memory_gib=256),))
    assert validate_topology(region) == []


def test_findings_come_in_the_order_of_the_rules():
    region = changed(ANNEX_A, "flavors", "c64m256", vcpu=96)
    region = without(region, "pools", "production-object")
    region = changed(region, "centres", "panyu-hospital", city="Foshan")
    assert where(region) == [
        ("R-7.2.2", "centre/panyu-hospital"),
        ("R-7.4-0", "region"),
        ("R-7.3c", "flavor/c64m256"),
    ]
