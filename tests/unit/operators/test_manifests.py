"""Offline verdicts on Region and HospitalSite manifests (`medcloudctl validate`): the examples
pass, each bad manifest is refused naming its field and rule, as the API server would refuse it."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import celpy
import pytest
from typer.testing import CliRunner

from medcloud.inventory.domain.reference import annex_a_region
from medcloud.operators.cli import app
from medcloud.operators.manifests import (
    CRD_DIR_ENV,
    RULES_NOT_CHECKED,
    ManifestError,
    load_crd,
    load_documents,
    validate_manifest,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
BAD = ROOT / "tests" / "operator" / "bad"
BAD_FIXTURES = sorted(BAD.glob("*.yaml"))


def expectation(fixture: Path) -> tuple[str, str]:
    """The field and key phrase a bad fixture's header promises (`# expect-field:` and
    `# expect-message:`)."""
    header = dict(re.findall(r"^# expect-(field|message): (.+)$", fixture.read_text(), re.M))
    return header["field"], header["message"]


def example(name: str, kind: str) -> dict[str, Any]:
    return next(d for d in load_documents(EXAMPLES / name) if d["kind"] == kind)


def site() -> dict[str, Any]:
    return copy.deepcopy(example("hospital-central.yaml", "HospitalSite"))


def messages(document: dict[str, Any]) -> list[str]:
    return [problem.message for problem in validate_manifest(document)]


def invoke(*args: str):
    # Wide enough that rich never folds a field path in the table.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})


# --- The examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["region-panyu.yaml", "hospital-central.yaml"])
def test_the_examples_are_valid(name):
    documents = [
        d for d in load_documents(EXAMPLES / name) if d["apiVersion"].startswith("medcloud")
    ]
    assert documents
    for document in documents:
        assert validate_manifest(document) == []


def test_the_example_region_is_annex_a_as_the_inventory_builds_it():
    spec = example("region-panyu.yaml", "Region")["spec"]
    reference = annex_a_region()
    assert [
        (c["id"], c["displayName"], c["role"], c["city"], c["province"]) for c in spec["centres"]
    ] == [(c.id, c.display_name, c.role.value, c.city, c.province) for c in reference.centres]
    assert [(n["id"], n["centreId"], n["role"]) for n in spec["nodes"]] == [
        (n.id, n.centre_id, n.role.value) for n in reference.nodes
    ]
    assert [
        (
            link["id"],
            link["aNode"],
            link["bNode"],
            link["purpose"],
            link["medium"],
            [(p["conduit"], p["upGbps"], p["downGbps"]) for p in link["pairs"]],
        )
        for link in spec["links"]
    ] == [
        (
            link.id,
            link.a_node_id,
            link.b_node_id,
            link.purpose.value,
            link.medium.value,
            [(p.conduit, p.up_gbps, p.down_gbps) for p in link.pairs],
        )
        for link in reference.links
    ]
    assert [(c["id"], c["centreId"], c["platform"], c["ownership"]) for c in spec["clusters"]] == [
        (c.id, c.centre_id, c.platform.value, c.ownership.value) for c in reference.clusters
    ]
    assert spec["backupCentreId"] in {
        c.id for c in reference.centres if c.role.value == "backup-centre"
    }


def test_the_example_hospital_repeats_the_regions_facts_about_it():
    region = example("region-panyu.yaml", "Region")["spec"]
    hospital = site()["spec"]
    centres = {c["id"]: c for c in region["centres"]}
    room = centres[hospital["room"]["centreId"]]
    assert (room["role"], room["city"], room["province"]) == (
        "hospital-room",
        hospital["room"]["city"],
        hospital["room"]["province"],
    )
    region_nodes = {n["id"]: n for n in region["nodes"]}
    for node in hospital["nodes"]:
        assert region_nodes[node["id"]] == {**node, "centreId": room["id"]}
    region_links = {link["id"]: link for link in region["links"]}
    for link in hospital["links"]:
        assert region_links[link["id"]] == link
    region_clusters = {c["id"]: c for c in region["clusters"]}
    for cluster in hospital["clusters"]:
        in_region = region_clusters[cluster["name"]]
        assert (in_region["centreId"], in_region["ownership"], in_region["platform"]) == (
            cluster["centreId"],
            cluster["role"],
            "kubernetes",
        )
    backup = hospital["backup"]
    assert centres[backup["sameCityCentreId"]]["city"] == room["city"]
    assert centres[backup["outOfProvinceCentreId"]]["province"] != room["province"]


def test_the_example_hospital_runs_the_ten_named_systems():
    systems = {s["name"]: s for s in site()["spec"]["systems"]}
    assert sorted(s["kind"] for s in systems.values()) == sorted(
        ["his", "emr", "lis", "ris", "pacs-database", "pacs-images", "cdr", "portal", "email", "oa"]
    )
    assert systems["his"].get("dependsOn", []) == []
    assert systems["pacs-images"]["dependsOn"] == ["pacs-database"]
    assert systems["portal"]["classification"] == "public"
    assert {systems["email"]["classification"], systems["oa"]["classification"]} == {"internal"}


# --- Bad manifests ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", BAD_FIXTURES, ids=[f.stem for f in BAD_FIXTURES])
def test_a_bad_manifest_is_refused_naming_its_field_and_rule(fixture):
    field, phrase = expectation(fixture)
    (document,) = load_documents(fixture)
    problems = validate_manifest(document)
    assert any(p.field == field and phrase in p.message for p in problems), problems
    # Its one mistake, and nothing else, bar the API server's note that rules were skipped.
    assert {p.field for p in problems if p.message != RULES_NOT_CHECKED} == {field}


def test_the_bad_fixtures_cover_the_issue():
    assert {f.stem for f in BAD_FIXTURES} >= {
        "wrong-enum",
        "vcpu-128",
        "hospital-pairs-in-one-conduit",
        "region-pairs-in-one-conduit",
        "tier6-without-out-of-province",
        "depends-on-unknown-system",
        "duplicate-system-names",
    }


def test_every_problem_is_named_not_just_the_first():
    document = site()
    document["spec"]["systems"][0]["vcpu"] = 128
    document["spec"]["systems"][1]["memoryGiB"] = 512
    document["spec"]["links"][0]["pairs"][1]["conduit"] = "core-a-production-ip-conduit-1"
    assert [p.field for p in validate_manifest(document)] == [
        "spec.systems[0].vcpu",
        "spec.systems[1].memoryGiB",
        "spec.links[0].pairs",
    ]


def test_a_wrong_type_stops_the_cel_rules_as_on_the_api_server():
    document = site()
    document["spec"]["systems"][0]["vcpu"] = "eight"
    document["spec"]["systems"][1]["name"] = "his"
    assert messages(document) == [
        'spec.systems[0].vcpu: Invalid value: "string": spec.systems[0].vcpu in body must be '
        'of type integer: "string"',
        RULES_NOT_CHECKED,
    ]


def test_defaults_apply_before_the_rules():
    document = site()
    del document["spec"]["backup"]
    # The backup section defaults to {}, so the Tier 5 rule names the missing field.
    assert messages(document) == [
        "spec.backup.sameCityCentreId: Required value: system 'his' has drTier 5 or more "
        "(same-city active-active), which needs spec.backup.sameCityCentreId (R-7.6b)"
    ]
    portal = next(s for s in site()["spec"]["systems"] if s["name"] == "portal")
    document = site()
    document["spec"]["systems"] = [{k: v for k, v in portal.items() if k != "storageGiB"}]
    document["spec"]["systems"][0].pop("storageClass")
    assert validate_manifest(document) == []


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        (
            lambda s: s["systems"][0].update(standbyCluster=None),
            "spec.systems[0].standbyCluster",
            "Required value: a system at drTier 5 or more (same-city active-active) needs a "
            "standbyCluster (R-7.6b)",
        ),
        (
            lambda s: s["systems"][0].update(standbyCluster="hospital-private"),
            "spec.systems[0].standbyCluster",
            "standbyCluster must differ from cluster",
        ),
        (
            lambda s: s["systems"][0].update(drTier=6),
            "spec.systems[0].rpoSeconds",
            "rpoSeconds must be 0 (R-7.6c)",
        ),
        (
            lambda s: s["systems"][5].update(storageClass="object"),
            "spec.systems[5].storageClass",
            "PACS image archives need storageClass file-nas",
        ),
        (
            lambda s: s["systems"][0].update(storageClass="distributed"),
            "spec.systems[0].storageClass",
            "need storageClass block-fc-san (R-7.4a)",
        ),
        (
            lambda s: s["systems"][0].pop("storageClass"),
            "spec.systems[0].storageClass",
            "Required value: a system with storageGiB above 0 needs a storageClass",
        ),
        (
            lambda s: s["systems"][3].update(cluster="elsewhere"),
            "spec.systems",
            "spec.systems[].cluster 'elsewhere' names no cluster of spec.clusters",
        ),
        (
            lambda s: s["links"][1].update(bNode="hospital-core-a"),
            "spec.links[1].bNode",
            "a link's aNode and bNode must be different nodes",
        ),
        (
            lambda s: s["backup"].update(sameCityCentreId="panyu-hospital"),
            "spec.backup.sameCityCentreId",
            "must be another centre than the hospital's own room",
        ),
        (
            lambda s: s["clusters"][1].update(name="hospital-private"),
            "spec.clusters",
            "cluster name 'hospital-private' appears more than once",
        ),
        (
            lambda s: s["security"].update(zones=["core", "dmz", "core"]),
            "spec.security.zones[2]",
            'Duplicate value: "core"',
        ),
        (
            lambda s: s["systems"][0].update(vcpus=8),
            "spec.systems[0].vcpus",
            'unknown field "spec.systems[0].vcpus"',
        ),
        (
            lambda s: s.update(hospitalId="Central_Hospital"),
            "spec.hospitalId",
            "spec.hospitalId in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        ),
        (
            lambda s: s["links"][0]["pairs"][0].update(upGbps=0),
            "spec.links[0].pairs[0].upGbps",
            "spec.links[0].pairs[0].upGbps in body should be greater than 0",
        ),
        (
            lambda s: s["systems"][0].pop("cluster"),
            "spec.systems[0].cluster",
            "spec.systems[0].cluster: Required value",
        ),
    ],
)
def test_each_rule_names_its_field(change, field, phrase):
    document = site()
    change(document["spec"])
    problems = validate_manifest(document)
    assert any(p.field == field and phrase in p.message for p in problems), problems


def test_region_references_are_checked():
    region = copy.deepcopy(example("region-panyu.yaml", "Region"))
    region["spec"]["nodes"][2]["centreId"] = "nowhere"
    region["spec"]["backupCentreId"] = "panyu-carrier-standby"
    assert messages(region) == [
        "spec.nodes: Invalid value: spec.nodes[].centreId 'nowhere' names no centre of "
        "spec.centres: every node must be in a centre of the region",
        "spec.backupCentreId: Invalid value: spec.backupCentreId must name a centre whose role is "
        "backup-centre (R-7.2.5, R-A.2)",
    ]


def test_a_region_of_centres_alone_is_valid():
    # nodes, links and clusters are optional: the rules about them hold when they are absent.
    region = copy.deepcopy(example("region-panyu.yaml", "Region"))
    for optional in ("nodes", "links", "clusters"):
        del region["spec"][optional]
    assert validate_manifest(region) == []
    region["spec"]["links"] = example("region-panyu.yaml", "Region")["spec"]["links"][:1]
    assert [p.field for p in validate_manifest(region)] == ["spec.links"]


def test_updates_only_rules_are_left_to_the_api_server():
    # hospitalId is immutable (`self == oldSelf`): a rule about a change, not about one manifest.
    assert validate_manifest(site()) == []


def test_apiversion_kind_and_name_are_checked():
    document = site()
    document["apiVersion"] = "medcloud.io/v1"
    assert messages(document) == [
        'apiVersion: Unsupported value: "medcloud.io/v1": supported values: "medcloud.io/v1alpha1"'
    ]
    document = site()
    document["kind"] = "Hospital"
    assert [p.field for p in validate_manifest(document)] == ["kind"]
    document = site()
    document["metadata"]["name"] = "Central_Site"
    assert [p.field for p in validate_manifest(document)] == ["metadata.name"]


def test_every_cel_rule_compiles_in_cel_python():
    environment = celpy.Environment()

    def rules(schema: Any) -> list[str]:
        if isinstance(schema, list):
            return [rule for item in schema for rule in rules(item)]
        if not isinstance(schema, dict):
            return []
        own = [
            expression
            for rule in schema.get("x-kubernetes-validations", ())
            for expression in (rule["rule"], rule.get("messageExpression"))
            if expression
        ]
        return own + [rule for value in schema.values() for rule in rules(value)]

    for kind in ("Region", "HospitalSite"):
        found = rules(load_crd(kind))
        assert found
        for expression in found:
            environment.compile(expression)


def test_both_crds_give_links_the_same_schema():
    def links(kind: str) -> dict[str, Any]:
        spec = load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        return spec["properties"]["spec"]["properties"]["links"]["items"]

    assert links("Region") == links("HospitalSite")


def test_the_crd_directory_can_be_moved(tmp_path, monkeypatch):
    moved = tmp_path / "crds"
    shutil.copytree(ROOT / "operators" / "crds", moved)
    text = (moved / "hospitalsite.yaml").read_text()
    (moved / "hospitalsite.yaml").write_text(text.replace("maximum: 256", "maximum: 48"))
    monkeypatch.setenv(CRD_DIR_ENV, str(moved))
    assert [p.field for p in validate_manifest(site())] == ["spec.systems[4].memoryGiB"]


def test_load_documents_reads_a_directory_and_skips_empty_documents(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: A\n---\n---\nkind: B\n")
    (tmp_path / "b.yml").write_text("kind: C\n")
    (tmp_path / "notes.txt").write_text("kind: D\n")
    assert [d["kind"] for d in load_documents(tmp_path)] == ["A", "B", "C"]
    (tmp_path / "c.yaml").write_text("- a list\n")
    with pytest.raises(ManifestError, match=r"c\.yaml: document 1 is a list, not a mapping"):
        load_documents(tmp_path)


# --- medcloudctl validate --------------------------------------------------------------------


def test_validate_exits_0_for_the_examples():
    result = invoke("validate", "-f", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert "HospitalSite hospital-central/central" in result.output
    assert "Region panyu" in result.output


def test_validate_exits_1_naming_every_problem():
    result = invoke("validate", "-f", str(BAD))
    assert result.exit_code == 1
    for fixture in BAD_FIXTURES:
        field, phrase = expectation(fixture)
        assert field in result.output and phrase in result.output, fixture.name


def test_validate_json_output_parses():
    result = invoke("validate", "-f", str(BAD / "vcpu-128.yaml"), "--output", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    (checked,) = report["objects"]
    assert (checked["kind"], checked["name"]) == ("HospitalSite", "vcpu-128")
    assert checked["problems"] == [
        {
            "field": "spec.systems[1].vcpu",
            "rule": "maximum",
            "message": "spec.systems[1].vcpu: Invalid value: 128: spec.systems[1].vcpu in body "
            "should be less than or equal to 64",
        }
    ]
    clean = json.loads(invoke("validate", "-f", str(EXAMPLES), "-o", "json").output)
    assert clean["valid"] is True and len(clean["objects"]) == 2


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        ("a: [unclosed\n", "not valid YAML"),
        ("kind: Namespace\n", "no Region"),
    ],
)
def test_validate_exits_2_for_unreadable_input(tmp_path, content, said):
    path = tmp_path / "input.yaml"
    if content is not None:
        path.write_text(content)
    result = invoke("validate", "-f", str(path))
    assert result.exit_code == 2
    assert said in result.output
