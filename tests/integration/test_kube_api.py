"""Real kube-apiservers built from Go modules: what the operator and kubectl users rely on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from medcloud.devstack.kube import REGION_CLUSTERS, KubeApiServer
from medcloud.devstack.processes import StackError, free_port
from medcloud.devstack.servers import venv_bin
from tests.support.identities import identity, kube_apiserver

pytestmark = pytest.mark.integration
MANIFESTS = Path(__file__).resolve().parents[1] / "support" / "manifests"
KUBECTL = str(venv_bin() / "kubectl")


@pytest.fixture(scope="module")
def clusters(etcd_server, tmp_path_factory) -> Iterator[dict[str, KubeApiServer]]:
    """The three clusters of a region, started together on the session's etcd."""
    work = tmp_path_factory.mktemp("clusters")
    started = {
        name: kube_apiserver(name, etcd_server.endpoint, work / name) for name in REGION_CLUSTERS
    }
    for cluster in started.values():
        cluster.launch()
    for cluster in started.values():
        cluster.wait_ready()
    yield started
    for cluster in started.values():
        cluster.stop()


@pytest.fixture(scope="module")
def management(clusters) -> KubeApiServer:
    return clusters["management"]


@pytest.fixture(scope="module")
def widgets_crd(management) -> None:
    kubectl(management, "apply", "-f", str(MANIFESTS / "widgets-crd.yaml"))
    kubectl(
        management,
        "wait",
        "--for=condition=Established",
        "crd/widgets.test.medcloud.io",
        "--timeout=60s",
    )


def kubectl(
    cluster: KubeApiServer,
    *args: str,
    kubeconfig: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, "--kubeconfig", str(kubeconfig or cluster.admin_kubeconfig), *args]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {result.stderr}")
    return result


def widget(name: str, min_replicas: object, max_replicas: object) -> str:
    return json.dumps(
        {
            "apiVersion": "test.medcloud.io/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
        }
    )


def api(cluster: KubeApiServer) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(str(cluster.admin_kubeconfig)))


def test_a_crd_can_be_installed_and_its_resources_created(management, widgets_crd):
    kubectl(management, "apply", "-f", "-", stdin=widget("ok", 1, 3))
    got = json.loads(kubectl(management, "get", "widget", "ok", "-o", "json").stdout)
    assert got["spec"] == {"minReplicas": 1, "maxReplicas": 3}


def test_a_resource_violating_the_schema_is_refused_with_the_field_named(management, widgets_crd):
    result = kubectl(
        management, "apply", "-f", "-", stdin=widget("bad-type", "one", 3), check=False
    )
    assert result.returncode != 0
    assert "spec.minReplicas" in result.stderr and "integer" in result.stderr
    result = kubectl(management, "apply", "-f", "-", stdin=widget("too-big", 1, 65), check=False)
    assert "spec.maxReplicas" in result.stderr and "64" in result.stderr


def test_a_resource_violating_a_cel_rule_is_refused_with_its_message(management, widgets_crd):
    result = kubectl(management, "apply", "-f", "-", stdin=widget("inverted", 5, 2), check=False)
    assert result.returncode != 0
    assert "minReplicas must not exceed maxReplicas" in result.stderr
    absent = kubectl(management, "get", "widget", "inverted", check=False)
    assert "NotFound" in absent.stderr


def test_the_status_subresource_ignores_spec_changes(management, widgets_crd):
    kubectl(management, "apply", "-f", "-", stdin=widget("statusy", 1, 2))
    objects = api(management)
    body = objects.get_namespaced_custom_object(
        "test.medcloud.io", "v1", "default", "widgets", "statusy"
    )
    body["spec"]["maxReplicas"] = 9
    body["status"] = {"phase": "Ready"}
    objects.replace_namespaced_custom_object_status(
        "test.medcloud.io", "v1", "default", "widgets", "statusy", body
    )
    after = objects.get_namespaced_custom_object(
        "test.medcloud.io", "v1", "default", "widgets", "statusy"
    )
    assert after["status"] == {"phase": "Ready"}
    assert after["spec"]["maxReplicas"] == 2


