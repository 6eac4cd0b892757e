from __future__ import annotations

import dataclasses

import pytest

from medcloud.backup.domain.plans import (
    MIN_RETENTION_DAYS,
    Centre,
    DrPlan,
    Link,
    PlanStep,
    ProtectionPolicy,
    RegionFacts,
    Target,
    TargetKind,
    check_policy,
    order_failover,
)
from medcloud.core.errors import FieldViolation, InvalidArgument

# Three rooms in Guangzhou on dark fibre, a backup centre in Chengdu far out of province
# and a made-up centre just across the Guangxi border, close enough to mirror to.
FACTS = RegionFacts(
    centres=(
        Centre("hosp", "Guangzhou", "Guangdong"),
        Centre("prod", "Guangzhou", "Guangdong"),
        Centre("stby", "Guangzhou", "Guangdong"),
        Centre("bak", "Chengdu", "Sichuan"),
        Centre("near", "Hezhou", "Guangxi"),
    ),
    links=(
        Link("hosp", "prod", bandwidth_gbps=10, distance_km=20),
        Link("prod", "stby", bandwidth_gbps=10, distance_km=15),
        Link("hosp", "bak", bandwidth_gbps=1, distance_km=1600),
        Link("prod", "near", bandwidth_gbps=10, distance_km=70),
    ),
)


def policy(**changes) -> ProtectionPolicy:
    base = ProtectionPolicy(
        system_id="his",
        tier=5,
        rpo_seconds=5,
        rto_seconds=300,
        backup_schedule_seconds=3600,
        retention_days=90,
        targets=(Target(TargetKind.SAME_CITY_DR, "prod"),),
    )
    return dataclasses.replace(base, **changes)


def check(p: ProtectionPolicy, facts: RegionFacts = FACTS, write_rate_mbps: float = 200):
    return check_policy(p, facts, "hosp", write_rate_mbps)


def with_links(*links: Link) -> RegionFacts:
    return dataclasses.replace(FACTS, links=links)


def test_a_same_city_tier_5_plan_is_accepted_r_7_6b():
    assert check(policy()) == []


def test_tier_5_reaches_a_same_city_target_over_several_hops():
    assert check(policy(targets=(Target(TargetKind.SAME_CITY_DR, "stby"),))) == []


def test_tier_5_without_a_same_city_target_is_refused():
    [violation] = check(policy(targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),)))
    assert violation.field == "policy.targets"
    assert "same-city DR target" in violation.description
    assert "R-7.6b" in violation.description


def test_tier_5_with_the_same_city_link_down_is_refused_naming_it():
    facts = with_links(Link("hosp", "prod", 10, 20, up=False), Link("hosp", "bak", 1, 1600))
    [violation] = check(policy(), facts)
    assert violation.field == "policy.targets[0].centre_id"
    assert "no working link path from hosp to prod" in violation.description
    assert "R-7.6b" in violation.description


def test_tier_6_to_a_centre_beyond_the_synchronous_distance_is_refused_r_7_6c():
    p = policy(tier=6, rpo_seconds=0, targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),))
    assert check(p) == [
        FieldViolation(
            "policy.targets[0].centre_id",
            "synchronous mirroring (Tier 6) to bak is infeasible: the shortest path hosp-bak is "
            "1600 km, beyond the 100 km that synchronous replication allows (1 ms round trip) "
            "(R-7.6c)",
        )
    ]


def test_tier_6_over_a_link_too_thin_for_the_write_rate_is_refused_naming_the_link():
    facts = with_links(Link("hosp", "prod", 10, 20), Link("prod", "near", 0.1, 70))
    p = policy(tier=6, rpo_seconds=0, targets=(Target(TargetKind.OUT_OF_PROVINCE, "near"),))
    [violation] = check(p, facts)
    assert "link prod-near on path hosp-prod-near has 0.1 Gbps" in violation.description
    assert "write rate of 200 Mbps" in violation.description
    assert "R-7.6c" in violation.description


def test_tier_6_with_no_link_to_the_remote_centre_is_refused():
    facts = with_links(Link("hosp", "prod", 10, 20))
    p = policy(tier=6, rpo_seconds=0, targets=(Target(TargetKind.OUT_OF_PROVINCE, "near"),))
    [violation] = check(p, facts)
    assert "no working link path from hosp to near" in violation.description
    assert "R-7.6c" in violation.description


def test_tier_6_to_a_near_centre_in_another_city_is_accepted():
    p = policy(tier=6, rpo_seconds=0, targets=(Target(TargetKind.OUT_OF_PROVINCE, "near"),))
    assert check(p) == []


def test_tier_6_is_accepted_when_any_one_target_can_be_mirrored_to():
    targets = (
        Target(TargetKind.OUT_OF_PROVINCE, "bak"),
        Target(TargetKind.OUT_OF_PROVINCE, "near"),
    )
    assert check(policy(tier=6, rpo_seconds=0, targets=targets)) == []


