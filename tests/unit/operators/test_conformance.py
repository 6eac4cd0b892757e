"""The conformance report from evidence: fail, pass, not applicable and unknown per judged
requirement, the JSON of the issue, the summary for HospitalSite status, and JUDGED against
REQUIREMENTS.md and the services' own rule sets. No network: the sources' translation of
placements and protections is fed messages built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcloud.backup.domain.plans import Centre, Link, RegionFacts
from medcloud.backup.v1 import backup_pb2 as backup_pb
from medcloud.inventory.domain.topology import RULES
from medcloud.monitoring.domain.rule_pack import environment_rules
from medcloud.operators import conformance
from medcloud.operators.conformance import (
    BACKUP,
    INVENTORY,
    JUDGED,
    MAX_MESSAGE,
    MONITORING,
    SCHEDULING,
    SECURITY,
    Finding,
    Judged,
    NoEvidence,
    NotApplicable,
    Status,
    build_report,
    judged_ids,
    load_requirements,
    parse_requirements,
)
from medcloud.operators.conformance_sources import (
    TOPOLOGY_IDS,
    not_applicable,
    placement_evidence,
    protection_evidence,
)
from medcloud.operators.site import read_site
from medcloud.scheduling.v1 import scheduling_pb2 as scheduling_pb
from medcloud.security.domain.baseline import MLPS_LEVEL_3

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = Judged("R-A.2.6", (INVENTORY,), "ValidateTopology")
DR = Judged("R-7.2.5", (INVENTORY, BACKUP), "ValidateTopology and protections")
TIER_5 = Judged("R-7.6b", (SCHEDULING, BACKUP), "placements and protections")


def _conduit(subject: str, passed: bool = False) -> Finding:
    return Finding(
        "R-A.2.6", subject, passed, f"Conduit of {subject} carries 2 of 2 pairs", INVENTORY
    )


# -- statuses -------------------------------------------------------------------------------------


def test_a_failing_finding_fails_the_requirement_naming_its_subject_and_message():
    report = build_report(
        [
            Finding("R-A.2.6", "region", True, "no breach", INVENTORY),
            _conduit("link/core-a-production-ip"),
        ],
        (TOPOLOGY,),
    )
    entry = report.entry("R-A.2.6")
    assert entry.status is Status.FAIL
    assert entry.subject == "link/core-a-production-ip"
    assert entry.message == "Conduit of link/core-a-production-ip carries 2 of 2 pairs"


def test_several_failures_are_joined_each_after_its_subject():
    entry = build_report([_conduit("link/a"), _conduit("link/b")], (TOPOLOGY,)).entry("R-A.2.6")
    assert entry.status is Status.FAIL
    assert entry.subject == "link/a, link/b"
    assert entry.message == (
        "link/a: Conduit of link/a carries 2 of 2 pairs; link/b: Conduit of link/b carries 2 of 2 "
        "pairs"
    )


def test_a_long_list_of_failures_is_trimmed_saying_how_many_more():
    failures = [_conduit(f"link/l{n:03}") for n in range(200)]
    entry = build_report(failures, (TOPOLOGY,)).entry("R-A.2.6")
    assert len(entry.message) <= MAX_MESSAGE
    assert entry.message.startswith("link/l000: Conduit")
    assert entry.message.endswith("more)")
    assert len(entry.subject) <= conformance.MAX_SUBJECT


def test_all_findings_passing_pass_it():
    entry = build_report(
        [
            Finding("R-7.2.5", "region", True, "backup centre out of province", INVENTORY),
            Finding("R-7.2.5", "system/h-his", True, "copy in guiyang-backup", BACKUP),
        ],
        (DR,),
    ).entry("R-7.2.5")
    assert entry.status is Status.PASS
    assert entry.subject == "region, system/h-his"
    assert "copy in guiyang-backup" in entry.message


def test_no_evidence_at_all_is_unknown_never_pass():
    report = build_report([], (DR,))
    entry = report.entry("R-7.2.5")
    assert entry.status is Status.UNKNOWN
    assert entry.message == "no evidence gathered (source inventory or backup unavailable?)"


def test_with_no_evidence_every_judged_requirement_is_unknown():
    report = build_report([])
    assert [entry.id for entry in report.entries] == [item.id for item in JUDGED]
    assert {entry.status for entry in report.entries} == {Status.UNKNOWN}


def test_a_source_that_could_not_be_asked_leaves_its_requirements_unknown_even_if_others_passed():
    report = build_report(
        [
            Finding("R-7.2.5", "region", True, "backup centre out of province", INVENTORY),
            Finding("R-A.2.6", "region", True, "no breach", INVENTORY),
            NoEvidence(BACKUP, "backup at 127.0.0.1:1 answered UNAVAILABLE: connection refused"),
        ],
        (DR, TOPOLOGY),
    )
    dr = report.entry("R-7.2.5")
    assert dr.status is Status.UNKNOWN
    assert "no evidence from backup: backup at 127.0.0.1:1 answered UNAVAILABLE" in dr.message
    assert "backup centre out of province" in dr.message
    assert report.entry("R-A.2.6").status is Status.PASS
    assert report.unavailable == {
        BACKUP: "backup at 127.0.0.1:1 answered UNAVAILABLE: connection refused"
    }


def test_a_failure_still_fails_when_another_source_could_not_be_asked():
    entry = build_report(
        [
            Finding("R-7.2.5", "centre/guiyang-backup", False, "same province", INVENTORY),
            NoEvidence(BACKUP, "down"),
        ],
        (DR,),
    ).entry("R-7.2.5")
    assert entry.status is Status.FAIL
    assert entry.subject == "centre/guiyang-backup"


def test_evidence_missing_for_one_subject_makes_it_unknown_naming_the_subject():
    entry = build_report(
        [
            Finding("R-7.6b", "system/h-his", True, "standby in the carrier room", SCHEDULING),
            Finding("R-7.6b", "system/h-his", True, "tier 5 feasible", BACKUP),
            NoEvidence(SCHEDULING, "h-emr has no placement", ("R-7.6b",), "system/h-emr"),
        ],
        (TIER_5,),
    ).entry("R-7.6b")
    assert entry.status is Status.UNKNOWN
    assert entry.subject == "system/h-emr"
    assert entry.message.startswith("no evidence from scheduling: h-emr has no placement")


def test_not_applicable_when_a_source_says_so_and_nothing_judged_it():
    exempt = NotApplicable("R-7.6b", "no system at tier 5", "site", "site/h")
    report = build_report([exempt, NoEvidence(BACKUP, "down")], (TIER_5,))
    entry = report.entry("R-7.6b")
    assert entry.status is Status.NOT_APPLICABLE
    assert (entry.subject, entry.message) == ("site/h", "site: no system at tier 5")
    # A source that did judge it outweighs another's "not applicable".
    judged = build_report(
        [exempt, Finding("R-7.6b", "system/h-his", True, "standby elsewhere", SCHEDULING)],
        (TIER_5,),
    )
    assert judged.entry("R-7.6b").status is Status.PASS


def test_evidence_about_requirements_not_judged_is_left_out():
    report = build_report(
        [Finding("R-6.4", "site/h", False, "no key management", SECURITY)], (TOPOLOGY,)
    )
    assert [entry.id for entry in report.entries] == ["R-A.2.6"]


# -- output ---------------------------------------------------------------------------------------


def _mixed_report():
    judged = (
        TOPOLOGY,
        DR,
        TIER_5,
        Judged("R-7.6c", (SCHEDULING, BACKUP), "placements"),
        Judged("R-7.7c", (MONITORING,), "inspection"),
    )
    return build_report(
        [
            _conduit("link/x"),
            Finding("R-7.2.5", "region", True, "out of province", INVENTORY),
            Finding("R-7.2.5", "system/h-his", True, "copied", BACKUP),
            Finding("R-7.6b", "system/h-his", True, "standby elsewhere", SCHEDULING),
            NotApplicable("R-7.6c", "no system at tier 6", "site", "site/h"),
        ],
        judged,
    )


def test_the_json_has_exactly_the_shape_of_the_issue():
    document = json.loads(_mixed_report().to_json())
    assert set(document) == {"requirements", "summary"}
    assert document["requirements"][0] == {
        "id": "R-A.2.6",
        "status": "fail",
        "subject": "link/x",
        "message": "Conduit of link/x carries 2 of 2 pairs",
    }
    for item in document["requirements"]:
        assert set(item) == {"id", "status", "subject", "message"}
        assert all(isinstance(value, str) for value in item.values())
    assert [item["status"] for item in document["requirements"]] == [
        "fail",
        "pass",
        "pass",
        "not-applicable",
        "unknown",
    ]
    assert document["summary"] == {
        "pass": 2,
        "fail": 1,
        "not-applicable": 1,
        "unknown": 1,
        "total": 5,
    }


def test_the_summary_line_for_hospitalsite_status_and_the_table_rows():
    report = _mixed_report()
    assert report.summary_line() == "2 pass, 1 fail, 1 n/a, 1 unknown"
    assert len(report.summary_line()) <= 256  # the CRD's maxLength for status.conformance
    rows = report.rows()
    assert len(rows) == 5 and all(len(row) == len(conformance.COLUMNS) for row in rows)
    assert rows[0] == ("R-A.2.6", "fail", "link/x", "Conduit of link/x carries 2 of 2 pairs")


def test_the_report_takes_the_requirements_text_when_it_has_it():
    requirements = parse_requirements(
        "## Reference build (annex A)\n"
        "- R-A.2.6 Every paired network resource enters through a DIFFERENT physical conduit.\n"
    )
    entry = build_report([_conduit("link/x")], (TOPOLOGY,), requirements).entry("R-A.2.6")
    assert entry.text.startswith("Every paired network resource")
    assert entry.clause == "Reference build (annex A)"


# -- REQUIREMENTS.md ------------------------------------------------------------------------------

SAMPLE = """# What the standard asks for

