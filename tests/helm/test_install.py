"""helm install, upgrade and uninstall of two regions on a real kube-apiserver (no nodes: pods
stay Pending and nobody waits for them). The Secrets the chart references are made first from
the region's CA (medcloud.devstack.pki); every object the chart renders is accepted and exists;
two regions live side by side in their own namespaces; an upgrade changes what its values say;
uninstall leaves the CRDs and the panyu snapshots claim it is told to keep, and nothing else."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.pki import RegionPki
from medcloud.devstack.servers import venv_bin
from medcloud.devstack.stack import SERVICE, SYSTEM_ADMINISTRATOR
from tests.helm.chart import (
    CHART,
    CONGHUA,
    PANYU,
    SERVICES,
    Document,
    helm,
    nats_certificate,
    render,
)
from tests.support.identities import kube_apiserver

pytestmark = pytest.mark.integration

KUBECTL = str(venv_bin() / "kubectl")
# Release = namespace = medcloud-<region>: cluster-scoped names (<fullname>-operator) stay apart.
REGIONS = {
    "panyu": (PANYU, ()),
    "conghua": (CONGHUA, ("backup.snapshots.keepOnUninstall=false",)),
}
CRDS = ("regions.medcloud.io", "hospitalsites.medcloud.io")


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory) -> Iterator[KubeApiServer]:
    server = kube_apiserver("helm-tests", etcd_server.endpoint, tmp_path_factory.mktemp("helm"))
    server.start()
    yield server
    server.stop()


def kubectl(cluster: KubeApiServer, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(cluster.admin_kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def in_cluster(cluster: KubeApiServer, *args: str) -> str:
    return helm(*args, "--kubeconfig", str(cluster.admin_kubeconfig)).stdout


def secret(
    name: str, namespace: str, files: dict[str, bytes], labels: dict[str, str] | None = None
) -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def region_secrets(
    region: str, namespace: str, work: Path, cluster: KubeApiServer
) -> list[Document]:
    """What docs/helm.md says to create before installing: each part's certificate from the
    region's CA, NATS passwords, the audit signing key, the snapshot identity, the bundled etcd's
    and NATS's certificates and kubeconfigs."""
    pki = RegionPki(work / region, region)
    release = namespace

    def tls(name: str, roles: tuple[str, ...]) -> dict[str, bytes]:
        files = pki.issue(name, roles)
        return {
            "ca.crt": files.ca.read_bytes(),
            "tls.crt": files.cert.read_bytes(),
            "tls.key": files.key.read_bytes(),
        }

    secrets = [
        secret(f"{release}-{service}-tls", namespace, tls(service, (SERVICE,)))
        for service in SERVICES
    ]
    secrets += [
        secret(
            f"{release}-operator-tls", namespace, tls("region-operator", (SYSTEM_ADMINISTRATOR,))
        ),
        secret(
            f"{release}-nats-credentials",
            namespace,
            {service: f"password-of-{service}".encode() for service in SERVICES},
        ),
        secret(
            f"{release}-security-signing-key",
            namespace,
            {"signing.key": Ed25519PrivateKey.generate().private_bytes_raw().hex().encode()},
        ),
        secret(f"{release}-etcd-snapshot-tls", namespace, tls("etcd-snapshot", ())),
        secret(f"{release}-etcd-tls", namespace, tls("etcd", ())),
        secret(f"{release}-etcd-root-tls", namespace, tls("root", ())),
        secret(
            f"{release}-nats-tls", namespace, nats_certificate(pki.authority, release, namespace)
        ),
    ]
    values = yaml.safe_load(REGIONS[region][0].read_text())
    kubeconfig = cluster.admin_kubeconfig.read_bytes()
    secrets += [
        secret(
            member["secret"],
            namespace,
            {"kubeconfig": kubeconfig},
            {"medcloud.io/hospital": f"{region}-hospital"},
        )
        for member in values["backup"]["clusters"]
    ]
    return secrets


def release_objects(cluster: KubeApiServer, release: str, kinds: set[str]) -> list[Document]:
    """Every object of `kinds`, in any namespace or cluster-scoped, labelled with the release."""
    listing = kubectl(
        cluster,
        "get",
        ",".join(sorted(kind.lower() for kind in kinds)),
        "--all-namespaces",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "json",
    )
    return json.loads(listing)["items"]


@pytest.fixture(scope="module")
def installed(cluster, tmp_path_factory) -> dict[str, str]:
    """Both regions installed; the NOTES each install printed, by region."""
    work = tmp_path_factory.mktemp("pki")
    notes = {}
    for region, (values, settings) in REGIONS.items():
        namespace = f"medcloud-{region}"
        kubectl(cluster, "create", "namespace", namespace)
        secrets = {
            "apiVersion": "v1",
            "kind": "List",
            "items": region_secrets(region, namespace, work, cluster),
        }
        kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(secrets))
        arguments = ["-f", str(values), *(a for s in settings for a in ("--set", s))]
        notes[region] = in_cluster(
            cluster, "install", namespace, str(CHART), "--namespace", namespace, *arguments
        )
    return notes


