"""The operator runs as the chart's ServiceAccount with exactly the chart's Role and ClusterRole
(R-A.2.6 least privilege): two replicas against the management cluster, authenticated by a
ServiceAccount token, bring a HospitalSite to its conditions and remove it again, one replica
leading at a time; and the same identity is refused everything the operator has no need for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.servers import venv_bin
from tests.operator.region_stack import (
    EXAMPLES,
    HOSPITAL,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    ROOT,
    Region,
    enrol_kubeconfig,
    started_region,
    steps_succeeded,
    wait_for,
)

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "medcloud"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
LEASE = "medcloud-operator"


def chart_operator_rbac(work: Path) -> list[dict]:  # type: ignore[type-arg]
    """The operator's ServiceAccount and RBAC exactly as `helm template` renders them."""
    helm_home = Path(tempfile.mkdtemp(dir=work, prefix="helm-"))
    rendered = subprocess.run(
        [
            str(venv_bin() / "helm"),
            "template",
            "medcloud",
            str(CHART),
            "--namespace",
            OPERATOR_NAMESPACE,
            "-f",
            str(CHART / "values-panyu.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={
            **os.environ,
            **{f"HELM_{d}_HOME": str(helm_home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")},
        },
    ).stdout
    return [
        document
        for document in yaml.safe_load_all(rendered)
        if document
        and document["kind"] in RBAC_KINDS
        and document["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"
    ]


def token_kubeconfig(region: Region, service_account: str) -> Path:
    """A kubeconfig for the ServiceAccount, with a token from the TokenRequest API (what the
    kubelet mounts into the operator's pod)."""
    token = region.kubectl(
        "create", "token", service_account, "-n", OPERATOR_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    management = region.clusters["management"]
    path = region.work / "operator-sa.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "management",
                        "cluster": {
                            "server": management.url,
                            "certificate-authority": str(management.ca_path),
                        },
                    }
                ],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [
                    {"name": "sa", "context": {"cluster": "management", "user": service_account}}
                ],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


class Replicas:
    def __init__(self, region: Region, kubeconfig: Path) -> None:
        self.health_ports = {name: free_port() for name in ("replica-a", "replica-b")}
        self.processes = {
            name: ManagedProcess(
                f"operator {name}",
                [sys.executable, "-m", "medcloud.operators"],
                region.work / f"operator-{name}.log",
                {
                    **region.operator_environment(kubeconfig),
                    "MEDCLOUD_OPERATOR_IDENTITY": name,
                    "MEDCLOUD_OPERATOR_LEASE_SECONDS": "3",
                    "MEDCLOUD_OPERATOR_HEALTH_LISTEN": f"127.0.0.1:{self.health_ports[name]}",
                },
            )
            for name in ("replica-a", "replica-b")
        }

    def start(self) -> None:
        for process in self.processes.values():
            process.start()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def health(self, name: str, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        """What the kubelet's httpGet probe would get."""
        url = f"http://127.0.0.1:{self.health_ports[name]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def logs(self) -> str:
        return "".join(p.log_path.read_text() for p in self.processes.values())


@pytest.fixture(scope="module")
def region(etcd_server, nats_server, tmp_path_factory) -> Iterator[Region]:
    work = tmp_path_factory.mktemp("rbac")
    yield from started_region(etcd_server, nats_server, work, "rbactests", "rbac")


@pytest.fixture(scope="module")
def service_account(region: Region) -> str:
    # The admin operator Region started is not this test's subject.
    assert region.operator is not None
    region.operator.stop()
    rbac = chart_operator_rbac(region.work)
    kinds = sorted(d["kind"] for d in rbac)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"]
    region.kubectl("apply", "-n", OPERATOR_NAMESPACE, "-f", "-", input=yaml.safe_dump_all(rbac))
    return next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")


@pytest.fixture(scope="module")
def replicas(region: Region, service_account: str) -> Iterator[Replicas]:
    started = Replicas(region, token_kubeconfig(region, service_account))
    started.start()
    try:
        yield started
    finally:
        started.stop()


def lease_holder(region: Region) -> str:
    try:
        lease = client.CoordinationV1Api(region.api("management")).read_namespaced_lease(
            LEASE, OPERATOR_NAMESPACE
        )
    except client.ApiException:
        return ""
    return lease.spec.holder_identity or ""


def test_the_chart_grants_enough_to_reconcile_and_one_replica_leads(region, replicas):
    enrol_kubeconfig(region, "hospital-private-kubeconfig", "private")
    enrol_kubeconfig(region, "carrier-public-kubeconfig", "public")
    region.kubectl("apply", "-f", str(EXAMPLES / "region-panyu.yaml"))
    region.kubectl("apply", "-f", str(EXAMPLES / "hospital-central.yaml"))
    wait_for(
        region,
        "the site's steps to succeed under the chart's RBAC",
        lambda: steps_succeeded(region, "Validated", "Inventoried", "Placed", "Protected"),
        timeout=240,
    )
    leader = lease_holder(region)
    assert leader in replicas.processes
    standby = next(name for name in replicas.processes if name != leader)
    assert "standing by" in replicas.processes[standby].log_path.read_text()
    # Both are live and ready for the kubelet; each says which it is.
    for name, role in ((leader, "leader"), (standby, "standby")):
        for path in ("/livez", "/readyz"):
            status, body = replicas.health(name, path)
            assert (status, body["role"], body["identity"]) == (200, role, name), (path, body)
    # The step events went out under the operator's identity.
    events = client.CoreV1Api(region.api("management")).list_namespaced_event(NAMESPACE).items
    assert any(e.involved_object.kind == "HospitalSite" for e in events)
    assert "Forbidden" not in replicas.logs()

    # The leader stops; the standby takes over and carries out the delete (finalizer included).
    replicas.processes[leader].stop()
    wait_for(region, "the standby to lead", lambda: lease_holder(region) == standby, timeout=60)
    wait_for(
        region,
        "the new leader to say so",
        lambda: replicas.health(standby, "/readyz")[1]["role"] == "leader",
        timeout=30,
    )
    region.kubectl("delete", "hospitalsite", "central", "-n", NAMESPACE, "--timeout=180s")
    for cluster in ("private", "public"):
        core = client.CoreV1Api(region.api(cluster))
        assert not core.list_namespaced_resource_quota(HOSPITAL).items
    assert "Forbidden" not in replicas.logs()


@pytest.mark.parametrize(
    "verb, resource, namespace",
    [
        ("get", "secrets", NAMESPACE),  # a hospital's own Secrets are not the operator's
        ("list", "secrets", OPERATOR_NAMESPACE),  # it reads the Secret a site names, no more
        ("watch", "secrets", OPERATOR_NAMESPACE),
        ("create", "secrets", OPERATOR_NAMESPACE),
        ("get", "leases", NAMESPACE),
        ("delete", "hospitalsites.medcloud.io", NAMESPACE),
        ("create", "hospitalsites.medcloud.io", NAMESPACE),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
        ("create", "namespaces", ""),
        ("list", "namespaces", ""),
        ("delete", "events", NAMESPACE),
        ("get", "pods", NAMESPACE),
        ("create", "rolebindings.rbac.authorization.k8s.io", OPERATOR_NAMESPACE),
        ("impersonate", "users", ""),
    ],
)
def test_the_operator_identity_is_refused_what_it_does_not_need(
    region, service_account, verb, resource, namespace
):
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"
    scope = ["-n", namespace] if namespace else []
    answer = region.kubectl("auth", "can-i", verb, resource, *scope, "--as", subject, check=False)
    assert answer.stdout.strip() == "no", (verb, resource, namespace, answer.stdout)


def test_the_operator_identity_may_do_what_it_needs(region, service_account):
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"
    for verb, resource, namespace in [
        ("watch", "hospitalsites.medcloud.io", ""),
        ("patch", "hospitalsites.medcloud.io/status", NAMESPACE),
        ("list", "regions.medcloud.io", ""),
        ("get", "secrets", OPERATOR_NAMESPACE),
        ("update", "leases.coordination.k8s.io", OPERATOR_NAMESPACE),
        ("create", "events", NAMESPACE),
    ]:
        scope = ["-n", namespace] if namespace else []
        answer = region.kubectl(
            "auth", "can-i", verb, resource, *scope, "--as", subject, check=False
        )
        assert answer.stdout.strip() == "yes", (verb, resource, namespace, answer.stdout)
