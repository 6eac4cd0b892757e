"""A site's namespace, quota, limits and network policies in two real member clusters (bare
kube-apiservers: no nodes and no controller-manager, so objects are stored and admitted but never
acted upon, and a deleted namespace stays Terminating)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.processes import free_port
from medcloud.operators.member_clusters import (
    FIELD_MANAGER,
    Allowance,
    MemberClusterError,
    MemberClusters,
    SiteWorkload,
    SystemFootprint,
    site_label,
)
from tests.support.identities import kube_apiserver

pytestmark = pytest.mark.integration

# Names of their own: other modules start `hospital-private` and `carrier-public` on the same etcd.
PRIVATE, PUBLIC = "members-private", "members-public"
SITE = "medcloud-system/hospital-a"
SELECTOR = f"app.kubernetes.io/managed-by=medcloud,medcloud.io/site={site_label(SITE)}"
SITE_LABELS = {
    "app.kubernetes.io/managed-by": "medcloud",
    "medcloud.io/site": "medcloud-system.hospital-a",
    "medcloud.io/hospital": "hospital-a",
}
CORE_ZONE = Allowance("core-https", None, "10.20.0.0/16", (443,), "HIS clients in the core zone")
MONITORING = Allowance(
    "monitoring",
    {"kubernetes.io/metadata.name": "monitoring"},
    None,
    (9464,),
    "Prometheus scrapes the systems",
)
HIS = SystemFootprint("his", replicas=3, vcpu=4, memory_gib=16, storage_gib=100)
PACS = SystemFootprint("pacs", replicas=2, vcpu=8, memory_gib=32, storage_gib=500)


def workload(namespace: str, *systems: SystemFootprint, allowances=(CORE_ZONE, MONITORING)):
    return SiteWorkload(SITE, "hospital-a", namespace, systems or (HIS, PACS), tuple(allowances))


@pytest.fixture(scope="module")
def clusters(etcd_server, tmp_path_factory) -> Iterator[dict[str, KubeApiServer]]:
    work = tmp_path_factory.mktemp("member-clusters")
    started = {
        name: kube_apiserver(name, etcd_server.endpoint, work / name) for name in (PRIVATE, PUBLIC)
    }
    for cluster in started.values():
        cluster.launch()
    try:
        for cluster in started.values():
            cluster.wait_ready()
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


@pytest.fixture
def members(clusters) -> Iterator[MemberClusters]:
    built = MemberClusters({name: cluster.admin_kubeconfig for name, cluster in clusters.items()})
    yield built
    built.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of its own per test: a deleted one stays Terminating for the module's life."""
    return f"site-{uuid.uuid4().hex[:8]}"


class Inspector:
    """Reads and edits one cluster by hand, as an administrator with kubectl would."""

    def __init__(self, cluster: KubeApiServer) -> None:
        api = config.new_client_from_config(str(cluster.admin_kubeconfig))
        self.core = client.CoreV1Api(api)
        self.net = client.NetworkingV1Api(api)

    def quota(self, namespace: str) -> client.V1ResourceQuota:
        return self.core.read_namespaced_resource_quota("medcloud-site", namespace)

    def limits(self, namespace: str) -> client.V1LimitRange:
        return self.core.read_namespaced_limit_range("medcloud-site", namespace)

    def policies(self, namespace: str) -> dict[str, client.V1NetworkPolicy]:
        found = self.net.list_namespaced_network_policy(namespace).items
        return {policy.metadata.name: policy for policy in found}

    def labelled(self, namespace: str) -> list[str]:
        """Every object labelled for the site in the namespace."""
        found = []
        for kind, items in (
            ("ResourceQuota", self.core.list_namespaced_resource_quota),
            ("LimitRange", self.core.list_namespaced_limit_range),
            ("NetworkPolicy", self.net.list_namespaced_network_policy),
        ):
            found += [
                f"{kind} {o.metadata.name}" for o in items(namespace, label_selector=SELECTOR).items
            ]
        return found

    def versions(self, namespace: str) -> dict[str, str]:
        found = {"Namespace": self.core.read_namespace(namespace).metadata.resource_version}
        found["ResourceQuota"] = self.quota(namespace).metadata.resource_version
        found["LimitRange"] = self.limits(namespace).metadata.resource_version
        for name, policy in self.policies(namespace).items():
            found[name] = policy.metadata.resource_version
        return found


@pytest.fixture(scope="module")
def inspect(clusters) -> dict[str, Inspector]:
    return {name: Inspector(cluster) for name, cluster in clusters.items()}


def names(namespace: str, *policies: str) -> set[str]:
    return {
        f"Namespace {namespace}",
        f"ResourceQuota {namespace}/medcloud-site",
        f"LimitRange {namespace}/medcloud-site",
        *(f"NetworkPolicy {namespace}/{policy}" for policy in policies),
    }


