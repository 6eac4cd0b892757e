"""charts/medcloud as helm renders it: lint-clean; every object valid for Kubernetes 1.37 (the
kube-apiserver pin) and the Region valid for its CRD; hardened pods with probes and resources;
the operator's RBAC exactly as agreed and nothing by wildcard; each process given the variables
its code reads and no others; a NetworkPolicy graph matching who calls whom; the CRDs the same
bytes as operators/crds; and bad values refused, naming the field."""

from __future__ import annotations

import re
import tarfile

import kubernetes_validate
import pytest
import yaml

from medcloud.operators.manifests import validate_manifest
from medcloud.runtime.config import ServiceSettings, load_settings
from tests.helm.chart import (
    CHART,
    CONGHUA,
    PANYU,
    PARTS,
    REQUIRED_VALUES,
    ROOT,
    SERVICES,
    VALUE_SETS,
    Document,
    component,
    containers,
    environment,
    helm,
    named,
    nats_dns_names,
    of_kind,
    pod_specs,
    render,
)

# tools/kube-apiserver pins k8s.io/kubernetes v1.37.2; kubernetes-validate ships 1.37.0's schemas.
KUBERNETES_VERSION = "1.37.0"
OWN_KINDS = {"Region", "HospitalSite"}


def rendered(name: str) -> tuple[Document, ...]:
    return render((VALUE_SETS[name],))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_passes(name):
    result = helm("lint", str(CHART), "-f", str(VALUE_SETS[name]))
    assert "0 chart(s) failed" in result.stdout


def test_the_defaults_alone_are_refused_naming_every_missing_fact():
    result = helm("template", "medcloud", str(CHART), check=False)
    assert result.returncode != 0
    for field in ("/region/name", "/region/centres", "/region/backupCentreId"):
        assert field in result.stderr
    for field in ("/etcd/endpoint", "/nats/url", "/networkPolicy/kubernetesApi/cidrs"):
        assert field in result.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_is_valid_for_kubernetes(name):
    documents = rendered(name)
    problems = []
    for document in documents:
        if document["kind"] in OWN_KINDS:
            # Not in Kubernetes' schemas: checked against our CRD (schema and CEL rules) instead.
            problems += [f"Region {p.field}: {p.message}" for p in validate_manifest(document)]
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{document['kind']} {document['metadata']['name']}: {error.message}")
    assert not problems


def test_panyu_renders_the_example_region():
    (region,) = of_kind(rendered("panyu"), "Region")
    example = yaml.safe_load((ROOT / "examples" / "region-panyu.yaml").read_text())
    assert region["metadata"]["name"] == example["metadata"]["name"] == "panyu"
    assert region["spec"] == example["spec"]


def test_conghua_is_another_region_with_its_own_facts():
    (panyu,) = of_kind(rendered("panyu"), "Region")
    (conghua,) = of_kind(rendered("conghua"), "Region")
    assert conghua["metadata"]["name"] == "conghua"
    assert conghua["spec"]["centres"] != panyu["spec"]["centres"]
    assert {link["medium"] for link in conghua["spec"]["links"]} >= {"xpon"}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_pod_is_hardened_with_probes_and_resources(name):
    for owner, spec in pod_specs(rendered(name)):
        where = f"{owner['kind']} {owner['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is (component(owner) == "operator"), where
        probed = owner["kind"] not in ("Pod", "Job")  # the test hook and Jobs run to completion
        for container in containers(spec):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            if probed:
                assert "livenessProbe" in container, where
                assert "readinessProbe" in container, where
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, where


def test_services_probe_grpc_health_over_mutual_tls_with_their_own_certificate():
    documents = rendered("panyu")
    for service in SERVICES:
        deployment = named(documents, "Deployment", f"medcloud-{service}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[0] == "grpc-health-probe"
            assert "-tls-client-cert=/etc/medcloud/tls/tls.crt" in command
            assert f"-tls-server-name=medcloud-{service}.medcloud.svc" in command


def test_rbac_grants_nothing_by_wildcard():
    for name in VALUE_SETS:
        for document in rendered(name):
            for rule in document.get("rules", []):
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), (document["metadata"]["name"], rule)