def test_an_update_with_a_stale_resource_version_gets_409_conflict(management, widgets_crd):
    kubectl(management, "apply", "-f", "-", stdin=widget("raced", 1, 2))
    objects = api(management)
    stale = objects.get_namespaced_custom_object(
        "test.medcloud.io", "v1", "default", "widgets", "raced"
    )
    fresh = json.loads(json.dumps(stale))
    fresh["spec"]["maxReplicas"] = 3
    objects.replace_namespaced_custom_object(
        "test.medcloud.io", "v1", "default", "widgets", "raced", fresh
    )
    stale["spec"]["maxReplicas"] = 4
    with pytest.raises(ApiException) as raised:
        objects.replace_namespaced_custom_object(
            "test.medcloud.io", "v1", "default", "widgets", "raced", stale
        )
    assert raised.value.status == 409


def test_a_restricted_service_account_is_denied_what_its_role_does_not_grant(management):
    kubectl(management, "create", "namespace", "hospital-a")
    kubectl(management, "-n", "hospital-a", "create", "serviceaccount", "reader")
    kubectl(
        management,
        "-n",
        "hospital-a",
        "create",
        "role",
        "read-configmaps",
        "--verb=get,list",
        "--resource=configmaps",
    )
    kubectl(
        management,
        "-n",
        "hospital-a",
        "create",
        "rolebinding",
        "reader-reads",
        "--role=read-configmaps",
        "--serviceaccount=hospital-a:reader",
    )
    kubectl(
        management, "-n", "hospital-a", "create", "configmap", "beds", "--from-literal=count=300"
    )
    account = "system:serviceaccount:hospital-a:reader"

    def can_i(*args: str) -> str:
        return kubectl(
            management, "auth", "can-i", *args, "-n", "hospital-a", f"--as={account}", check=False
        ).stdout.strip()

    assert can_i("list", "configmaps") == "yes"
    assert can_i("delete", "configmaps") == "no"
    assert can_i("list", "secrets") == "no"

    token = kubectl(management, "-n", "hospital-a", "create", "token", "reader").stdout.strip()
    as_reader = [
        "--server",
        management.url,
        "--certificate-authority",
        str(management.ca_path),
        "--token",
        token,
        "-n",
        "hospital-a",
    ]
    command = [KUBECTL, "--kubeconfig", os.devnull, *as_reader]
    listed = subprocess.run(
        [*command, "get", "configmap", "beds", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.stdout.strip() == "configmap/beds"
    denied = subprocess.run(
        [*command, "delete", "configmap", "beds"], capture_output=True, text=True, timeout=60
    )
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    assert (
        kubectl(management, "-n", "hospital-a", "get", "configmap", "beds", check=False).returncode
        == 0
    )


def test_the_restricted_kubeconfig_holds_no_grant(management):
    result = kubectl(
        management, "get", "namespaces", kubeconfig=management.restricted_kubeconfig, check=False
    )
    assert result.returncode != 0
    assert 'User "medcloud-restricted" cannot list resource "namespaces"' in result.stderr


def test_three_clusters_started_together_are_independent(clusters):
    kubectl(clusters["management"], "create", "namespace", "only-in-management")
    for name in ("hospital-private", "carrier-public"):
        result = kubectl(clusters[name], "get", "namespace", "only-in-management", check=False)
        assert "NotFound" in result.stderr, name
    names = {c.etcd_prefix for c in clusters.values()} | {c.url for c in clusters.values()}
    assert len(names) == 2 * len(clusters)


def test_kubectl_skew_is_within_one_minor(management):
    versions = json.loads(kubectl(management, "version", "-o", "json").stdout)
    client_minor = int(versions["clientVersion"]["minor"].rstrip("+"))
    server_minor = int(versions["serverVersion"]["minor"].rstrip("+"))
    assert abs(client_minor - server_minor) <= 1


def test_a_missing_binary_is_named(etcd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCLOUD_KUBE_APISERVER_BIN", str(tmp_path / "no-kube-apiserver"))
    with pytest.raises(
        StackError, match=r"^kube-apiserver: binary not found at .*no-kube-apiserver"
    ):
        kube_apiserver("management", etcd_server.endpoint, tmp_path)


def test_an_unreachable_etcd_is_named_at_once(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(
        StackError, match=rf"^kube-apiserver \(management\): etcd at {dead} is unreachable"
    ):
        KubeApiServer("management", dead, tmp_path, etcd_tls=identity("kube-apiserver", ())).start()
    assert time.monotonic() - started < 30


def test_an_occupied_port_is_named(etcd_server, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError, match=rf"^kube-apiserver \(management\): port {port}"):
            kube_apiserver("management", etcd_server.endpoint, tmp_path, port=port).start()