def test_every_rendered_object_exists_after_install(cluster, installed):
    for region in REGIONS:
        namespace = f"medcloud-{region}"
        manifest = in_cluster(cluster, "get", "manifest", namespace, "--namespace", namespace)
        expected = {
            f"{d['kind'].lower()}/{d['metadata']['name']}"
            for d in yaml.safe_load_all(manifest)
            if d
        }
        found = kubectl(cluster, "get", "-f", "-", "-o", "name", stdin=manifest)
        names = {
            line.split("/", 1)[0].split(".", 1)[0] + "/" + line.split("/", 1)[1]
            for line in found.split()
        }
        assert names == expected
        assert len(expected) > 30


def test_both_regions_and_the_crds_are_there(cluster, installed):
    regions = json.loads(kubectl(cluster, "get", "regions", "-o", "json"))["items"]
    assert sorted(r["metadata"]["name"] for r in regions) == ["conghua", "panyu"]
    panyu = next(r for r in regions if r["metadata"]["name"] == "panyu")
    example = yaml.safe_load((PANYU.parents[2] / "examples" / "region-panyu.yaml").read_text())
    assert panyu["spec"] == example["spec"]
    kubectl(cluster, "get", "crd", *CRDS)


def test_notes_say_how_to_enrol_a_kubeconfig_and_check_health(installed):
    notes = installed["panyu"]
    assert "kubectl -n medcloud-panyu create secret generic <name> --from-file=kubeconfig=" in notes
    assert (
        "kubectl -n medcloud-panyu label secret <name> medcloud.io/hospital=<hospitalId>" in notes
    )
    assert "helm test medcloud-panyu -n medcloud-panyu" in notes
    assert "medcloud-panyu-inventory.medcloud-panyu.svc:50051" in notes


def test_the_conghua_release_runs_its_own_etcd_and_nats(cluster, installed):
    names = kubectl(cluster, "get", "statefulsets,jobs", "-n", "medcloud-conghua", "-o", "name")
    assert "statefulset.apps/medcloud-conghua-etcd" in names
    assert "statefulset.apps/medcloud-conghua-nats" in names
    assert "job.batch/medcloud-conghua-etcd-auth-1" in names
    notes = installed["conghua"]
    assert "NATS: tls://medcloud-conghua-nats.medcloud-conghua.svc:4222 (bundled" in notes
    assert "medcloud-conghua-nats-tls  (ca.crt, tls.crt, tls.key of the NATS servers" in notes
    assert "nats-tls" not in installed["panyu"]


def test_the_bundled_nats_mounts_the_secret_made_for_it(cluster, installed):
    statefulset = json.loads(
        kubectl(
            cluster,
            "get",
            "statefulset",
            "medcloud-conghua-nats",
            "-n",
            "medcloud-conghua",
            "-o",
            "json",
        )
    )
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    (name,) = [v["secret"]["secretName"] for v in volumes if v["name"] == "tls"]
    made = json.loads(
        kubectl(cluster, "get", "secret", name, "-n", "medcloud-conghua", "-o", "json")
    )
    assert set(made["data"]) == {"ca.crt", "tls.crt", "tls.key"}


def test_an_upgrade_changes_what_the_values_say(cluster, installed):
    namespace = "medcloud-panyu"
    in_cluster(
        cluster,
        "upgrade",
        namespace,
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(PANYU),
        "--set",
        "operator.leaseSeconds=20",
    )
    deployment = json.loads(
        kubectl(
            cluster, "get", "deployment", "medcloud-panyu-operator", "-n", namespace, "-o", "json"
        )
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MEDCLOUD_OPERATOR_LEASE_SECONDS"] == "20"
    history = json.loads(in_cluster(cluster, "history", namespace, "-n", namespace, "-o", "json"))
    assert [entry["revision"] for entry in history] == [1, 2]
    assert history[-1]["status"] == "deployed"


def test_uninstall_leaves_only_the_crds_and_the_kept_snapshots(cluster, installed):
    kinds = set()
    for values, _ in REGIONS.values():
        kinds |= {d["kind"] for d in render((values,)) if d["kind"] != "CustomResourceDefinition"}
    assert kinds >= {
        "Deployment",
        "StatefulSet",
        "Job",
        "Region",
        "ClusterRole",
        "PersistentVolumeClaim",
    }
    for region in REGIONS:
        namespace = f"medcloud-{region}"
        assert release_objects(cluster, namespace, kinds)
        in_cluster(cluster, "uninstall", namespace, "--namespace", namespace)
    kept = []
    for region in REGIONS:
        for item in release_objects(cluster, f"medcloud-{region}", kinds):
            # No kube-controller-manager here removes the pvc-protection finalizer: a claim the
            # uninstall deleted stays Terminating.
            if "deletionTimestamp" not in item["metadata"]:
                kept.append(f"{item['kind']}/{item['metadata']['name']}")
    assert kept == ["PersistentVolumeClaim/medcloud-panyu-backup-snapshots"]
    kubectl(cluster, "get", "crd", *CRDS)
    assert json.loads(kubectl(cluster, "get", "regions", "-o", "json"))["items"] == []
