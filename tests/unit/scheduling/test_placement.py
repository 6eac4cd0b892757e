"""A system is placed whole or not at all, and every decision says which rule removed which host."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.scheduling.domain.model import Instance, PoolOption, RegionView, Role, StorageClass
from medcloud.scheduling.domain.placement import Decision, Refusal, place_system
from medcloud.scheduling.domain.rules import RuleRef
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

STANDBY = Instance("his-1", Role.STANDBY, 0)
RESIDENCY = RuleRef("R-7.2.5", "data residency")
PRIMARY_STANDBY = RuleRef("R-7.9.9", "primary/standby anti-affinity")
REMOTE_CITY = RuleRef("R-7.6c", "standby in another city")
CAPACITY = RuleRef("R-7.3a", "capacity")
RACK = RuleRef("", "rack anti-affinity")
SOFT_HOST = RuleRef("R-7.3a", "host anti-affinity (soft below tier 5)")


def placements(decision: Decision) -> list[tuple[str, str, str]]:
    return [(str(a.instance), a.host_id, a.pool_id) for a in decision.assignments]


def test_a_tier_5_his_runs_active_active_in_two_rooms_of_one_city():
    decision = place_system(his(), REGION)
    assert placements(decision) == [
        ("primary #0 of his-1", "hosp-h1", "hosp-san"),
        ("standby #0 of his-1", "prod-h1", "prod-san"),
    ]


def test_a_tier_6_standby_goes_to_the_private_cluster_of_the_remote_backup_centre():
    decision = place_system(his(dr_tier=6), REGION)
    assert placements(decision)[1] == ("standby #0 of his-1", "bak-h1", "bak-san-2")
    standby = decision.explanation.of(STANDBY)
    assert standby.removed_by("bak-pub-h1") == RESIDENCY
    assert standby.removed_by("hosp-h1") == PRIMARY_STANDBY
    assert standby.removed_host_ids(REMOTE_CITY) == [
        "hosp-h2",
        "hosp-h3",
        "prod-h1",
        "prod-h2",
        "stby-h1",
    ]
    assert standby.removed_by("bak-h1") is None


def test_a_refused_placement_names_each_rule_and_the_hosts_it_removed():
    without_private_remote_host = RegionView(
        hosts=(*HOSPITAL_HOSTS, *PRODUCTION_HOSTS, *STANDBY_HOSTS, BACKUP_PUBLIC_HOST),
        pools=POOLS,
    )
    refusal = place_system(his(dr_tier=6), without_private_remote_host)
    assert isinstance(refusal, Refusal)
    assert refusal.instance == STANDBY
    assert refusal.message == (
        "no host admits standby #0 of his-1: R-7.2.5 data residency removed 1 host, "
        "R-7.9.9 primary/standby anti-affinity removed 1 host, "
        "R-7.6c standby in another city removed 5 hosts"
    )
    standby = refusal.explanation.of(STANDBY)
    assert standby.removed_host_ids(RESIDENCY) == ["bak-pub-h1"]
    assert standby.removed_host_ids(PRIMARY_STANDBY) == ["hosp-h1"]
    assert standby.removed[PRIMARY_STANDBY][0].reason == (
        "host hosp-h1 already holds a primary of his-1"
    )


def test_later_instances_see_the_capacity_earlier_ones_took():
    one_host = RegionView(hosts=(host("h1", "hosp", free_vcpu=20),), pools=POOLS)
    assert isinstance(place_system(his(roles=roles(2), dr_tier=0), one_host), Decision)
    refusal = place_system(his(roles=roles(3), dr_tier=0), one_host)
    assert refusal.message == "no host admits primary #2 of his-1: R-7.3a capacity removed 1 host"
    assert refusal.explanation.of(refusal.instance).removed[CAPACITY][0].reason == (
        "8 vCPU needed, 4 free"
    )


def test_later_instances_see_the_storage_earlier_ones_took():
    small_pool = (PoolOption("san", "hosp", StorageClass.BLOCK_FC_SAN, 250),)
    view = RegionView(hosts=HOSPITAL_HOSTS, pools=small_pool)
    assert isinstance(place_system(his(roles=roles(2), dr_tier=0), view), Decision)
    refusal = place_system(his(roles=roles(3), dr_tier=0), view)
    assert refusal.message == (
        "no host admits primary #2 of his-1: R-7.4a block-fc-san storage removed 3 hosts"
    )


def test_soft_rules_spread_instances_over_racks_while_they_can():
    decision = place_system(his(roles=roles(2), dr_tier=0), RegionView(HOSPITAL_HOSTS, POOLS))
    assert [a.host_id for a in decision.assignments] == ["hosp-h1", "hosp-h3"]
    second = decision.explanation.of(Instance("his-1", Role.PRIMARY, 1))
    assert second.removed_by("hosp-h1") == SOFT_HOST
    assert second.removed_by("hosp-h2") == RACK


def test_soft_rules_give_way_rather_than_refuse_and_say_so():
    one_host = RegionView(hosts=(host("h1", "hosp"),), pools=POOLS)
    decision = place_system(his(roles=roles(2), dr_tier=0), one_host)
    assert [a.host_id for a in decision.assignments] == ["h1", "h1"]
    second = decision.explanation.of(Instance("his-1", Role.PRIMARY, 1))
    assert set(second.relaxed) == {SOFT_HOST, RACK}
    assert "ignored soft rules" in second.summary()


def test_from_tier_5_two_instances_never_share_a_host():
    one_host = RegionView(hosts=(host("h1", "hosp"),), pools=POOLS)
    refusal = place_system(his(roles=roles(2), dr_tier=5), one_host)
    assert refusal.message == (
        "no host admits primary #1 of his-1: R-7.3a host anti-affinity removed 1 host"
    )


def test_even_at_tier_0_a_standby_never_joins_its_primary():
    one_host = RegionView(hosts=(host("h1", "hosp"),), pools=POOLS)
    refusal = place_system(his(roles=roles(1, standbys=1), dr_tier=0), one_host)
    assert refusal.message == (
        "no host admits standby #0 of his-1: R-7.9.9 primary/standby anti-affinity removed 1 host"
    )


def test_the_decision_carries_the_chosen_host_scores():
    decision = place_system(his(dr_tier=0, roles=roles(1)), REGION)
    (assignment,) = decision.assignments
    production_site = RuleRef("R-7.3-arch", "primary in a production site")
    assert assignment.scores[production_site] == 1.0
    assert assignment.total_score == pytest.approx(4.0)
    assert str(decision.explanation).startswith("primary #0 of his-1 on host hosp-h1")


def test_a_region_listing_a_host_twice_is_refused():
    twice = RegionView(hosts=(BACKUP_PRIVATE_HOST, BACKUP_PRIVATE_HOST), pools=POOLS)
    with pytest.raises(InvalidArgument, match=r"region.hosts\[1\]: 'bak-h1' appears twice"):
        place_system(his(), twice)


def test_kept_instances_stay_and_only_the_others_move_when_their_host_is_gone():
    first = place_system(his(), REGION)
    assert isinstance(first, Decision)
    primary, standby = first.assignments
    without_standby_host = RegionView(
        hosts=tuple(h for h in REGION.hosts if h.host_id != standby.host_id), pools=REGION.pools
    )
    again = place_system(his(), without_standby_host, keep=[primary])
    assert isinstance(again, Decision)
    moved_primary, moved_standby = again.assignments
    assert moved_primary == primary  # untouched, not even re-scored
    assert moved_standby.host_id != standby.host_id
    assert moved_standby.centre_id != primary.centre_id  # the tier-5 rules still hold
    assert [e.instance for e in again.explanation.instances] == [moved_standby.instance]
