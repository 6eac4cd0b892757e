"""medcloudctl against a running region: the example region and hospital applied through the
management cluster's API, the operator's progress read back with get and describe, a placement
explained by scheduling, the site deleted through its finalizer; then the same hospital applied
with no Kubernetes API at all (--embedded), straight into the services.

The region is region_stack's (three kube-apiservers, five services, the operator process) with
clusters named cli-*."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from medcloud.devstack.stack import open_channel
from medcloud.operators.cli import app
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from tests.operator.region_stack import (
    EXAMPLES,
    HOSPITAL,
    NAMESPACE,
    Region,
    enrol_kubeconfig,
    started_region,
)

pytestmark = pytest.mark.integration

SECRETS = {"hospital-private-kubeconfig": "private", "carrier-public-kubeconfig": "public"}
EMBEDDED = "embedded-hospital"


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("cli")
    yield from started_region(etcd_server, nats_server, work, "clitests", "cli")


def medcloudctl(region: Region, *args: str, **env: str):  # type: ignore[no-untyped-def]
    """The CLI in this process, as the region's system administrator would run it."""
    environment = {
        "COLUMNS": "300",
        "KUBECONFIG": str(region.kubeconfig),
        **{f"MEDCLOUD_{n.upper()}_ADDRESS": a for n, a in region.addresses.items()},
        **region.admin.environment(),
        **env,
    }
    return CliRunner().invoke(app, list(args), env=environment)


def _site(region: Region) -> dict | None:  # type: ignore[type-arg]
    objects = client.CustomObjectsApi(region.api("management"))
    try:
        return objects.get_namespaced_custom_object(
            "medcloud.io", "v1alpha1", NAMESPACE, "hospitalsites", "central"
        )
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _conditions(site: dict | None) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["type"]: c for c in ((site or {}).get("status") or {}).get("conditions", [])}


def _wait_for(region: Region, kinds: tuple[str, ...], timeout: float = 180) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        site = _site(region)
        conditions = _conditions(site)
        if all(conditions.get(kind, {}).get("status") == "True" for kind in kinds):
            return site  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {kinds}; conditions: {conditions}")
        time.sleep(0.5)


