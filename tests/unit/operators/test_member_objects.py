"""The manifests a site needs in a member cluster: quota arithmetic, limits, policies, labels."""

from __future__ import annotations

import pytest

from medcloud.operators.member_clusters import (
    Allowance,
    SiteWorkload,
    SystemFootprint,
    desired_objects,
    site_label,
)

SITE = "medcloud-system/hospital-a"
LABELS = {
    "app.kubernetes.io/managed-by": "medcloud",
    "medcloud.io/site": "medcloud-system.hospital-a",
    "medcloud.io/hospital": "hospital-a",
}
CORE = Allowance("core-https", None, "10.20.0.0/16", (443, 8443), "core zone clients")


def objects(*systems: SystemFootprint, allowances=(CORE,)) -> dict[str, dict]:
    workload = SiteWorkload(SITE, "hospital-a", "hospital-a", systems, allowances)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in desired_objects(workload)}


def test_the_quota_sums_replicas_times_size_with_rolling_update_headroom():
    found = objects(
        SystemFootprint("his", replicas=3, vcpu=4, memory_gib=16, storage_gib=100),
        SystemFootprint("lis", replicas=1, vcpu=2, memory_gib=8),
        SystemFootprint("pacs", replicas=8, vcpu=8, memory_gib=32, storage_gib=500),
    )
    assert found["ResourceQuota/medcloud-site"]["spec"]["hard"] == {
        "requests.cpu": "78",  # 3*4 + 1*2 + 8*8
        "limits.cpu": "78",
        "requests.memory": "312Gi",  # 3*16 + 1*8 + 8*32
        "limits.memory": "312Gi",
        "requests.storage": "4300Gi",  # 3*100 + 8*500: every replica has its own volume
        "pods": "16",  # 12 replicas + ceil(3/4) + ceil(1/4) + ceil(8/4)
    }


def test_the_limit_range_caps_a_container_at_the_largest_system():
    found = objects(
        SystemFootprint("his", replicas=3, vcpu=4, memory_gib=64),
        SystemFootprint("pacs", replicas=0, vcpu=16, memory_gib=32),
    )
    (limits,) = found["LimitRange/medcloud-site"]["spec"]["limits"]
    assert limits == {
        "type": "Container",
        "max": {"cpu": "16", "memory": "64Gi"},
        "default": {"cpu": "1", "memory": "1Gi"},
        "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
    }
    # A system with no replicas still bounds a container but adds nothing to the quota.
    assert found["ResourceQuota/medcloud-site"]["spec"]["hard"]["limits.cpu"] == "12"


def test_no_systems_means_a_zero_quota_and_zero_limits():
    found = objects()
    assert set(found["ResourceQuota/medcloud-site"]["spec"]["hard"].values()) == {"0"}
    (limits,) = found["LimitRange/medcloud-site"]["spec"]["limits"]
    assert limits["max"] == limits["default"] == limits["defaultRequest"]
    assert limits["max"] == {"cpu": "0", "memory": "0"}


def test_every_object_is_labelled_for_the_site_and_hospital():
    found = objects(SystemFootprint("his", 1, 1, 1))
    assert list(found) == [
        "Namespace/hospital-a",
        "ResourceQuota/medcloud-site",
        "LimitRange/medcloud-site",
        "NetworkPolicy/default-deny",
        "NetworkPolicy/allow-dns",
        "NetworkPolicy/allow-within-site",
        "NetworkPolicy/allow-core-https",
    ]
    for manifest in found.values():
        metadata = manifest["metadata"]
        assert LABELS.items() <= metadata["labels"].items()
        assert metadata["annotations"]["medcloud.io/site"] == SITE
        namespaced = manifest["kind"] != "Namespace"
        assert metadata.get("namespace") == ("hospital-a" if namespaced else None)


def test_policies_deny_by_default_and_allow_dns_and_each_allowance():
    found = objects(
        allowances=(
            CORE,
            Allowance(
                "monitoring",
                {"team": "ops", "kubernetes.io/metadata.name": "monitoring"},
                "192.168.0.0/24",
                (9464,),
            ),
        )
    )
    assert found["NetworkPolicy/default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    dns = found["NetworkPolicy/allow-dns"]["spec"]
    assert dns["policyTypes"] == ["Egress"]
    assert dns["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
    ]
    core = found["NetworkPolicy/allow-core-https"]
    assert core["spec"]["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}],
        }
    ]
    assert core["metadata"]["annotations"]["medcloud.io/description"] == "core zone clients"
    assert core["metadata"]["labels"]["medcloud.io/requirement"] == "R-7.5a"
    both = found["NetworkPolicy/allow-monitoring"]["spec"]["ingress"][0]["from"]
    assert both == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "monitoring", "team": "ops"}
            }
        },
        {"ipBlock": {"cidr": "192.168.0.0/24"}},
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"namespace": "Hospital_A"}, "namespace 'Hospital_A' is not a DNS label"),
        ({"site": "a/b/c"}, "is not `namespace/name`"),
        ({"systems": (SystemFootprint("his", -1, 1, 1),)}, "replicas must be an integer >= 0"),
        ({"systems": (SystemFootprint("his", 1, 0, 1),)}, "vcpu must be an integer >= 1"),
        ({"systems": (SystemFootprint("his", 1, 1, 1),) * 2}, "system names repeat"),
        ({"allowances": (Allowance("open", None, None, (80,)),)}, "names no source"),
        ({"allowances": (Allowance("all", {}, None, (80,)),)}, "would match every namespace"),
        ({"allowances": (Allowance("x", None, "10.0.0.1/8", (80,)),)}, "has host bits set"),
        ({"allowances": (Allowance("x", None, "10.0.0.0/8", ()),)}, "names no port"),
        ({"allowances": (Allowance("x", None, "10.0.0.0/8", (0,)),)}, "port 0 is not 1-65535"),
        ({"allowances": (Allowance("dns", None, "10.0.0.0/8", (53,)),)}, "names repeat"),
    ],
)
def test_an_invalid_workload_is_refused_with_every_problem(change, problem):
    fields = {"site": SITE, "hospital_id": "hospital-a", "namespace": "hospital-a"} | change
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        desired_objects(SiteWorkload(**fields))


def test_a_long_site_becomes_a_valid_distinct_label_value():
    first, second = f"{'n' * 63}/{'a' * 63}", f"{'n' * 63}/{'a' * 62}b"
    labels = {site_label(first), site_label(second)}
    assert len(labels) == 2
    assert all(len(label) == 63 for label in labels)
    assert site_label("ns/site") == "ns.site"


def test_the_sites_own_pods_reach_each_other_and_nothing_else_does():
    policy = objects(SystemFootprint("his", 1, 1, 1))["NetworkPolicy/allow-within-site"]
    assert policy["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}]}],
        "egress": [{"to": [{"podSelector": {}}]}],
    }
