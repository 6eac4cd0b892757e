"""Each placement rule admits a host it should and refuses one it should not, with a reason that names
the numbers."""

from __future__ import annotations

from medcloud.scheduling.domain.model import (
    DataClassification,
    Instance,
    Preferences,
    RegionView,
    Role,
    StorageClass,
    SystemKind,
)
from medcloud.scheduling.domain.placement import place_system
from medcloud.scheduling.domain.progress import PlacedSoFar, WorkingView
from medcloud.scheduling.domain.rules import (
    CapacityFilter,
    DataResidencyFilter,
    HostAntiAffinityFilter,
    PrimaryStandbyAntiAffinityFilter,
    RackAntiAffinityFilter,
    RemoteCityStandbyFilter,
    SameCityStandbyFilter,
    StorageFilter,
)
from tests.unit.scheduling.regions import (
    BACKUP_PRIVATE_HOST,
    BACKUP_PUBLIC_HOST,
    HOSPITAL_HOSTS,
    POOLS,
    PRODUCTION_HOSTS,
    REGION,
    STANDBY_HOSTS,
    his,
    host,
    roles,
)

PRIMARY = Instance("his-1", Role.PRIMARY, 0)
STANDBY = Instance("his-1", Role.STANDBY, 0)
HOSP_H1, HOSP_H2, HOSP_H3 = HOSPITAL_HOSTS
PROD_H1, PROD_H2 = PRODUCTION_HOSTS
(STBY_H1,) = STANDBY_HOSTS


def with_primary_on(*hosts) -> PlacedSoFar:
    placed = PlacedSoFar()
    for index, primary_host in enumerate(hosts):
        placed.record(Instance("his-1", Role.PRIMARY, index), primary_host)
    return placed


def refusal(rule, system, instance, candidate, placed=None, view=REGION):
    return rule.refusal(system, instance, candidate, placed or PlacedSoFar(), WorkingView(view))


def test_capacity_admits_what_fits_and_names_what_is_short():
    small = host("small", "hosp", free_vcpu=4, free_memory_gib=16)
    assert refusal(CapacityFilter(), his(), PRIMARY, HOSP_H1) is None
    assert (
        refusal(CapacityFilter(), his(), PRIMARY, small)
        == "8 vCPU needed, 4 free; 32 GiB memory needed, 16 free"
    )


def test_storage_takes_the_roomiest_pool_of_the_class_in_the_host_centre():
    fc_san = StorageFilter(StorageClass.BLOCK_FC_SAN, "R-7.4a")
    # bak-san-2 has 4000 GiB, bak-san-1 3000: 3500 fits only the roomier one.
    assert refusal(fc_san, his(storage_gib=3500), PRIMARY, BACKUP_PRIVATE_HOST) is None
    assert refusal(fc_san, his(storage_gib=4500), PRIMARY, BACKUP_PRIVATE_HOST) == (
        "4500 GiB needed, the roomiest block-fc-san pool in centre bak (bak-san-2) has 4000 GiB free"
    )


def test_pacs_images_need_a_nas_pool_in_the_centre_r_7_4b():
    nas = StorageFilter(StorageClass.FILE_NAS, "R-7.4b")
    pacs = his(kind=SystemKind.PACS_IMAGES, storage_gib=10000)
    assert nas.applies(pacs, PRIMARY)
    assert not nas.applies(his(), PRIMARY)
    assert refusal(nas, pacs, PRIMARY, HOSP_H1) is None
    assert refusal(nas, pacs, PRIMARY, PROD_H1) == "centre prod has no file-nas pool"


def test_a_system_without_storage_needs_no_pool():
    fc_san = StorageFilter(StorageClass.BLOCK_FC_SAN, "R-7.4a")
    assert not fc_san.applies(his(storage_gib=0), PRIMARY)


def test_health_data_stays_off_public_clusters_outside_the_carrier_cloud_r_7_2_5():
    residency = DataResidencyFilter()
    assert refusal(residency, his(), PRIMARY, HOSP_H1) is None
    assert refusal(residency, his(), PRIMARY, PROD_H1) is None
    assert refusal(residency, his(), PRIMARY, BACKUP_PRIVATE_HOST) is None
    assert refusal(residency, his(), PRIMARY, BACKUP_PUBLIC_HOST) == (
        "personal-health-data data may not go to a public cluster (bak-public) in a "
        "backup-centre centre (bak)"
    )
    limited = his(classification=DataClassification.LIMITED_DATA_SET)
    assert refusal(residency, limited, PRIMARY, BACKUP_PUBLIC_HOST) is not None


def test_de_identified_data_may_use_any_public_cluster():
    de_identified = his(classification=DataClassification.DE_IDENTIFIED)
    assert not DataResidencyFilter().applies(de_identified, PRIMARY)


def test_a_standby_never_shares_a_host_with_its_primary_r_7_9_9():
    anti_affinity = PrimaryStandbyAntiAffinityFilter()
    placed = with_primary_on(HOSP_H1)
    assert refusal(anti_affinity, his(dr_tier=0), STANDBY, HOSP_H2, placed) is None
    assert (
        refusal(anti_affinity, his(dr_tier=0), STANDBY, HOSP_H1, placed)
        == "host hosp-h1 already holds a primary of his-1"
    )