ALL_POLICIES = (
    "default-deny",
    "allow-dns",
    "allow-within-site",
    "allow-core-https",
    "allow-monitoring",
)


async def test_apply_creates_the_site_objects_in_both_clusters(members, inspect, namespace):
    for cluster in (PRIVATE, PUBLIC):
        report = await members.apply(cluster, workload(namespace))
        assert set(report.created) == names(namespace, *ALL_POLICIES), report
        assert not report.changed and not report.removed

        look = inspect[cluster]
        ns = look.core.read_namespace(namespace)
        assert SITE_LABELS.items() <= ns.metadata.labels.items()
        assert ns.metadata.annotations["medcloud.io/site"] == SITE

        quota = look.quota(namespace)
        # 3 x 4 + 2 x 8 vCPU; 3 x 16 + 2 x 32 GiB; 3 x 100 + 2 x 500 GiB; 5 pods + ceil(0.75) +
        # ceil(0.5) for rolling updates.
        assert quota.spec.hard == {
            "requests.cpu": "28",
            "limits.cpu": "28",
            "requests.memory": "112Gi",
            "limits.memory": "112Gi",
            "requests.storage": "1300Gi",
            "pods": "7",
        }
        (limit,) = look.limits(namespace).spec.limits
        assert limit.type == "Container"
        assert limit.max == {"cpu": "8", "memory": "32Gi"}
        assert limit.default == {"cpu": "1", "memory": "1Gi"}
        assert limit.default_request == {"cpu": "250m", "memory": "256Mi"}

        policies = look.policies(namespace)
        assert set(policies) == set(ALL_POLICIES)
        deny = policies["default-deny"].spec
        assert deny.pod_selector.to_dict() in (
            {},
            {"match_labels": None, "match_expressions": None},
        )
        assert deny.policy_types == ["Ingress", "Egress"]
        assert not deny.ingress and not deny.egress
        (dns,) = policies["allow-dns"].spec.egress
        assert [(p.protocol, p.port) for p in dns.ports] == [("UDP", 53), ("TCP", 53)]
        assert dns.to[0].namespace_selector.match_labels == {
            "kubernetes.io/metadata.name": "kube-system"
        }
        (core,) = policies["allow-core-https"].spec.ingress
        assert core.var_from[0].ip_block.cidr == "10.20.0.0/16"
        assert [(p.protocol, p.port) for p in core.ports] == [("TCP", 443)]
        (scrape,) = policies["allow-monitoring"].spec.ingress
        assert scrape.var_from[0].namespace_selector.match_labels == {
            "kubernetes.io/metadata.name": "monitoring"
        }
        assert [p.port for p in scrape.ports] == [9464]
        for policy in policies.values():
            assert SITE_LABELS.items() <= policy.metadata.labels.items()
            assert policy.metadata.labels["medcloud.io/requirement"] == "R-7.5a"
            assert "R-7.2.4" in policy.metadata.annotations["medcloud.io/requirements"]
        assert SITE_LABELS.items() <= look.quota(namespace).metadata.labels.items()
        assert SITE_LABELS.items() <= look.limits(namespace).metadata.labels.items()
        assert len(look.labelled(namespace)) == 7
        assert await members.drift(cluster, workload(namespace)) == []


async def test_a_second_apply_changes_nothing(members, inspect, namespace):
    await members.apply(PRIVATE, workload(namespace))
    before = inspect[PRIVATE].versions(namespace)
    again = await members.apply(PRIVATE, workload(namespace))
    assert again.empty, again
    assert str(again) == f"cluster {PRIVATE}: namespace {namespace} in sync"
    assert inspect[PRIVATE].versions(namespace) == before


async def test_a_bigger_system_changes_only_the_quota_and_the_limit_range(
    members, inspect, namespace
):
    await members.apply(PUBLIC, workload(namespace))
    bigger = SystemFootprint("pacs", replicas=2, vcpu=16, memory_gib=32, storage_gib=500)
    report = await members.apply(PUBLIC, workload(namespace, HIS, bigger))
    assert set(report.changed) == {
        f"ResourceQuota {namespace}/medcloud-site",
        f"LimitRange {namespace}/medcloud-site",
    }
    assert not report.created and not report.removed
    hard = inspect[PUBLIC].quota(namespace).spec.hard
    assert hard["requests.cpu"] == hard["limits.cpu"] == "44"  # 3 x 4 + 2 x 16
    assert hard["requests.memory"] == "112Gi"
    assert inspect[PUBLIC].limits(namespace).spec.limits[0].max["cpu"] == "16"
    # A smaller system that does not change the largest one changes the quota alone.
    smaller = SystemFootprint("his", replicas=3, vcpu=2, memory_gib=16, storage_gib=100)
    report = await members.apply(PUBLIC, workload(namespace, smaller, bigger))
    assert report.changed == (f"ResourceQuota {namespace}/medcloud-site",)


