"""The MLPS level-3 baseline: a fully equipped site meets every control; taking away one pooled
capability or one fact fails exactly the controls that need it, each saying what is missing."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.security.domain.baseline import (
    MLPS_LEVEL_3,
    BaselineFinding,
    Control,
    SiteFacts,
    evaluate_baseline,
    site_facts,
)
from medcloud.security.domain.pool import Capability, SecurityInstance, SecurityPool, Zone

NEEDED = {need for control in MLPS_LEVEL_3 for need in control.needs}

FULL = SiteFacts(
    site_id="hosp-a",
    coverage=MappingProxyType(
        {zone: frozenset(c for z, c in NEEDED if z is zone) for zone in Zone}
    ),
    internet_firewall_centres=frozenset({"carrier-prod", "hospital"}),
    log_retention_days=180,
    transport_encrypted=True,
    separate_admin_roles=True,
    audit_trail_verified=True,
)


def without(facts: SiteFacts, zone: Zone, capability: Capability) -> SiteFacts:
    coverage = dict(facts.coverage)
    coverage[zone] = coverage[zone] - {capability}
    return replace(facts, coverage=MappingProxyType(coverage))


def failed(facts: SiteFacts) -> dict[str, BaselineFinding]:
    return {finding.control_id: finding for finding in evaluate_baseline(facts).failures()}


def test_a_fully_equipped_site_meets_every_control():
    report = evaluate_baseline(FULL)

    assert report.site_id == "hosp-a"
    assert report.passed
    assert report.failures() == ()
    assert report.score == 1.0
    assert [f.control_id for f in report.findings] == [c.id for c in MLPS_LEVEL_3]
    assert report.findings[0].detail == "met (MLPS3-CNS-1, R-A.2.8, R-7.5a, R-7.2.4)"


def test_the_catalogue_is_well_formed():
    ids = [control.id for control in MLPS_LEVEL_3]
    assert len(ids) == len(set(ids))
    assert len(MLPS_LEVEL_3) >= 15
    for control in MLPS_LEVEL_3:
        prefix, part, number = control.id.split("-")
        assert (prefix, part, number.isdigit()) in {
            ("MLPS3", part, True) for part in ("CNS", "ABS", "CES", "SMC")
        }
        assert control.clause.startswith("8.1.")
        assert "R-7.2.4" in control.requirement_ids
        # A control that checks nothing could never fail.
        assert control.needs or control.check is not None
    # Every capability of the pool serves at least one control.
    assert {capability for _, capability in NEEDED} == set(Capability)


@pytest.mark.parametrize(
    ("zone", "capability"),
    sorted(NEEDED, key=lambda need: (need[0].value, need[1].value)),
    ids=lambda value: value.value,
)
def test_a_missing_capability_fails_exactly_the_controls_that_need_it(
    zone: Zone, capability: Capability
):
    failures = failed(without(FULL, zone, capability))

    assert set(failures) == {c.id for c in MLPS_LEVEL_3 if (zone, capability) in c.needs}
    for control_id, finding in failures.items():
        assert finding.detail.startswith(
            f"{zone.value} zone has no {capability.value} allocated ({control_id}, "
        )
        assert not finding.passed


@pytest.mark.parametrize(
    ("control_id", "change", "said"),
    [
        (
            "MLPS3-CNS-2",
            {"internet_firewall_centres": frozenset({"hospital"})},
            "internet-zone virtual-firewall runs only in hospital; the key boundary device needs "
            "instances in at least 2 centres",
        ),
        (
            "MLPS3-CNS-2",
            {"internet_firewall_centres": frozenset()},
            "internet-zone virtual-firewall runs in no centre",
        ),
        ("MLPS3-CNS-3", {"transport_encrypted": False}, "traffic between components is not"),
        ("MLPS3-CES-3", {"audit_trail_verified": False}, "the audit trail did not verify"),
        ("MLPS3-SMC-1", {"separate_admin_roles": False}, "an identity holds two of the system"),
        (
            "MLPS3-SMC-3",
            {"log_retention_days": 90},
            "logs are kept 90 days; they must be kept at least 180 days (six months)",
        ),
    ],
)
def test_a_wrong_fact_fails_exactly_its_control(
    control_id: str, change: dict[str, object], said: str
):
    failures = failed(replace(FULL, **change))

    assert set(failures) == {control_id}
    assert said in failures[control_id].detail


def test_a_control_with_capabilities_and_facts_names_every_shortfall():
    facts = replace(without(FULL, Zone.CORE, Capability.LOG_AUDIT), log_retention_days=30)

    assert failed(facts)["MLPS3-SMC-3"].detail == (
        "core zone has no log-audit allocated; logs are kept 30 days; they must be kept at "
        "least 180 days (six months) (MLPS3-SMC-3, R-7.5a, R-7.5b, R-6.6, R-7.2.4)"
    )


def test_the_score_is_the_share_of_controls_met():
    report = evaluate_baseline(replace(FULL, transport_encrypted=False, separate_admin_roles=False))

    assert not report.passed
    assert [f.control_id for f in report.failures()] == ["MLPS3-CNS-3", "MLPS3-SMC-1"]
    assert report.score == (len(MLPS_LEVEL_3) - 2) / len(MLPS_LEVEL_3)


def test_a_custom_catalogue_is_evaluated_in_its_own_order():
    only = Control(
        "MLPS3-ABS-9",
        "8.1.3.1",
        ("R-7.2.4",),
        "Key management at the DMZ",
        needs=((Zone.DMZ, Capability.KEY_MANAGEMENT),),
    )

    report = evaluate_baseline(FULL, (only,))

    assert report.failures()[0].detail == (
        "dmz zone has no key-management allocated (MLPS3-ABS-9, R-7.2.4)"
    )
    assert report.score == 0.0
    assert evaluate_baseline(FULL, ()).score == 1.0


def test_facts_read_from_a_fully_allocated_pool_meet_the_baseline():
    instances = [
        SecurityInstance(f"{capability.value}-{centre}", capability, centre, 100, "vendor-a")
        for capability in Capability
        for centre in ("carrier-prod", "hospital")
    ]
    pool = SecurityPool(instances)
    for zone, capability in sorted(NEEDED, key=lambda need: (need[0].value, need[1].value)):
        pool.allocate("hosp-a", zone, capability, 1, prefer_centre_id="hospital")
    # A second egress firewall in the other centre, for redundancy.
    pool.allocate(
        "hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 1, prefer_centre_id="carrier-prod"
    )

    facts = site_facts(
        pool,
        "hosp-a",
        log_retention_days=365,
        transport_encrypted=True,
        separate_admin_roles=True,
        audit_trail_verified=True,
    )

    assert facts.internet_firewall_centres == {"carrier-prod", "hospital"}
    assert evaluate_baseline(facts).passed
    pool.release("hosp-a", Zone.DMZ, Capability.WAF)
    after = site_facts(
        pool,
        "hosp-a",
        log_retention_days=365,
        transport_encrypted=True,
        separate_admin_roles=True,
        audit_trail_verified=True,
    )
    assert set(failed(after)) == {"MLPS3-ABS-4"}


def test_facts_breaking_rules_are_refused_naming_each_field():
    with pytest.raises(InvalidArgument) as raised:
        evaluate_baseline(replace(FULL, site_id="Hosp A", log_retention_days=-1))

    assert {v.field for v in raised.value.violations} == {
        "facts.site_id",
        "facts.log_retention_days",
    }