def test_a_primary_never_joins_a_standby_either():
    placed = PlacedSoFar()
    placed.record(STANDBY, HOSP_H1)
    assert refusal(PrimaryStandbyAntiAffinityFilter(), his(), PRIMARY, HOSP_H1, placed) == (
        "host hosp-h1 already holds a standby of his-1"
    )


def test_replicas_are_not_bound_by_primary_standby_anti_affinity():
    replica = Instance("his-1", Role.REPLICA, 0)
    assert not PrimaryStandbyAntiAffinityFilter().applies(his(), replica)


def test_host_anti_affinity_is_hard_from_tier_5_and_soft_below():
    hard, soft = HostAntiAffinityFilter(hard=True), HostAntiAffinityFilter(hard=False)
    second_primary = Instance("his-1", Role.PRIMARY, 1)
    assert hard.applies(his(dr_tier=5), second_primary)
    assert not hard.applies(his(dr_tier=4), second_primary)
    assert soft.applies(his(dr_tier=4), second_primary)
    assert not soft.hard
    placed = with_primary_on(HOSP_H1)
    assert refusal(hard, his(), second_primary, HOSP_H2, placed) is None
    assert refusal(hard, his(), second_primary, HOSP_H1, placed) == (
        "host hosp-h1 already holds 1 instance(s) of his-1"
    )


def test_rack_anti_affinity_is_soft_and_knows_racks_of_one_name_in_two_rooms_apart():
    rack = RackAntiAffinityFilter()
    placed = with_primary_on(HOSP_H1)
    assert not rack.hard
    assert refusal(rack, his(), STANDBY, HOSP_H3, placed) is None
    assert refusal(rack, his(), STANDBY, PROD_H1, placed) is None
    assert refusal(rack, his(), STANDBY, HOSP_H2, placed) == (
        "rack r1 in centre hosp already holds 1 instance(s) of his-1"
    )


def test_a_tier_5_standby_goes_to_another_centre_in_the_primary_city_r_7_6b():
    same_city = SameCityStandbyFilter()
    placed = with_primary_on(HOSP_H1)
    assert same_city.applies(his(dr_tier=5), STANDBY)
    assert not same_city.applies(his(dr_tier=6), STANDBY)
    assert not same_city.applies(his(dr_tier=5), PRIMARY)
    assert refusal(same_city, his(), STANDBY, PROD_H1, placed) is None
    assert refusal(same_city, his(), STANDBY, HOSP_H2, placed) == (
        "centre hosp already holds a primary of his-1"
    )
    assert refusal(same_city, his(), STANDBY, BACKUP_PRIVATE_HOST, placed) == (
        "Chengdu is not the primaries' city (Guangzhou), as tier 5 needs"
    )


def test_a_tier_6_standby_goes_to_another_city_r_7_6c():
    remote = RemoteCityStandbyFilter()
    placed = with_primary_on(HOSP_H1)
    assert remote.applies(his(dr_tier=7), STANDBY)
    assert not remote.applies(his(dr_tier=5), STANDBY)
    assert refusal(remote, his(dr_tier=6), STANDBY, BACKUP_PRIVATE_HOST, placed) is None
    assert refusal(remote, his(dr_tier=6), STANDBY, STBY_H1, placed) == (
        "Guangzhou already holds a primary of his-1; tier 6 needs the standby in another city"
    )


def chosen_hosts(decision) -> list[str]:
    return [assignment.host_id for assignment in decision.assignments]


def test_portal_email_and_oa_go_to_public_clusters_first_r_7_4c():
    portal = his(
        id="portal-1",
        kind=SystemKind.PORTAL,
        classification=DataClassification.PUBLIC,
        roles=roles(primaries=1),
        dr_tier=0,
    )
    decision = place_system(portal, REGION)
    assert chosen_hosts(decision) == ["prod-h1"]
    assert decision.assignments[0].pool_id == "prod-dist"
    # The same system as an EMR would stay in the hospital room, first by host id.
    assert chosen_hosts(place_system(his(roles=roles(1), dr_tier=0), REGION)) == ["hosp-h1"]


def test_preferences_pull_instances_to_the_preferred_centre():
    wish = Preferences(centre_ids=frozenset({"prod"}))
    decision = place_system(his(roles=roles(1), dr_tier=0, preferences=wish), REGION)
    assert chosen_hosts(decision) == ["prod-h1"]


def test_spread_prefers_the_host_with_most_room_left():
    busy = host("a-busy", "hosp", free_vcpu=16)
    idle = host("b-idle", "hosp", free_vcpu=64)
    view = RegionView(hosts=(busy, idle), pools=POOLS)
    assert chosen_hosts(place_system(his(roles=roles(1), dr_tier=0), view)) == ["b-idle"]


def test_primaries_prefer_production_sites_over_dr_sites():
    view = RegionView(hosts=(BACKUP_PRIVATE_HOST, STBY_H1, PROD_H2), pools=POOLS)
    assert chosen_hosts(place_system(his(roles=roles(1), dr_tier=0), view)) == ["prod-h2"]
