"""The Region and HospitalSite CRDs on a real kube-apiserver: accepted (CEL cost limits included),
the examples apply, list with their printer columns and describe with their conditions, status
moves only through the status subresource, and every bad manifest is refused with the same field
and rule `medcloudctl validate` names offline."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.servers import venv_bin
from medcloud.operators.manifests import load_documents, validate_manifest
from tests.support.identities import kube_apiserver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "operators" / "crds"
EXAMPLES = ROOT / "examples"
BAD_FIXTURES = sorted((Path(__file__).parent / "bad").glob("*.yaml"))
KUBECTL = str(venv_bin() / "kubectl")
GROUP, VERSION = "medcloud.io", "v1alpha1"


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory) -> Iterator[KubeApiServer]:
    # A cluster name of its own, so its etcd prefix holds nothing from other modules.
    server = kube_apiserver("crd-tests", etcd_server.endpoint, tmp_path_factory.mktemp("crd-tests"))
    server.start()
    yield server
    server.stop()


def kubectl(
    cluster: KubeApiServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, "--kubeconfig", str(cluster.admin_kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def crds(cluster) -> None:
    kubectl(cluster, "apply", "-f", str(CRDS))
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "crd/regions.medcloud.io",
        "crd/hospitalsites.medcloud.io",
        "--timeout=60s",
    )


@pytest.fixture(scope="module")
def examples(cluster, crds) -> None:
    kubectl(cluster, "apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    kubectl(cluster, "apply", "-f", str(EXAMPLES / "hospital-central.yaml"))


@pytest.fixture(scope="module")
def objects(cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(str(cluster.admin_kubeconfig)))


def header(table: str) -> list[str]:
    """The column names of kubectl's table output (names may hold one space: "DR TIER")."""
    return re.split(r"\s{2,}", table.splitlines()[0].strip())


def row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.split()[0] == name)
    return re.split(r"\s{2,}", line.strip())


def test_the_crds_are_served_with_their_names(cluster, crds):
    resources = kubectl(cluster, "api-resources", "--api-group", GROUP).stdout
    assert re.search(
        r"^hospitalsites\s+hs\s+medcloud\.io/v1alpha1\s+true\s+HospitalSite$", resources, re.M
    )
    assert re.search(r"^regions\s+rg\s+medcloud\.io/v1alpha1\s+false\s+Region$", resources, re.M)


def test_the_examples_apply_and_list_with_the_printer_columns(cluster, examples):
    listed = kubectl(cluster, "get", "hs", "-n", "hospital-central").stdout
    assert header(listed) == ["NAME", "PHASE", "PLACED", "DR TIER", "CONFORMANCE", "AGE"]
    assert row(listed, "central")[0] == "central"
    wide = kubectl(cluster, "get", "hospitalsites", "-n", "hospital-central", "-o", "wide").stdout
    assert "SYSTEMS" in header(wide)
    regions = kubectl(cluster, "get", "rg").stdout
    assert header(regions) == ["NAME", "PHASE", "BACKUP CENTRE", "AGE"]
    assert row(regions, "panyu")[1] == "guiyang-backup"


def test_status_goes_through_the_subresource_and_shows_in_the_columns(cluster, examples, objects):
    status = {
        "observedGeneration": 1,
        "phase": "Ready",
        "systemCount": 10,
        "systemsPlaced": 10,
        "drTier": 5,
        "conformance": "38 pass, 2 fail, 11 n/a",
    }
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "hospital-central",
        "hospitalsites",
        "central",
        {"spec": {"displayName": "Renamed through status"}, "status": status},
    )
    listed = kubectl(cluster, "get", "hs", "central", "-n", "hospital-central", "-o", "wide").stdout
    columns = dict(zip(header(listed), row(listed, "central"), strict=True))
    assert {k: columns[k] for k in ("PHASE", "PLACED", "SYSTEMS", "DR TIER", "CONFORMANCE")} == {
        "PHASE": "Ready",
        "PLACED": "10",
        "SYSTEMS": "10",
        "DR TIER": "5",
        "CONFORMANCE": "38 pass, 2 fail, 11 n/a",
    }
    stored = objects.get_namespaced_custom_object(
        GROUP, VERSION, "hospital-central", "hospitalsites", "central"
    )
    assert stored["spec"]["displayName"] == "Panyu Central Hospital"
    assert stored["status"]["phase"] == "Ready"


def test_describe_shows_the_conditions(cluster, examples, objects):
    conditions = [
        {
            "type": kind,
            "status": "True" if kind != "Protected" else "False",
            "reason": "Done" if kind != "Protected" else "TargetUnreachable",
            "message": f"{kind} step finished" if kind != "Protected" else "guiyang-backup down",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-01T08:00:00Z",
        }
        for kind in ("Validated", "Inventoried", "Placed", "Secured", "Protected", "Monitored")
    ]
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "hospital-central",
        "hospitalsites",
        "central",
        {"status": {"phase": "ProtectedFailed", "conditions": conditions}},
    )
    described = kubectl(cluster, "describe", "hs", "central", "-n", "hospital-central").stdout
    assert re.search(r"^  Hospital Id:\s+central-hospital$", described, re.M)
    status = described[described.index("\nStatus:") :]
    assert re.findall(r"^    Type:\s+(\w+)$", status, re.M) == [c["type"] for c in conditions]
    assert re.search(r"^    Reason:\s+TargetUnreachable$", status, re.M)
    assert re.search(r"^    Message:\s+guiyang-backup down$", status, re.M)
    assert re.search(r"^  Phase:\s+ProtectedFailed$", status, re.M)


def test_a_status_without_a_condition_reason_is_refused(cluster, examples, objects):
    result = kubectl(
        cluster,
        "patch",
        "hs",
        "central",
        "-n",
        "hospital-central",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}',
        check=False,
    )
    assert result.returncode != 0
    assert 'status.conditions[0].status: Unsupported value: "Maybe"' in result.stderr
    assert "status.conditions[0].reason: Required value" in result.stderr


@pytest.mark.parametrize("fixture", BAD_FIXTURES, ids=[f.stem for f in BAD_FIXTURES])
def test_a_bad_manifest_is_refused_as_medcloudctl_refuses_it(cluster, crds, fixture):
    header_lines = dict(re.findall(r"^# expect-(field|message): (.+)$", fixture.read_text(), re.M))
    field, phrase = header_lines["field"], header_lines["message"]
    namespace = f"bad-{fixture.stem}"[:63]
    kubectl(cluster, "create", "namespace", namespace)

    result = kubectl(cluster, "apply", "-n", namespace, "-f", str(fixture), check=False)

    assert result.returncode != 0
    server_says = [line for line in result.stderr.splitlines() if field in line]
    assert any(f"{field}: " in line and phrase in line for line in server_says), result.stderr
    (document,) = load_documents(fixture)
    offline = [p for p in validate_manifest(document) if p.field == field]
    assert offline and all(phrase in p.message for p in offline)
    # The same verdict word for word: the offline message is in what the server said.
    assert all(p.message in result.stderr for p in offline), (offline, result.stderr)
    kind = "hs" if document["kind"] == "HospitalSite" else "rg"
    absent = kubectl(cluster, "get", kind, fixture.stem, "-n", namespace, check=False)
    assert "NotFound" in absent.stderr