## Vocabulary (clause 3)
- Health data: data that identifies a person; R-5.5 is not defined here.

## Machine-room environment (clause 7.1)
- R-7.1-1  temperature 23±2 °C in summer
- R-7.1-16 AC working ground < 4 Ω; R-7.1-17 safety and ESD ground < 4 Ω; R-7.1-18 lightning
  ground < 10 Ω

## Moving business systems to the cloud (clause 7.9) — 13 steps
- R-7.9.1 survey · R-7.9.2 risk assessment ·
  R-7.9.3 system rework (like-for-like services)
- R-7.3-arch Application-level DR site in the same city.
"""


def test_requirements_are_parsed_one_per_id_even_when_a_bullet_holds_several():
    parsed = parse_requirements(SAMPLE)
    assert [(r.id, r.text) for r in parsed] == [
        ("R-7.1-1", "temperature 23±2 °C in summer"),
        ("R-7.1-16", "AC working ground < 4 Ω"),
        ("R-7.1-17", "safety and ESD ground < 4 Ω"),
        ("R-7.1-18", "lightning ground < 10 Ω"),
        ("R-7.9.1", "survey"),
        ("R-7.9.2", "risk assessment"),
        ("R-7.9.3", "system rework (like-for-like services)"),
        ("R-7.3-arch", "Application-level DR site in the same city."),
    ]
    assert parsed[0].clause == "Machine-room environment (clause 7.1)"
    assert parsed[-1].clause.startswith("Moving business systems to the cloud")


def test_the_file_is_found_by_variable_and_its_absence_leaves_the_report_whole(
    tmp_path, monkeypatch
):
    copy = tmp_path / "REQUIREMENTS.md"
    copy.write_text(SAMPLE)
    monkeypatch.setenv(conformance.REQUIREMENTS_FILE_VARIABLE, str(copy))
    assert [r.id for r in load_requirements()][:2] == ["R-7.1-1", "R-7.1-16"]
    monkeypatch.setenv(conformance.REQUIREMENTS_FILE_VARIABLE, str(tmp_path / "missing.md"))
    with pytest.raises(FileNotFoundError):
        load_requirements()
    with pytest.raises(FileNotFoundError):
        load_requirements(tmp_path / "missing.md")
    # Neither configured nor beside the repository (a Helm install, a clone elsewhere).
    monkeypatch.delenv(conformance.REQUIREMENTS_FILE_VARIABLE)
    monkeypatch.setattr(conformance, "DEFAULT_REQUIREMENTS_FILE", tmp_path / "absent.md")
    assert load_requirements() == []
    report = build_report([], requirements=load_requirements())
    assert [entry.id for entry in report.entries] == [item.id for item in JUDGED]


def test_every_judged_id_is_a_requirement_of_requirements_md_in_its_order():
    path = conformance.DEFAULT_REQUIREMENTS_FILE
    ids = [item.id for item in JUDGED]
    assert len(ids) == len(set(ids))
    assert all(item.sources and item.how for item in JUDGED)
    order = [requirement.id for requirement in load_requirements(path)]
    assert set(ids) <= set(order), set(ids) - set(order)
    assert ids == sorted(ids, key=order.index)


# -- JUDGED against what the services check -------------------------------------------------------


def test_inventory_is_judged_on_every_rule_validatetopology_runs():
    checked = {requirement_id for requirement_id, _ in RULES}
    assert checked == set(TOPOLOGY_IDS)
    assert checked <= set(judged_ids(INVENTORY))


def test_monitoring_is_judged_on_every_machine_room_rule_its_inspection_runs():
    inspected = {rule.requirement_id for rule in environment_rules()}
    judged = {i for i in judged_ids(MONITORING) if i.startswith("R-7.1-")}
    assert inspected == judged


def test_every_requirement_the_baseline_names_is_judged_by_security_or_left_out_on_purpose():
    # one control each touches them, far from all they ask (see JUDGED).
    named = {i for control in MLPS_LEVEL_3 for i in control.requirement_ids}
    assert named - set(judged_ids(SECURITY)) == {"R-6.4", "R-6.6"}


# -- the sources' translation, fed messages -------------------------------------------------------

SITE = read_site(
    {
        "metadata": {"name": "central", "namespace": "hospital-central"},
        "spec": {
            "hospitalId": "h",
            "room": {"centreId": "room", "city": "Guangzhou", "province": "Guangdong"},
            "systems": [
                {
                    "name": "his",
                    "kind": "his",
                    "classification": "personal-health-data",
                    "replicas": 2,
                    "vcpu": 8,
                    "memoryGiB": 32,
                    "storageGiB": 100,
                    "storageClass": "block-fc-san",
                    "drTier": 5,
                    "cluster": "private",
                }
            ],
        },
    }
)
HIS = SITE.systems[0]


def _assignment(role: int, index: int, host: str, centre: str) -> scheduling_pb.Assignment:
    return scheduling_pb.Assignment(
        instance=scheduling_pb.Instance(role=role, index=index),
        host_id=host,
        centre_id=centre,
        pool_id=f"{centre}-fc-san",
    )


def _placement(*assignments: scheduling_pb.Assignment) -> scheduling_pb.Placement:
    return scheduling_pb.Placement(
        system=scheduling_pb.BusinessSystem(
            id="h-his",
            vcpu=8,
            memory_gib=32,
            storage_class=scheduling_pb.STORAGE_CLASS_BLOCK_FC_SAN,
            storage_gib=100,
            dr_tier=5,
        ),
        state=scheduling_pb.PLACEMENT_STATE_PLACED,
        assignments=assignments,
    )


def _verdicts(evidence) -> dict[str, bool]:
    return {e.requirement_id: e.passed for e in evidence if isinstance(e, Finding)}


def test_a_placement_shows_each_rule_met_where_its_instances_run():
    placed = _placement(
        _assignment(scheduling_pb.ROLE_PRIMARY, 0, "h1", "room"),
        _assignment(scheduling_pb.ROLE_REPLICA, 0, "h2", "room"),
        _assignment(scheduling_pb.ROLE_STANDBY, 0, "c1", "carrier"),
    )
    assert _verdicts(placement_evidence(HIS, "h-his", placed)) == {
        "R-7.3a": True,
        "R-7.3c": True,
        "R-7.4a": True,
        "R-7.9.4": True,
        "R-7.9.9": True,
        "R-7.6b": True,
    }


def test_a_standby_beside_its_primary_fails_anti_affinity_and_active_active():
    crowded = _placement(
        _assignment(scheduling_pb.ROLE_PRIMARY, 0, "h1", "room"),
        _assignment(scheduling_pb.ROLE_STANDBY, 0, "h1", "room"),
    )
    evidence = placement_evidence(HIS, "h-his", crowded)
    verdicts = _verdicts(evidence)
    assert not verdicts["R-7.9.9"] and not verdicts["R-7.3a"] and not verdicts["R-7.6b"]
    message = next(e.message for e in evidence if e.requirement_id == "R-7.9.9")
    assert message == "a primary and a standby share host h1"


def test_a_failed_placement_fails_the_rules_that_refused_and_leaves_the_rest_unknown():
    failed = scheduling_pb.Placement(
        system=scheduling_pb.BusinessSystem(id="h-his", vcpu=8, memory_gib=32, dr_tier=5),
        state=scheduling_pb.PLACEMENT_STATE_FAILED,
        message="standby #0 of h-his: no host",
        explanation=[
            scheduling_pb.InstanceExplanation(
                instance=scheduling_pb.Instance(role=scheduling_pb.ROLE_STANDBY),
                removed=[scheduling_pb.RuleRemovals(requirement_id="R-7.6b", rule="same city")],
                summary="standby #0 of h-his: R-7.6b same-city standby removed 3 hosts",
            )
        ],
    )
    evidence = placement_evidence(HIS, "h-his", failed)
    assert _verdicts(evidence) == {"R-7.6b": False}
    (gap,) = [e for e in evidence if isinstance(e, NoEvidence)]
    assert "R-7.6b" not in gap.requirement_ids and "R-7.3a" in gap.requirement_ids


def test_a_placement_of_an_older_spec_shows_nothing_about_the_system_now():
    older = _placement(_assignment(scheduling_pb.ROLE_PRIMARY, 0, "h1", "room"))
    older.system.dr_tier = 4
    (gap,) = placement_evidence(HIS, "h-his", older)
    assert isinstance(gap, NoEvidence) and gap.subject == "system/h-his"
    assert "is not of the site's spec (tier 5" in gap.reason


def _protection(**changes) -> backup_pb.ProtectedSystem:
    fields = {
        "hospital_id": "h",
        "system_id": "his",
        "tier": 5,
        "rpo_seconds": 5,
        "rto_seconds": 300,
        "backup_schedule_seconds": 3600,
        "retention_days": 90,
        "targets": [
            backup_pb.Target(kind=backup_pb.TARGET_KIND_SAME_CITY_DR, centre_id="carrier"),
            backup_pb.Target(kind=backup_pb.TARGET_KIND_OUT_OF_PROVINCE, centre_id="backup"),
        ],
        "driver": "kubernetes",
        "primary": backup_pb.Endpoint(
            centre_id="room", cluster="private", namespace="h", workload="his"
        ),
        "standby": backup_pb.Endpoint(
            centre_id="carrier", cluster="public", namespace="h", workload="his"
        ),
        "replication_mode": "two-site-two-phase-commit",
        "copies_scheduled": True,
        "schedule_status": "applied Velero Schedule",
    }
    return backup_pb.ProtectedSystem(**{**fields, **changes})


FACTS = RegionFacts(
    (
        Centre("room", "Guangzhou", "Guangdong"),
        Centre("carrier", "Guangzhou", "Guangdong"),
        Centre("backup", "Guiyang", "Guizhou"),
    ),
    (Link("room", "carrier", 40, 22), Link("carrier", "backup", 10, 900)),
)
CITIES = {centre.id: centre.city for centre in FACTS.centres}


def test_a_feasible_protection_meets_backup_dr_architecture_and_tier_5():
    evidence = protection_evidence(SITE, HIS, _protection(), FACTS, CITIES)
    assert _verdicts(evidence) == {"R-7.2.5": True, "R-7.3-arch": True, "R-7.6b": True}


def test_a_protection_the_region_can_no_longer_carry_fails_naming_the_requirement():
    cut = RegionFacts(FACTS.centres, (Link("room", "carrier", 40, 22, up=False),))
    evidence = protection_evidence(SITE, HIS, _protection(), cut, CITIES)
    failed = [e for e in evidence if isinstance(e, Finding) and not e.passed]
    assert {e.requirement_id for e in failed} >= {"R-7.6b"}
    assert all(e.subject == "system/h-his" for e in failed)
    assert any("no working link path from room to carrier" in e.message for e in failed)


def test_a_system_without_protection_or_scheduled_copies_fails_backup():
    missing = protection_evidence(SITE, HIS, None, FACTS, CITIES)
    assert _verdicts(missing) == {"R-7.2.5": False, "R-7.3-arch": False, "R-7.6b": False}
    unscheduled = _protection(copies_scheduled=False, schedule_status="not scheduled: no cluster")
    evidence = protection_evidence(SITE, HIS, unscheduled, FACTS, CITIES)
    assert any(
        e.requirement_id == "R-7.2.5" and not e.passed and "no cluster" in e.message
        for e in evidence
    )


def test_dr_architecture_wants_a_copy_in_another_city_and_from_tier_5_one_in_the_same_city():
    out_of_province_only = [
        backup_pb.Target(kind=backup_pb.TARGET_KIND_OUT_OF_PROVINCE, centre_id="backup")
    ]
    tier_5 = protection_evidence(
        SITE, HIS, _protection(targets=out_of_province_only), FACTS, CITIES
    )
    arch = next(e for e in tier_5 if isinstance(e, Finding) and e.requirement_id == "R-7.3-arch")
    assert not arch.passed
    assert arch.message == "tier 5 runs a standby but has no same-city DR centre"
    portal = read_site(
        {
            "metadata": {"name": "central"},
            "spec": {
                "hospitalId": "h",
                "systems": [{"name": "portal", "kind": "portal", "drTier": 2}],
            },
        }
    ).systems[0]
    scheduled = _protection(
        system_id="portal",
        tier=2,
        rpo_seconds=86400,
        rto_seconds=86400,
        targets=out_of_province_only,
        standby=backup_pb.Endpoint(centre_id="backup"),
        replication_mode="scheduled-copy",
    )
    verdicts = _verdicts(protection_evidence(SITE, portal, scheduled, FACTS, CITIES))
    assert verdicts == {"R-7.2.5": True, "R-7.3-arch": True}


def test_what_the_site_does_not_have_is_not_applicable():
    exempt = {item.requirement_id for item in not_applicable(SITE)}
    assert exempt == {"R-7.4b", "R-7.4c", "R-7.6c"}