async def test_a_withdrawn_allowance_loses_its_policy(members, inspect, namespace):
    await members.apply(PRIVATE, workload(namespace))
    report = await members.apply(PRIVATE, workload(namespace, allowances=(CORE_ZONE,)))
    assert report.removed == (f"NetworkPolicy {namespace}/allow-monitoring",)
    assert not report.created and not report.changed
    assert set(inspect[PRIVATE].policies(namespace)) == {
        "default-deny",
        "allow-dns",
        "allow-within-site",
        "allow-core-https",
    }
    # A policy somebody else made in the namespace is not the site's to remove.
    inspect[PRIVATE].net.create_namespaced_network_policy(
        namespace, {"metadata": {"name": "team-own"}, "spec": {"podSelector": {}}}
    )
    assert (await members.apply(PRIVATE, workload(namespace, allowances=()))).removed == (
        f"NetworkPolicy {namespace}/allow-core-https",
    )
    assert "team-own" in inspect[PRIVATE].policies(namespace)


async def test_drift_finds_hand_edits_and_apply_repairs_them(members, inspect, namespace):
    wanted = workload(namespace)
    await members.apply(PRIVATE, wanted)
    look = inspect[PRIVATE]
    look.core.patch_namespaced_resource_quota(
        "medcloud-site",
        namespace,
        {"spec": {"hard": {"requests.cpu": "64", "count/secrets": "5"}}},
        field_manager="kubectl-edit",
        _content_type="application/merge-patch+json",
    )
    look.net.delete_namespaced_network_policy("allow-dns", namespace)
    # A rule added by hand to default-deny lets everything in: the worst drift of all.
    look.net.patch_namespaced_network_policy(
        "default-deny",
        namespace,
        {"spec": {"ingress": [{}]}},
        field_manager="kubectl-edit",
        _content_type="application/merge-patch+json",
    )

    found = await members.drift(PRIVATE, wanted)
    quota = f"ResourceQuota {namespace}/medcloud-site"
    assert f'{quota}: spec.hard.requests.cpu is "64", want "28"' in found
    assert f'{quota}: spec.hard.count/secrets is "5", not desired' in found
    assert f"NetworkPolicy {namespace}/allow-dns missing" in found
    assert f"NetworkPolicy {namespace}/default-deny: spec.ingress is [{{}}], not desired" in found
    assert len(found) == 4, found
    assert look.quota(namespace).spec.hard["requests.cpu"] == "64"  # drift changed nothing

    report = await members.apply(PRIVATE, wanted)
    assert report.created == (f"NetworkPolicy {namespace}/allow-dns",)
    assert set(report.changed) == {quota, f"NetworkPolicy {namespace}/default-deny"}
    assert await members.drift(PRIVATE, wanted) == []
    hard = look.quota(namespace).spec.hard
    assert hard["requests.cpu"] == "28" and "count/secrets" not in hard
    assert not look.policies(namespace)["default-deny"].spec.ingress
    assert (await members.apply(PRIVATE, wanted)).empty

    # A policy of the site no longer desired, and a namespace label stripped by hand.
    look.core.patch_namespace(
        namespace,
        {"metadata": {"labels": {"medcloud.io/hospital": None}}},
        _content_type="application/merge-patch+json",
    )
    assert await members.drift(PRIVATE, workload(namespace, allowances=(CORE_ZONE,))) == [
        f'Namespace {namespace}: label medcloud.io/hospital is null, want "hospital-a"',
        f"NetworkPolicy {namespace}/allow-monitoring not desired",
    ]
    # Stripped of all its labels, the namespace is still known as the site's by its annotation.
    look.core.patch_namespace(
        namespace,
        {"metadata": {"labels": dict.fromkeys(SITE_LABELS)}},
        _content_type="application/merge-patch+json",
    )
    report = await members.apply(PRIVATE, wanted)
    assert report.changed == (f"Namespace {namespace}",) and not report.created
    assert SITE_LABELS.items() <= look.core.read_namespace(namespace).metadata.labels.items()
    assert await members.drift(PRIVATE, wanted) == []