def rules(document: Document) -> list[tuple[tuple[str, ...], ...]]:
    return sorted(
        (tuple(rule["apiGroups"]), tuple(sorted(rule["resources"])), tuple(sorted(rule["verbs"])))
        for rule in document["rules"]
    )


def test_the_operator_holds_exactly_the_agreed_grants():
    documents = render((PANYU,), namespace="medcloud-panyu")
    cluster_role = named(documents, "ClusterRole", "medcloud-operator")
    assert rules(cluster_role) == sorted(
        [
            (("apiextensions.k8s.io",), ("customresourcedefinitions",), ("list", "watch")),
            (("medcloud.io",), ("hospitalsites", "regions"), ("list", "patch", "watch")),
            (("medcloud.io",), ("hospitalsites/status", "regions/status"), ("patch",)),
            (("",), ("events",), ("create",)),
        ]
    )
    role = named(documents, "Role", "medcloud-operator")
    assert role["metadata"]["namespace"] == "medcloud-panyu"
    assert rules(role) == sorted(
        [
            (("coordination.k8s.io",), ("leases",), ("create", "get", "update")),
            (("",), ("secrets",), ("get",)),
        ]
    )
    subject = {"kind": "ServiceAccount", "name": "medcloud-operator", "namespace": "medcloud-panyu"}
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = named(documents, kind, "medcloud-operator")
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": "medcloud-operator",
        }
    # Only the operator is bound to anything.
    bound = {b["subjects"][0]["name"] for b in of_kind(documents, "RoleBinding")}
    bound |= {b["subjects"][0]["name"] for b in of_kind(documents, "ClusterRoleBinding")}
    assert bound == {"medcloud-operator"}


def test_operator_elects_a_leader_from_the_downward_api():
    deployment = named(rendered("panyu"), "Deployment", "medcloud-operator")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = environment(container)
    assert env["MEDCLOUD_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MEDCLOUD_OPERATOR_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MEDCLOUD_OPERATOR_LEASE_SECONDS"] == "15"
    for service in SERVICES:
        assert (
            env[f"MEDCLOUD_{service.upper()}_ADDRESS"] == f"medcloud-{service}.medcloud.svc:50051"
        )


def source_text() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "services").rglob("*.py"))


@pytest.mark.parametrize("name", ["panyu", "conghua"])
def test_every_variable_the_chart_sets_is_one_the_code_reads(name):
    code = source_text()
    names = set()
    for _, spec in pod_specs(rendered(name)):
        for container in containers(spec):
            if container["image"].startswith("medcloud:"):
                names |= {n for n in environment(container) if n.startswith(("MEDCLOUD_", "OTEL_"))}
    invented = sorted(n for n in names if not re.search(rf"['\"]{n}['\"]", code))
    assert not invented


@pytest.mark.parametrize("name", ["panyu", "conghua"])
def test_each_service_environment_satisfies_its_settings(name):
    documents = rendered(name)
    for service in SERVICES:
        (container,) = named(documents, "Deployment", f"medcloud-{service}")["spec"]["template"][
            "spec"
        ]["containers"]
        env = {k: v for k, v in environment(container).items() if isinstance(v, str)}
        settings = load_settings(ServiceSettings, env)
        assert settings.region == name
        assert str(settings.grpc_listen) == "0.0.0.0:50051"
        # Bundled NATS (conghua) demands TLS; panyu's existing NATS is given as nats://.
        assert settings.nats_url.startswith("tls://" if name == "conghua" else "nats://")
        assert env["MEDCLOUD_NATS_USER"] == service
        assert env["MEDCLOUD_TLS_CERT_FILE"] == "/etc/medcloud/tls/tls.crt"
        volumes = container["volumeMounts"]
        assert any(v["mountPath"] == "/etc/medcloud/tls" for v in volumes)
    scheduling = named(documents, "Deployment", "medcloud-scheduling")
    env = environment(scheduling["spec"]["template"]["spec"]["containers"][0])
    assert env["MEDCLOUD_INVENTORY_ADDRESS"] == "medcloud-inventory.medcloud.svc:50051"