def test_apply_get_describe_explain_and_delete_through_the_management_cluster(region, tmp_path):
    # Plain Namespaces and Secrets go with the medcloud resources, applied server-side.
    extra = tmp_path / "namespace.yaml"
    extra.write_text(
        yaml.safe_dump_all(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "cli-note", "namespace": NAMESPACE},
                    "stringData": {"note": "applied by medcloudctl"},
                },
            ]
        )
    )
    applied = medcloudctl(region, "apply", "-f", str(extra))
    assert applied.exit_code == 0, applied.output
    assert f"namespace/{NAMESPACE} created" in applied.stdout
    assert f"secret/cli-note (namespace {NAMESPACE}) created" in applied.stdout
    core = client.CoreV1Api(region.api("management"))
    note = core.read_namespaced_secret("cli-note", NAMESPACE)
    assert any(m.manager == "medcloudctl" for m in note.metadata.managed_fields)
    for secret, cluster in SECRETS.items():
        enrol_kubeconfig(region, secret, cluster)

    applied = medcloudctl(region, "apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    assert applied.exit_code == 0, applied.output
    assert "region.medcloud.io/panyu created" in applied.stdout
    applied = medcloudctl(
        region, "apply", "-f", str(EXAMPLES / "hospital-central.yaml"), "--no-wait"
    )
    assert applied.exit_code == 0, applied.output
    assert f"namespace/{NAMESPACE} " in applied.stdout  # there already: unchanged or configured
    assert f"hospitalsite.medcloud.io/central (namespace {NAMESPACE}) created" in applied.stdout

    site = _wait_for(region, ("Validated", "Inventoried", "Placed", "Protected"))
    # The security pool has allocated nothing to the site: it never gets Ready here, and a wait
    # times out (exit 3) listing what is not True.
    waited = medcloudctl(
        region, "apply", "-f", str(EXAMPLES / "hospital-central.yaml"), "--timeout", "3"
    )
    assert waited.exit_code == 3, waited.output
    assert "central (namespace hospital-central) unchanged" in waited.stdout
    assert "Secured" in waited.stdout and "BaselineNotMet" in waited.stdout
    assert "timed out after 3s" in waited.stdout

    listed = medcloudctl(region, "get", "-n", NAMESPACE)
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    for column in ("NAMESPACE", "NAME", "PHASE", "PLACED", "DR TIER", "CONFORMANCE", "AGE"):
        assert column in header
    status = _site(region)["status"]  # type: ignore[index]
    assert row.split()[:5] == [
        NAMESPACE,
        "central",
        status["phase"],
        f"{status['systemsPlaced']}/{status['systemCount']}",
        str(status["drTier"]),
    ]
    as_json = json.loads(medcloudctl(region, "get", "-A", "-o", "json").stdout)
    assert [(s["namespace"], s["name"]) for s in as_json] == [(NAMESPACE, "central")]
    assert as_json[0]["status"]["systemsPlaced"] == len(site["spec"]["systems"])
    missing = medcloudctl(region, "get", "nowhere", "-n", NAMESPACE)
    assert missing.exit_code == 1 and "nowhere not found" in missing.stderr
    forbidden = medcloudctl(
        region,
        "get",
        "-n",
        NAMESPACE,
        "--kubeconfig",
        str(region.clusters["management"].restricted_kubeconfig),
    )
    assert forbidden.exit_code == 2 and "403" in forbidden.stderr

    described = medcloudctl(region, "describe", "central", "-n", NAMESPACE)
    assert described.exit_code == 0, described.output
    text = described.stdout
    assert HOSPITAL in text and "Conditions" in text and "Placements" in text
    placed_row = next(line for line in text.splitlines() if "│ Placed " in line)
    assert "True" in placed_row
    assert any("│ his " in line and "placed" in line for line in text.splitlines())
    assert "Events" in text and "Registered" in text  # the operator's event for Inventoried

    explained = medcloudctl(region, "explain", f"{HOSPITAL}-his")
    assert explained.exit_code == 0, explained.output
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        placement = (
            scheduling_grpc.SchedulingServiceStub(channel)
            .GetPlacement(scheduling_api.GetPlacementRequest(system_id=f"{HOSPITAL}-his"))
            .placement
        )
    assert placement.assignments
    for assignment in placement.assignments:
        assert assignment.host_id in explained.stdout
        assert assignment.centre_id in explained.stdout
    assert "Why" in explained.stdout
    unknown = medcloudctl(region, "explain", "his")
    assert unknown.exit_code == 1
    assert "'his'" in unknown.stderr and "<hospitalId>-<system>" in unknown.stderr

    # The report in the shape; the baseline fails (an empty security pool here).
    report = medcloudctl(
        region, "conformance", "-f", str(EXAMPLES / "hospital-central.yaml"), "-o", "json"
    )
    assert report.exit_code == 1, report.output
    found = json.loads(report.stdout)
    statuses = {entry["id"]: entry["status"] for entry in found["requirements"]}
    assert statuses["R-7.2.4"] == "fail" and statuses["R-A.2.1"] == "pass"
    assert set(found["summary"]) >= {"pass", "fail", "not-applicable", "unknown", "total"}
    assert found["summary"]["total"] == len(found["requirements"])
    table = medcloudctl(region, "conformance", "-f", str(EXAMPLES / "hospital-central.yaml"))
    assert "R-7.2.4" in table.stdout and "fail" in table.stdout

    deleted = medcloudctl(region, "delete", "central", "-n", NAMESPACE, "--timeout", "120")
    assert deleted.exit_code == 0, deleted.output
    assert _site(region) is None
    with open_channel(region.addresses["scheduling"], region.admin) as channel:
        listed_placements = (
            scheduling_grpc.SchedulingServiceStub(channel)
            .ListPlacements(scheduling_api.ListPlacementsRequest())
            .placements
        )
    assert not [p for p in listed_placements if p.system.id.startswith(HOSPITAL)]
    again = medcloudctl(region, "delete", "central", "-n", NAMESPACE)
    assert again.exit_code == 1 and "not found" in again.stderr


def test_embedded_apply_drives_the_reconcile_core_without_kubernetes(region, tmp_path):
    # A hospital of its own: the member namespaces the site above left behind stay Terminating
    # on these bare API servers (no namespace controller), so it must not reuse its hospitalId.
    documents = list(yaml.safe_load_all((EXAMPLES / "hospital-central.yaml").read_text()))
    for document in documents:
        if document["kind"] == "HospitalSite":
            document["metadata"]["name"] = "embedded"
            document["spec"]["hospitalId"] = EMBEDDED
    manifest = tmp_path / "hospital-embedded.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for secret, cluster in SECRETS.items():
        (secrets / secret).write_bytes(region.clusters[cluster].admin_kubeconfig.read_bytes())
    # No management cluster anywhere: the embedded mode must not look for one.
    no_kube = {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}

    applied = medcloudctl(
        region, "apply", "-f", str(EXAMPLES / "region-panyu.yaml"), "--embedded", **no_kube
    )
    assert applied.exit_code == 0, applied.output
    assert "region.medcloud.io/panyu applied" in applied.stdout

    applied = medcloudctl(
        region,
        "apply",
        "-f",
        str(manifest),
        "--embedded",
        "--secrets-dir",
        str(secrets),
        **no_kube,
    )
    # Placed and Protected, but not Ready: the security pool has allocated nothing to it.
    assert applied.exit_code == 1, applied.output
    rows = {
        line.split("│")[1].strip(): line
        for line in applied.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    for kind in ("Validated", "Inventoried", "Placed", "Protected"):
        assert "True" in rows[kind], rows[kind]
    assert "BaselineNotMet" in rows["Secured"]
    assert "skipped namespace/hospital-central" in applied.stdout
    assert "hospitalsite.medcloud.io/embedded (hospital-central)" in applied.stdout
    for cluster in ("private", "public"):
        policies = client.NetworkingV1Api(region.api(cluster)).list_namespaced_network_policy(
            EMBEDDED
        )
        assert "default-deny" in {p.metadata.name for p in policies.items}