async def test_remove_leaves_nothing_labelled(members, inspect, namespace):
    for cluster in (PRIVATE, PUBLIC):
        await members.apply(cluster, workload(namespace))
        done = await members.remove(cluster, SITE, namespace)
        assert f"deleted ResourceQuota {namespace}/medcloud-site" in done
        assert f"deleted NetworkPolicy {namespace}/default-deny" in done
        assert done[-1] == f"namespace {namespace} terminating"
        assert len(done) == 8, done
        assert inspect[cluster].labelled(namespace) == []
        # No controller-manager here: the namespace stays Terminating (elsewhere it goes).
        ns = inspect[cluster].core.read_namespace(namespace)
        assert ns.status.phase == "Terminating"
        # Removing again finds it removed already; applying to it is refused.
        assert await members.remove(cluster, SITE, namespace) == [
            f"namespace {namespace} terminating"
        ]
        with pytest.raises(MemberClusterError, match="is being deleted"):
            await members.apply(cluster, workload(namespace))
        drift = await members.drift(cluster, workload(namespace))
        assert f"Namespace {namespace} terminating" in drift


async def test_a_namespace_made_for_something_else_is_neither_used_nor_removed(
    members, inspect, namespace
):
    inspect[PUBLIC].core.create_namespace({"metadata": {"name": namespace}})
    with pytest.raises(MemberClusterError) as refused:
        await members.apply(PUBLIC, workload(namespace))
    assert refused.value.cluster == PUBLIC
    assert f"namespace {namespace} exists and was not made for site {SITE}" in str(refused.value)
    assert await members.remove(PUBLIC, SITE, namespace) == [
        f"namespace {namespace} kept: it was not made for site {SITE}"
    ]
    assert inspect[PUBLIC].core.read_namespace(namespace).status.phase == "Active"
    assert await members.remove(PUBLIC, SITE, "never-created") == ["namespace never-created absent"]


async def test_a_site_without_systems_gets_a_zero_quota(members, inspect, namespace):
    empty = SiteWorkload(SITE, "hospital-a", namespace)
    report = await members.apply(PRIVATE, empty)
    assert set(report.created) == names(namespace, "default-deny", "allow-dns", "allow-within-site")
    assert inspect[PRIVATE].quota(namespace).spec.hard["pods"] == "0"
    assert inspect[PRIVATE].limits(namespace).spec.limits[0].max == {"cpu": "0", "memory": "0"}
    assert await members.drift(PRIVATE, empty) == []


async def test_a_refusal_names_the_cluster_and_the_http_status(clusters, namespace):
    # The restricted user holds no RBAC grant: every call is 403 Forbidden.
    refused = MemberClusters({PUBLIC: clusters[PUBLIC].restricted_kubeconfig})
    try:
        with pytest.raises(MemberClusterError) as error:
            await refused.apply(PUBLIC, workload(namespace))
    finally:
        refused.close()
    assert error.value.cluster == PUBLIC and error.value.status == 403
    assert str(error.value).startswith(f"member cluster {PUBLIC}: reading Namespace {namespace}")
    assert "403 Forbidden" in str(error.value)

    with pytest.raises(MemberClusterError, match="unknown cluster; the operator knows"):
        await refused.drift("elsewhere", workload(namespace))


def unreachable_kubeconfig(cluster: KubeApiServer, path: Path) -> Path:
    """The cluster's admin kubeconfig pointed at a port nobody listens on."""
    document = yaml.safe_load(cluster.admin_kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path.write_text(yaml.safe_dump(document))
    return path


async def test_an_unreachable_cluster_fails_within_seconds(clusters, tmp_path, namespace):
    dead = unreachable_kubeconfig(clusters[PRIVATE], tmp_path / "dead.kubeconfig")
    members = MemberClusters({PRIVATE: dead})
    try:
        for operation in (
            lambda: members.apply(PRIVATE, workload(namespace)),
            lambda: members.drift(PRIVATE, workload(namespace)),
            lambda: members.remove(PRIVATE, SITE, namespace),
        ):
            started = time.monotonic()
            with pytest.raises(MemberClusterError) as error:
                await operation()
            assert time.monotonic() - started < 5
            assert error.value.cluster == PRIVATE and error.value.status is None
            assert f"member cluster {PRIVATE}:" in str(error.value)
            assert "unreachable" in str(error.value)
            assert "Connection refused" in str(error.value)
    finally:
        members.close()


async def test_an_api_client_made_elsewhere_is_used_and_left_open(clusters, inspect, namespace):
    api = config.new_client_from_config(str(clusters[PUBLIC].admin_kubeconfig))
    members = MemberClusters({PUBLIC: api})
    report = await members.apply(PUBLIC, workload(namespace, HIS, allowances=()))
    members.close()
    assert f"ResourceQuota {namespace}/medcloud-site" in report.created
    assert client.CoreV1Api(api).read_namespace(namespace).metadata.name == namespace
    managers = {entry.manager for entry in inspect[PUBLIC].quota(namespace).metadata.managed_fields}
    assert managers == {FIELD_MANAGER}
    api.close()