def test_backup_mounts_each_member_cluster_kubeconfig_from_its_secret():
    deployment = named(rendered("panyu"), "Deployment", "medcloud-backup")
    spec = deployment["spec"]["template"]["spec"]
    env = environment(spec["containers"][0])
    assert env["MEDCLOUD_BACKUP_CLUSTERS"] == (
        "hospital-private=/etc/medcloud/clusters/hospital-private/kubeconfig,"
        "carrier-public=/etc/medcloud/clusters/carrier-public/kubeconfig"
    )
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert secrets["cluster-hospital-private"] == "hospital-private-kubeconfig"
    assert secrets["tls"] == "medcloud-backup-tls"


def ingress_sources(policy: Document) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule["from"]
        if "podSelector" in peer
    }


def egress_targets(policy: Document) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in policy["spec"].get("egress", [])
        for peer in rule["to"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def test_network_policies_follow_who_calls_whom():
    documents = rendered("conghua")
    deny = named(documents, "NetworkPolicy", "medcloud-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    selector = deny["spec"]["podSelector"]["matchLabels"]
    for owner, _ in pod_specs(documents):
        labels = (
            owner["metadata"]["labels"]
            if owner["kind"] == "Pod"
            else owner["spec"]["template"]["metadata"]["labels"]
        )
        assert selector.items() <= labels.items(), owner["metadata"]["name"]
    callers = {
        "inventory": {"scheduling", "monitoring", "operator", "health-test"},
        "scheduling": {"operator", "health-test"},
        "security": {"operator", "health-test"},
        "backup": {"operator", "health-test"},
        "monitoring": {"operator", "health-test"},
        "operator": set(),
        "nats": set(SERVICES) | {"nats"},
        "etcd": set(SERVICES) | {"etcd", "etcd-auth"},
    }
    for part, expected in callers.items():
        assert ingress_sources(named(documents, "NetworkPolicy", f"medcloud-{part}")) == expected
    calls = {
        "inventory": {"etcd", "nats"},
        "scheduling": {"etcd", "nats", "inventory"},
        "monitoring": {"etcd", "nats", "inventory"},
        "operator": set(SERVICES),
        "health-test": set(SERVICES),
    }
    for part, expected in calls.items():
        assert egress_targets(named(documents, "NetworkPolicy", f"medcloud-{part}")) == expected


def test_existing_etcd_and_nats_are_reached_by_cidr_and_port():
    policy = named(rendered("panyu"), "NetworkPolicy", "medcloud-inventory")
    blocks = {
        (peer["ipBlock"]["cidr"], port["port"])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
        for port in rule["ports"]
    }
    assert blocks == {("10.20.0.0/24", 2379), ("10.20.1.0/24", 4222)}


def test_bundled_parts_are_off_by_default():
    kinds = {d["kind"] for d in render((REQUIRED_VALUES,))}
    assert not kinds & {"StatefulSet", "Job", "ConfigMap"}
    assert {"StatefulSet", "Job", "ConfigMap"} <= {d["kind"] for d in rendered("conghua")}


def test_the_health_test_hook_asks_every_service():
    (pod,) = of_kind(rendered("panyu"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    arguments = pod["spec"]["containers"][0]["command"]
    for service in SERVICES:
        assert f"medcloud-{service}.medcloud.svc:50051" in arguments


def test_crds_are_operators_crds_byte_for_byte():
    for link in (CHART / "crds").iterdir():
        assert link.is_symlink(), f"{link} must link to operators/crds (one source of truth)"
        assert link.resolve().parent == ROOT / "operators" / "crds"
    shown = helm("show", "crds", str(CHART)).stdout
    for source in sorted((ROOT / "operators" / "crds").glob("*.yaml")):
        assert source.read_text() in shown, source.name


def test_the_packaged_chart_carries_the_crd_files_themselves(tmp_path):
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("medcloud-*.tgz")
    with tarfile.open(archive) as package:
        for source in sorted((ROOT / "operators" / "crds").glob("*.yaml")):
            member = package.getmember(f"medcloud/crds/{source.name}")
            assert member.isfile()
            extracted = package.extractfile(member)
            assert extracted is not None
            assert extracted.read() == source.read_bytes()


BAD_VALUES = [
    ("logLevel=VERBOSE", "/logLevel"),
    ("inventory.replicas=-1", "/inventory/replicas"),
    ("region.name=", "/region/name"),
    ("region.name=Panyu_Region", "/region/name"),
    ("grpcPort=70000", "/grpcPort"),
    ("monitoring.metricsPort=0", "/monitoring/metricsPort"),
    ("monitoring.replicas=2", "/monitoring/replicas"),
    ("etcd.endpoint=etcd-without-port", "/etcd/endpoint"),
    ("nats.url=http://nats:4222", "/nats/url"),
    ("nats.url=tls://", "/nats/url"),
    ("nats.url=tls://nats:4222/path", "/nats/url"),
    ("nats.bundled.tls.secretName=nats-cert", "/nats/bundled/tls"),
    ("security.auditRetentionDays=30", "/security/auditRetentionDays"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("etcd.bundled.replicas=2", "/etcd/bundled/replicas"),
    ("networkPolicy.clientCidrs[0]=not-a-cidr", "/networkPolicy/clientCidrs/0"),
    ("inventroy.replicas=2", "inventroy"),
]


@pytest.mark.parametrize(("setting", "field"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_field(setting, field):
    result = helm(
        "template", "medcloud", str(CHART), "-f", str(PANYU), "--set", setting, check=False
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


def test_network_policy_without_the_addresses_its_parts_need_is_refused():
    emptied = ("networkPolicy.kubernetesApi.cidrs=[]", "nats.egressCidrs=[]")
    arguments = ["template", "medcloud", str(CHART), "-f", str(PANYU)]
    for setting in emptied:
        arguments += ["--set-json", setting]
    result = helm(*arguments, check=False)
    assert result.returncode != 0
    assert "/networkPolicy/kubernetesApi/cidrs" in result.stderr
    assert "/nats/egressCidrs" in result.stderr
    # Without NetworkPolicy nothing is cut off, so nothing is needed.
    helm(*arguments, "--set", "networkPolicy.enabled=false")


def test_two_regions_differ_in_what_their_values_say():
    panyu = named(rendered("panyu"), "Deployment", "medcloud-monitoring")
    conghua = named(render((CONGHUA,)), "Deployment", "medcloud-monitoring")
    env_panyu = environment(panyu["spec"]["template"]["spec"]["containers"][0])
    env_conghua = environment(conghua["spec"]["template"]["spec"]["containers"][0])
    assert env_panyu["MEDCLOUD_NATS_URL"] == "nats://nats.medcloud-data.svc.cluster.local:4222"
    assert env_conghua["MEDCLOUD_NATS_URL"] == "tls://medcloud-nats.medcloud.svc:4222"
    assert env_conghua["MEDCLOUD_ETCD_ENDPOINT"] == "medcloud-etcd.medcloud.svc:2379"


def test_every_part_has_its_own_service_account_and_tls_secret():
    documents = rendered("panyu")
    accounts = {d["metadata"]["name"] for d in of_kind(documents, "ServiceAccount")}
    assert accounts == {f"medcloud-{part}" for part in PARTS}
    for part in PARTS:
        deployment = named(documents, "Deployment", f"medcloud-{part}")
        spec = deployment["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == f"medcloud-{part}"
        tls = next(v for v in spec["volumes"] if v["name"] == "tls")
        assert tls["secret"]["secretName"] == f"medcloud-{part}-tls"


def nats_conf_block(text: str, *path: str) -> dict[str, str]:
    """The `key: value` lines directly inside a block of the rendered nats.conf (no path: the
    top level), found by the chart's two-space indentation."""
    lines = text.splitlines()
    start, end, indent = 0, len(lines), ""
    for name in path:
        opening = lines.index(f"{indent}{name} {{", start, end)
        end = lines.index(f"{indent}}}", opening, end)
        start, indent = opening + 1, indent + "  "
    entries = {}
    for line in lines[start:end]:
        if line.startswith(indent) and not line[len(indent)].isspace() and ": " in line:
            key, value = line.strip().split(": ", 1)
            if not key.startswith("#"):
                entries[key] = value
    return entries


def bundled_nats(documents: tuple[Document, ...]) -> tuple[str, Document]:
    conf = named(documents, "ConfigMap", "medcloud-nats")["data"]["nats.conf"]
    return conf, named(documents, "StatefulSet", "medcloud-nats")


def test_bundled_nats_demands_mutual_tls_of_clients_and_routes():
    conf, statefulset = bundled_nats(rendered("conghua"))
    certificate = {
        "cert_file": "/etc/nats-tls/tls.crt",
        "key_file": "/etc/nats-tls/tls.key",
        "ca_file": "/etc/nats-tls/ca.crt",
    }
    # Clients: TLS with a client certificate from the region's CA.
    assert nats_conf_block(conf, "tls") == {**certificate, "verify": "true"}
    # Routes: nats-server always verifies a route's certificate; the URLs stay nats://, the
    # cluster's tls block is what turns TLS on.
    assert nats_conf_block(conf, "cluster", "tls") == certificate
    cluster = nats_conf_block(conf, "cluster")
    assert cluster["advertise"] == "$CLUSTER_ADVERTISE"
    assert cluster["no_advertise"] == "true"
    routes = re.findall(r"^\s+nats://(\S+):6222$", conf, re.MULTILINE)
    assert routes == [f"medcloud-nats-{i}.medcloud-nats-headless.medcloud.svc" for i in range(3)]
    # Monitoring stays plain HTTP for the kubelet's probes.
    top = nats_conf_block(conf)
    assert top["listen"] == "0.0.0.0:4222"
    assert top["http"] == "0.0.0.0:8222"
    assert "https" not in top

    spec = statefulset["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "medcloud-nats-tls"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/etc/nats-tls", "readOnly": True}
    env = environment(container)
    assert env["CLUSTER_ADVERTISE"] == "$(POD_NAME).medcloud-nats-headless.medcloud.svc:6222"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["port"] == "monitor"
        assert check.get("scheme", "HTTP") == "HTTP"


def test_the_certificate_names_cover_what_services_and_routes_dial():
    """The names docs/helm.md asks of the NATS certificate match the host of the services' URL
    and every route's host (one wildcard label under the headless Service)."""
    documents = rendered("conghua")
    conf, _ = bundled_nats(documents)
    service, wildcard = nats_dns_names("medcloud", "medcloud")
    url = environment(
        named(documents, "Deployment", "medcloud-inventory")["spec"]["template"]["spec"][
            "containers"
        ][0]
    )["MEDCLOUD_NATS_URL"]
    assert url == f"tls://{service}:4222"
    for host in re.findall(r"nats://(\S+):6222", conf):
        label, rest = host.split(".", 1)
        assert wildcard == f"*.{rest}" and "." not in label


def test_the_bundled_nats_certificate_secret_can_be_named():
    _, statefulset = bundled_nats(
        render((CONGHUA,), ("nats.bundled.tls.secret=conghua-nats-from-cert-manager",))
    )
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "conghua-nats-from-cert-manager"


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("tls://nats.medcloud-data.svc:4443", 4443),
        ("nats://nats.medcloud-data.svc:4222", 4222),
        # No port: NATS's own 4222, not the digits ending the host name.
        ("tls://nats1.medcloud-data.svc", 4222),
        ("tls://nats1", 4222),
    ],
)
def test_an_existing_nats_may_be_given_by_tls_or_nats_url(url, port):
    documents = render((PANYU,), (f"nats.url={url}",))
    container = named(documents, "Deployment", "medcloud-inventory")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = environment(container)
    assert env["MEDCLOUD_NATS_URL"] == url
    # The services present their gRPC certificate to that NATS (runtime.service).
    assert env["MEDCLOUD_TLS_CERT_FILE"] == "/etc/medcloud/tls/tls.crt"
    policy = named(documents, "NetworkPolicy", "medcloud-inventory")
    ports = {
        (peer["ipBlock"]["cidr"], p["port"])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
        for p in rule["ports"]
    }
    assert ("10.20.1.0/24", port) in ports
    assert not of_kind(documents, "StatefulSet")