def test_tier_6_needs_a_target_in_another_city():
    [violation] = check(policy(tier=6, rpo_seconds=0))
    assert violation.field == "policy.targets"
    assert "city other than Guangzhou" in violation.description


def test_rpo_0_with_scheduled_copies_is_refused_with_the_reason():
    p = policy(
        tier=3,
        rpo_seconds=0,
        rto_seconds=86400,
        backup_schedule_seconds=3600,
        targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),),
    )
    assert check(p) == [
        FieldViolation(
            "policy.rpo_seconds",
            "0 needs synchronous mirroring (Tier 6); scheduled copies every 3600 s lose up to "
            "3600 s (R-7.6c)",
        )
    ]


def test_rpo_0_at_tier_5_is_refused():
    [violation] = check(policy(rpo_seconds=0))
    assert violation.field == "policy.rpo_seconds"
    assert violation.description.startswith("0 needs synchronous mirroring (Tier 6)")


def test_an_rpo_or_rto_better_than_the_tier_can_promise_is_refused():
    p = policy(
        tier=4, rpo_seconds=60, rto_seconds=60, targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),)
    )
    assert [v.field for v in check(p)] == ["policy.rpo_seconds", "policy.rto_seconds"]
    assert "GB/T 20988 level 4" in check(p)[0].description


def test_scheduled_copies_less_often_than_the_rpo_are_refused():
    p = policy(
        tier=3,
        rpo_seconds=7200,
        rto_seconds=86400,
        backup_schedule_seconds=86400,
        targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),),
    )
    [violation] = check(p)
    assert violation.field == "policy.backup_schedule_seconds"


def test_short_retention_is_refused():
    [violation] = check(policy(retention_days=MIN_RETENTION_DAYS - 1))
    assert violation.field == "policy.retention_days"


def test_tier_0_and_tiers_out_of_range_are_refused():
    assert [v.field for v in check(policy(tier=0))] == ["policy.tier"]
    assert [v.field for v in check(policy(tier=8))] == ["policy.tier"]


def test_targets_must_match_their_kind_and_exist():
    targets = (
        Target(TargetKind.SAME_CITY_DR, "bak"),
        Target(TargetKind.OUT_OF_PROVINCE, "stby"),
        Target(TargetKind.COLD_TIER, "hosp"),
        Target(TargetKind.COLD_TIER, "nowhere"),
        Target(TargetKind.SAME_CITY_DR, "prod"),
    )
    violations = check(policy(targets=targets))
    assert [v.field for v in violations] == [
        "policy.targets[0].centre_id",
        "policy.targets[1].centre_id",
        "policy.targets[2].centre_id",
        "policy.targets[3].centre_id",
    ]
    assert "R-7.3-arch" in violations[0].description
    assert "R-7.2.5" in violations[1].description


def test_async_tier_4_needs_only_bandwidth_not_distance():
    p = policy(
        tier=4,
        rpo_seconds=3600,
        rto_seconds=3600,
        targets=(Target(TargetKind.OUT_OF_PROVINCE, "bak"),),
    )
    assert check(p, write_rate_mbps=500) == []
    [violation] = check(p, write_rate_mbps=2000)
    assert "carries the write rate of 2000 Mbps" in violation.description


def test_an_unknown_primary_centre_is_refused():
    assert [v.field for v in check_policy(policy(), FACTS, "mars", 10)] == ["primary_centre_id"]


def test_databases_fail_over_before_the_applications_that_need_them():
    systems = {"his": {"his-db"}, "emr": {"his-db", "emr-db"}, "his-db": set(), "emr-db": set()}
    assert order_failover(systems) == ["emr-db", "his-db", "emr", "his"]


def test_the_order_does_not_depend_on_the_mapping_order():
    systems = {"c": {"a"}, "b": {"a"}, "a": set()}
    assert (
        order_failover(systems)
        == order_failover(dict(reversed(systems.items())))
        == ["a", "b", "c"]
    )


def test_a_dependency_cycle_is_refused_naming_it():
    with pytest.raises(InvalidArgument) as refused:
        order_failover({"app": {"db"}, "db": {"cache"}, "cache": {"app"}, "portal": set()})
    [violation] = refused.value.violations
    assert violation.field == "systems"
    assert "app needs db needs cache needs app" in violation.description


def test_a_system_depending_on_itself_is_a_cycle():
    with pytest.raises(InvalidArgument, match="dependency cycle app needs app"):
        order_failover({"app": {"app"}})


def test_an_unknown_dependency_is_refused():
    with pytest.raises(InvalidArgument) as refused:
        order_failover({"app": {"db"}})
    assert refused.value.violations[0].field == "systems[app].depends_on"


def test_a_plan_keeps_the_order_and_the_dependencies():
    plan = DrPlan.build("h1", {"app": {"db"}, "db": set()})
    assert plan.steps == (PlanStep("db", frozenset()), PlanStep("app", frozenset({"db"})))
