"""A hospital site's footprint in its member clusters (the hospital's private cluster, the carrier's
public one): one namespace per site holding a ResourceQuota and a LimitRange sized from the
placement, a default-deny NetworkPolicy, one NetworkPolicy per allowance the security pool decides
and one letting pods resolve names, every object labelled back to the site.

Framework-free apart from the official `kubernetes` client, so the kopf handlers, `medcloudctl`
and the tests drive the same code:

- `desired_objects(workload)` is a pure function: the manifests one cluster should hold.
- `MemberClusters.apply` server-side applies them (field manager `medcloud-operator`, forced: the
  operator owns these objects and takes back fields someone changed by hand), makes each object's
  spec exactly the desired one, and deletes the objects it labelled for the site that are no
  longer desired (an allowance withdrawn). It reports what it created, changed and removed, by
  comparing resourceVersions, so a second apply of the same workload reports nothing.
- `MemberClusters.drift` compares without changing anything (the operator's drift timer).
- `MemberClusters.remove` deletes what the site created (the operator's finalizer).

Security zoning: the site namespace is a zone of its own behind default-deny, in and out; the only
ways in are the allowances, each from a named namespace or CIDR on named ports, which is boundary
protection with controlled ports (R-7.5a, R-A.2.8; MLPS level-3 controls MLPS3-CNS-1 and
MLPS3-ABS-1 in `medcloud.security.domain.baseline`), the same in the private and the public cluster
as the one security resource pool demands (R-7.2.4). Each policy carries the requirement it serves
in the `medcloud.io/requirement` label (an auditor's `kubectl get netpol -l`) and all of them in the
`medcloud.io/requirements` annotation.

Each call to a cluster runs in a worker thread (`asyncio.to_thread`) through one ApiClient per
cluster, created on first use, with short timeouts and a single retry, so an unreachable cluster
fails in seconds. Whatever goes wrong with a cluster, it did not answer or it answered with an
error, raises `MemberClusterError` naming the cluster and the HTTP status and reason; the caller
turns it into a status condition."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils.quantity import parse_quantity

from medcloud.core.identifiers import DNS_LABEL
from medcloud.runtime.kube_clients import KubeClients, KubeconfigUnusable

FIELD_MANAGER = "medcloud-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "medcloud"
# The site as a label value (`site_label`): label values hold no "/", so `namespace/name` becomes
# `namespace.name`; the exact `namespace/name` is in the annotation of the same key.
SITE_LABEL = "medcloud.io/site"
SITE_ANNOTATION = "medcloud.io/site"
HOSPITAL_LABEL = "medcloud.io/hospital"
# The requirement an object serves most directly (a label, to select by), and all it serves.
REQUIREMENT_LABEL = "medcloud.io/requirement"
REQUIREMENTS_ANNOTATION = "medcloud.io/requirements"
DESCRIPTION_ANNOTATION = "medcloud.io/description"

SITE_OBJECTS = "medcloud-site"  # the ResourceQuota's and the LimitRange's name
DEFAULT_DENY = "default-deny"
DNS_POLICY = "allow-dns"
WITHIN_SITE_POLICY = "allow-within-site"
ALLOWANCE_PREFIX = "allow-"

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# Set by kube-apiserver on every namespace (GA since 1.22): how a policy names a namespace.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# Defaults for a container that declares no resources of its own: a quarter vCPU and 256 MiB
# requested, one vCPU and 1 GiB at most, never more than the LimitRange's max. The quota below
# counts limits as well as requests, so a pod without limits would be refused; these defaults let
# small helper containers (sidecars, init containers, jobs) run, while the business systems'
# own manifests declare the sizes the placement gave them.
DEFAULT_REQUEST_MILLICPU = 250
DEFAULT_REQUEST_MIB = 256
DEFAULT_LIMIT_MILLICPU = 1000
DEFAULT_LIMIT_MIB = 1024
# Kubernetes' default rolling update surges 25 % of a Deployment's replicas, rounded up.
SURGE_FRACTION = 0.25

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_KEY_PREFIX_LIMIT = 52  # a long site label keeps 52 characters, "-" and 10 hex digits: 63

# --- desired state --------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemFootprint:
    """What one placed business system may use in the site namespace, as the placement sized it.

    `replicas` instances, each of `vcpu` whole virtual CPUs (Kubernetes CPU "1"), `memory_gib` GiB
    of memory (2^30 bytes) and `storage_gib` GiB of persistent volumes. Like the placement, every
    size is per instance: each replica has a volume of its own."""

    name: str
    replicas: int
    vcpu: int
    memory_gib: int
    storage_gib: int = 0


@dataclass(frozen=True)
class Allowance:
    """One ingress into the site namespace that the security pool allows: TCP on `ports`, from
    the namespaces whose labels match `from_namespace_labels`, from the addresses in `from_cidr`,
    or both (either source suffices). At least one source and one port: "from anywhere" and "any
    port" are what default-deny is there to prevent. `name` becomes the policy `allow-<name>`."""

    name: str
    from_namespace_labels: dict[str, str] | None
    from_cidr: str | None
    ports: tuple[int, ...]
    description: str = ""


@dataclass(frozen=True)
class SiteWorkload:
    """Everything one member cluster should hold for a site. `site` is the HospitalSite's
    `namespace/name` in the management cluster; `namespace` is the site's namespace here."""

    site: str
    hospital_id: str
    namespace: str
    systems: tuple[SystemFootprint, ...] = ()
    allowances: tuple[Allowance, ...] = ()


def site_label(site: str) -> str:
    """The site `namespace/name` as a label value (at most 63 characters, no "/"): `namespace.name`
    (a namespace holds no "."), or for a long one its first 52 characters, "-" and a hash."""
    value = site.replace("/", ".")
    if len(value) <= 63:
        return value
    digest = hashlib.sha256(site.encode()).hexdigest()[:10]
    return f"{value[:_KEY_PREFIX_LIMIT]}-{digest}"


def _site_labels(site: str, hospital_id: str) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        SITE_LABEL: site_label(site),
        HOSPITAL_LABEL: hospital_id,
    }


def _selector(site: str) -> str:
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{SITE_LABEL}={site_label(site)}"


def _check(workload: SiteWorkload) -> None:
    problems: list[str] = []
    if workload.site.count("/") > 1 or not _LABEL_VALUE.match(site_label(workload.site)):
        problems.append(f"site {workload.site!r} is not `namespace/name` of DNS labels")
    for what, value in (("hospital_id", workload.hospital_id), ("namespace", workload.namespace)):
        if not DNS_LABEL.match(value):
            problems.append(f"{what} {value!r} is not a DNS label")
    names = [s.name for s in workload.systems]
    if len(set(names)) != len(names):
        problems.append(f"system names repeat: {names}")
    for system in workload.systems:
        for what, value, least in (
            ("replicas", system.replicas, 0),
            ("vcpu", system.vcpu, 1),
            ("memory_gib", system.memory_gib, 1),
            ("storage_gib", system.storage_gib, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                problems.append(f"system {system.name}: {what} must be an integer >= {least}")
    policies = [DEFAULT_DENY, DNS_POLICY]
    for allowance in workload.allowances:
        label = f"allowance {allowance.name!r}"
        policies.append(ALLOWANCE_PREFIX + allowance.name)
        if not DNS_LABEL.match(ALLOWANCE_PREFIX + allowance.name):
            problems.append(f"{label}: the name must make allow-<name> a DNS label")
        if allowance.from_namespace_labels is None and allowance.from_cidr is None:
            problems.append(f"{label}: names no source (namespace labels or CIDR)")
        if allowance.from_namespace_labels is not None and not allowance.from_namespace_labels:
            problems.append(f"{label}: empty namespace labels would match every namespace")
        if allowance.from_cidr is not None:
            try:
                ipaddress.ip_network(allowance.from_cidr, strict=True)
            except ValueError as error:
                problems.append(f"{label}: {error}")
        if not allowance.ports:
            problems.append(f"{label}: names no port")
        for port in allowance.ports:
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                problems.append(f"{label}: port {port!r} is not 1-65535")
    if len(set(policies)) != len(policies):
        problems.append(f"network policy names repeat: {policies}")
    if problems:
        raise ValueError(f"site {workload.site}: " + "; ".join(problems))


def _cpu(millicpu: int) -> str:
    """A CPU quantity in Kubernetes' canonical form ("2", "250m")."""
    return str(millicpu // 1000) if millicpu % 1000 == 0 else f"{millicpu}m"


def _bytes(mib: int) -> str:
    """A memory or storage quantity in canonical form ("0", "8Gi", "256Mi")."""
    if mib == 0:
        return "0"
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _metadata(
    workload: SiteWorkload,
    name: str,
    requirements: tuple[str, ...] = (),
    description: str = "",
    namespaced: bool = True,
) -> dict[str, Any]:
    labels = _site_labels(workload.site, workload.hospital_id)
    annotations = {SITE_ANNOTATION: workload.site}
    if requirements:
        labels[REQUIREMENT_LABEL] = requirements[0]
        annotations[REQUIREMENTS_ANNOTATION] = ",".join(requirements)
    if description:
        annotations[DESCRIPTION_ANNOTATION] = description
    metadata: dict[str, Any] = {"name": name, "labels": labels, "annotations": annotations}
    if namespaced:
        metadata["namespace"] = workload.namespace
    return metadata


def _quota(workload: SiteWorkload) -> dict[str, Any]:
    systems = workload.systems
    millicpu = sum(s.replicas * s.vcpu * 1000 for s in systems)
    memory_mib = sum(s.replicas * s.memory_gib * 1024 for s in systems)
    storage_mib = sum(s.replicas * s.storage_gib * 1024 for s in systems)
    replicas = sum(s.replicas for s in systems)
    # Room for rolling updates: a Deployment surges ceil(25 %) of its replicas while the old pods
    # terminate, and those pods count. CPU and memory stay capped by the entries above, so the
    # headroom grants no capacity, only lets an update start when requests leave room for it.
    headroom = sum(math.ceil(s.replicas * SURGE_FRACTION) for s in systems)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        # R-7.3b: each system gets what its placement reserved, in the cluster that hosts it.
        "metadata": _metadata(workload, SITE_OBJECTS, ("R-7.3b",)),
        "spec": {
            "hard": {
                "requests.cpu": _cpu(millicpu),
                "limits.cpu": _cpu(millicpu),
                "requests.memory": _bytes(memory_mib),
                "limits.memory": _bytes(memory_mib),
                "requests.storage": _bytes(storage_mib),
                "pods": str(replicas + headroom),
            }
        },
    }


def _limit_range(workload: SiteWorkload) -> dict[str, Any]:
    # R-7.3c: no container is larger than the largest instance the placement sized. With no systems
    # the maximum is 0, like the quota: nothing runs until something is placed.
    max_millicpu = max((s.vcpu * 1000 for s in workload.systems), default=0)
    max_mib = max((s.memory_gib * 1024 for s in workload.systems), default=0)
    limit_millicpu = min(DEFAULT_LIMIT_MILLICPU, max_millicpu)
    limit_mib = min(DEFAULT_LIMIT_MIB, max_mib)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(workload, SITE_OBJECTS, ("R-7.3c", "R-7.3b")),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    # All three set: Kubernetes defaults an absent `default` to `max`.
                    "max": {"cpu": _cpu(max_millicpu), "memory": _bytes(max_mib)},
                    "default": {"cpu": _cpu(limit_millicpu), "memory": _bytes(limit_mib)},
                    "defaultRequest": {
                        "cpu": _cpu(min(DEFAULT_REQUEST_MILLICPU, limit_millicpu)),
                        "memory": _bytes(min(DEFAULT_REQUEST_MIB, limit_mib)),
                    },
                }
            ]
        },
    }


# Boundary protection (R-7.5a) for every zone alike under the one security pool; the
# controlled ports of the internet boundary (R-A.2.8, MLPS3-ABS-1) and zone isolation (MLPS3-CNS-1).
_POLICY_REQUIREMENTS = ("R-7.5a", "R-7.2.4", "R-A.2.8")


def _default_deny(workload: SiteWorkload) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            workload,
            DEFAULT_DENY,
            _POLICY_REQUIREMENTS,
            "Nothing enters or leaves the site namespace but what another policy allows",
        ),
        # Both directions, no rules: every pod of the namespace is isolated in and out.
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def _dns(workload: SiteWorkload) -> dict[str, Any]:
    selector = {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            workload,
            DNS_POLICY,
            _POLICY_REQUIREMENTS,
            "Pods resolve names with the cluster DNS in kube-system, UDP and TCP 53",
        ),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"namespaceSelector": selector}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
    }


def _within_site(workload: SiteWorkload) -> dict[str, Any]:
    """The site's own pods reach each other (an application its database); nothing else does."""
    peers = [{"podSelector": {}}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            workload,
            WITHIN_SITE_POLICY,
            _POLICY_REQUIREMENTS,
            "The site's pods talk to each other inside its namespace, in and out",
        ),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers}],
            "egress": [{"to": peers}],
        },
    }


def _allowance(workload: SiteWorkload, allowance: Allowance) -> dict[str, Any]:
    sources: list[dict[str, Any]] = []
    if allowance.from_namespace_labels is not None:
        labels = dict(sorted(allowance.from_namespace_labels.items()))
        sources.append({"namespaceSelector": {"matchLabels": labels}})
    if allowance.from_cidr is not None:
        network = ipaddress.ip_network(allowance.from_cidr, strict=True)
        sources.append({"ipBlock": {"cidr": str(network)}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            workload,
            ALLOWANCE_PREFIX + allowance.name,
            _POLICY_REQUIREMENTS,
            allowance.description,
        ),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": sources,
                    "ports": [{"protocol": "TCP", "port": port} for port in allowance.ports],
                }
            ],
        },
    }


def desired_objects(workload: SiteWorkload) -> list[dict[str, Any]]:
    """The manifests one member cluster should hold for the site, in the order they are applied:
    the Namespace, the ResourceQuota and LimitRange `medcloud-site`, NetworkPolicies
    `default-deny`, `allow-dns`, `allow-within-site` and `allow-<name>` per allowance. Every
    object carries the labels `app.kubernetes.io/managed-by: medcloud`, `medcloud.io/site` (`site_label`) and
    `medcloud.io/hospital`, and the annotation `medcloud.io/site` with the exact `namespace/name`.

    The quota caps the namespace at what the placement reserved: requests and limits of CPU at
    the sum of replicas * vCPU, of memory at replicas * GiB, persistent storage at replicas *
    storage GiB, pods at the replicas plus rolling-update headroom. Raises ValueError naming every
    problem of an invalid workload."""
    _check(workload)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(workload, workload.namespace, namespaced=False),
    }
    return [
        namespace,
        _quota(workload),
        _limit_range(workload),
        _default_deny(workload),
        _dns(workload),
        _within_site(workload),
        *(_allowance(workload, allowance) for allowance in workload.allowances),
    ]


# --- comparing ------------------------------------------------------------------------------


def _same(want: Any, got: Any) -> bool:
    if want == got:
        return True
    if isinstance(want, str) and isinstance(got, str):
        # The API server may write a quantity in another form ("0.5" as "500m").
        try:
            return parse_quantity(want) == parse_quantity(got)
        except (ValueError, ArithmeticError):
            return False
    return False


def _spec_differences(path: str, want: Any, got: Any) -> list[str]:
    """Where `got` differs from `want` exactly: a missing field, a different value, or a field
    nobody asked for (a rule someone added by hand to default-deny is drift, too)."""
    if isinstance(want, dict) and isinstance(got, dict):
        found = []
        for key in sorted(set(want) | set(got), key=str):
            here = f"{path}.{key}"
            if key not in got:
                found.append(f"{here} missing, want {json.dumps(want[key])}")
            elif key not in want:
                found.append(f"{here} is {json.dumps(got[key])}, not desired")
            else:
                found += _spec_differences(here, want[key], got[key])
        return found
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        found = []
        for index, (w, g) in enumerate(zip(want, got, strict=True)):
            found += _spec_differences(f"{path}[{index}]", w, g)
        return found
    if _same(want, got):
        return []
    return [f"{path} is {json.dumps(got)}, want {json.dumps(want)}"]


def _differences(want: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """How a stored object differs from its manifest: labels and annotations the manifest sets
    (others may add their own), and the whole spec (Namespaces have none we set)."""
    found = []
    metadata = got.get("metadata") or {}
    for part in ("labels", "annotations"):
        have = metadata.get(part) or {}
        for key, value in want["metadata"].get(part, {}).items():
            if have.get(key) != value:
                found.append(
                    f"{part[:-1]} {key} is {json.dumps(have.get(key))}, want {json.dumps(value)}"
                )
    if "spec" in want:
        found += _spec_differences("spec", want["spec"], got.get("spec") or {})
    return found


def _exact_patch(want: Any, got: Any) -> Any:
    """A JSON merge patch turning `got` into `want`: fields nobody asked for are set to null
    (removed); lists and values are replaced whole."""
    if not (isinstance(want, dict) and isinstance(got, dict)):
        return want
    patch = {key: _exact_patch(value, got.get(key)) for key, value in want.items()}
    patch.update({key: None for key in got if key not in want})
    return patch


# --- the clusters ---------------------------------------------------------------------------


class MemberClusterError(Exception):
    """A member cluster did not answer, or answered with an error: `cluster` names it, `message`
    says what was being done and what Kubernetes answered (HTTP status and reason), `status` is
    the HTTP status (None when the cluster did not answer)."""

    def __init__(self, cluster: str, message: str, status: int | None = None) -> None:
        super().__init__(f"member cluster {cluster}: {message}")
        self.cluster = cluster
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ApplyReport:
    """What one apply did in one cluster, each entry `Kind namespace/name`; all empty when the
    cluster already matched."""

    cluster: str
    namespace: str
    created: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.created or self.changed or self.removed)

    def __str__(self) -> str:
        if self.empty:
            return f"cluster {self.cluster}: namespace {self.namespace} in sync"
        parts = [
            f"{verb} {', '.join(entries)}"
            for verb, entries in (
                ("created", self.created),
                ("changed", self.changed),
                ("removed", self.removed),
            )
            if entries
        ]
        return f"cluster {self.cluster}: " + "; ".join(parts)


@dataclass(frozen=True)
class _Kind:
    kind: str
    api: Callable[[client.ApiClient], Any]
    # The typed client's method suffix: patch_namespaced_<suffix>, list_namespaced_<suffix> …
    suffix: str


_NAMESPACE = _Kind("Namespace", client.CoreV1Api, "namespace")
_NAMESPACED = (
    _Kind("ResourceQuota", client.CoreV1Api, "resource_quota"),
    _Kind("LimitRange", client.CoreV1Api, "limit_range"),
    _Kind("NetworkPolicy", client.NetworkingV1Api, "network_policy"),
)
_KINDS = {kind.kind: kind for kind in (_NAMESPACE, *_NAMESPACED)}


def _what(kind: str, name: str, namespace: str = "") -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _api_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except (ValueError, TypeError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.body or "no message").strip()


def _belongs(namespace: Mapping[str, Any], site: str) -> bool:
    """Whether a namespace was made for `site` by medcloud (its label, or failing that, should
    someone have stripped labels, its annotation)."""
    metadata = namespace.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (
        labels.get(SITE_LABEL) == site_label(site) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
    ) or annotations.get(SITE_ANNOTATION) == site


def _terminating(namespace: Mapping[str, Any]) -> bool:
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


@dataclass
class _Call:
    """One request: the kind's method, its arguments, and how to name it in an error."""

    cluster: str
    what: str
    method: str
    kind: _Kind
    args: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


class MemberClusters:
    """The site's objects in member clusters, given each cluster by name as a kubeconfig path or
    an ApiClient already made (which `close` leaves open).

    Namespace ownership: `apply` creates the namespace, or works in one labelled (or annotated)
    for the same site; it refuses a namespace that exists for anything else, and one that is
    being deleted. `remove` deletes the namespace only when it carries the site's label.

    Namespace deletion: the namespace controller (in kube-controller-manager) empties a deleted
    namespace and clears its `kubernetes` finalizer. Where none runs, as on the bare API servers
    of the tests and the local stack, a deleted namespace stays Terminating for good; `remove`
    therefore does not wait for it to go, reports "namespace <name> terminating" and counts a
    Terminating namespace carrying the site's label as removed."""

    def __init__(
        self,
        clusters: Mapping[str, str | Path | client.ApiClient],
        *,
        connect_timeout_seconds: float = 3.0,
        read_timeout_seconds: float = 10.0,
    ) -> None:
        self._kube = KubeClients(
            {n: Path(s) for n, s in clusters.items() if not isinstance(s, client.ApiClient)},
            {n: s for n, s in clusters.items() if isinstance(s, client.ApiClient)},
        )
        self._request_timeout = (connect_timeout_seconds, read_timeout_seconds)

    @property
    def clusters(self) -> tuple[str, ...]:
        return self._kube.clusters

    def close(self) -> None:
        """Closes the clients made from kubeconfigs."""
        self._kube.close()

    # --- the operations ---------------------------------------------------------------------

    async def apply(self, cluster: str, workload: SiteWorkload) -> ApplyReport:
        """Brings the cluster to `desired_objects(workload)` and deletes the site's objects there
        that are no longer desired. Raises ValueError for an invalid workload, MemberClusterError
        when the cluster fails or the namespace is not the site's to use."""
        self._known(cluster)
        objects = desired_objects(workload)
        namespace = workload.namespace
        existing = await self._get(cluster, _NAMESPACE, namespace)
        if existing is not None:
            if not _belongs(existing, workload.site):
                labels = (existing.get("metadata") or {}).get("labels") or {}
                raise MemberClusterError(
                    cluster,
                    f"namespace {namespace} exists and was not made for site {workload.site} "
                    f"(labels {labels}); medcloud adopts no namespace it did not create",
                )
            if _terminating(existing):
                raise MemberClusterError(
                    cluster,
                    f"namespace {namespace} is being deleted; site {workload.site} can be "
                    "applied there once it is gone",
                )
        created: list[str] = []
        changed: list[str] = []
        for manifest in objects:
            kind = _KINDS[manifest["kind"]]
            name = manifest["metadata"]["name"]
            on = "" if kind is _NAMESPACE else namespace
            what = _what(kind.kind, name, on)
            before = existing if kind is _NAMESPACE else await self._get(cluster, kind, name, on)
            after = await self._apply(cluster, kind, manifest, on)
            if _differences(manifest, after):
                # Fields other managers own survive an apply (an ingress rule added by hand to
                # default-deny): replace the spec exactly.
                after = await self._exact(cluster, kind, manifest, after, on)
            if before is None:
                created.append(what)
            elif _version(before) != _version(after):
                changed.append(what)
        removed = await self._prune(cluster, workload.site, namespace, objects)
        return ApplyReport(cluster, namespace, tuple(created), tuple(changed), tuple(removed))

    async def drift(self, cluster: str, workload: SiteWorkload) -> list[str]:
        """What differs between `desired_objects(workload)` and the cluster, one line per finding
        naming the object (missing, a field changed, an object no longer desired); empty when in
        sync. Changes nothing."""
        self._known(cluster)
        objects = desired_objects(workload)
        namespace = workload.namespace
        found: list[str] = []
        for manifest in objects:
            kind = _KINDS[manifest["kind"]]
            name = manifest["metadata"]["name"]
            on = "" if kind is _NAMESPACE else namespace
            what = _what(kind.kind, name, on)
            actual = await self._get(cluster, kind, name, on)
            if actual is None:
                found.append(f"{what} missing")
                continue
            if kind is _NAMESPACE and _terminating(actual):
                found.append(f"{what} terminating")
            found += [f"{what}: {difference}" for difference in _differences(manifest, actual)]
        wanted = {(m["kind"], m["metadata"]["name"]) for m in objects}
        for kind in _NAMESPACED:
            for item in await self._list(cluster, kind, namespace, workload.site):
                name = item["metadata"]["name"]
                if (kind.kind, name) not in wanted:
                    found.append(f"{_what(kind.kind, name, namespace)} not desired")
        return found

    async def remove(self, cluster: str, site: str, namespace: str) -> list[str]:
        """Deletes the objects labelled for `site` in `namespace`, then the namespace if it carries
        the site's label; one line per thing done. A namespace goes Terminating and stays so
        until a namespace controller clears it (see the class): "namespace <name> terminating"
        means removed."""
        self._known(cluster)
        done: list[str] = []
        for kind in _NAMESPACED:
            for item in await self._list(cluster, kind, namespace, site):
                name = item["metadata"]["name"]
                if await self._delete(cluster, kind, name, namespace):
                    done.append(f"deleted {_what(kind.kind, name, namespace)}")
        existing = await self._get(cluster, _NAMESPACE, namespace)
        if existing is None:
            done.append(f"namespace {namespace} absent")
        elif not _belongs(existing, site):
            done.append(f"namespace {namespace} kept: it was not made for site {site}")
        else:
            if not _terminating(existing):
                await self._delete(cluster, _NAMESPACE, namespace)
            done.append(f"namespace {namespace} terminating")
        return done

    # --- steps ------------------------------------------------------------------------------

    async def _apply(
        self, cluster: str, kind: _Kind, manifest: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        args = (name, namespace, manifest) if namespace else (name, manifest)
        options = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY_PATCH}
        what = f"applying {_what(kind.kind, name, namespace)}"
        return await self._run(_Call(cluster, what, "patch", kind, args, options))

    async def _exact(
        self,
        cluster: str,
        kind: _Kind,
        manifest: dict[str, Any],
        stored: dict[str, Any],
        namespace: str,
    ) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        patch = {
            "metadata": {
                "labels": manifest["metadata"]["labels"],
                "annotations": manifest["metadata"]["annotations"],
                # Only against the version just applied: whatever changed since waits for the
                # next apply rather than being overwritten blindly.
                "resourceVersion": _version(stored),
            }
        }
        if "spec" in manifest:
            patch["spec"] = _exact_patch(manifest["spec"], stored.get("spec") or {})
        args = (name, namespace, patch) if namespace else (name, patch)
        call = _Call(
            cluster,
            f"replacing the spec of {_what(kind.kind, name, namespace)}",
            "patch",
            kind,
            args,
            {"field_manager": FIELD_MANAGER, "_content_type": MERGE_PATCH},
        )
        return await self._run(call)

    async def _prune(
        self, cluster: str, site: str, namespace: str, objects: Iterable[Mapping[str, Any]]
    ) -> list[str]:
        wanted = {(m["kind"], m["metadata"]["name"]) for m in objects}
        removed = []
        for kind in _NAMESPACED:
            for item in await self._list(cluster, kind, namespace, site):
                name = item["metadata"]["name"]
                if (kind.kind, name) in wanted:
                    continue
                if await self._delete(cluster, kind, name, namespace):
                    removed.append(_what(kind.kind, name, namespace))
        return removed

    async def _get(
        self, cluster: str, kind: _Kind, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        args = (name, namespace) if namespace else (name,)
        call = _Call(cluster, f"reading {_what(kind.kind, name, namespace)}", "read", kind, args)
        try:
            return await self._run(call)
        except MemberClusterError as error:
            if error.status == 404:
                return None
            raise

    async def _list(
        self, cluster: str, kind: _Kind, namespace: str, site: str
    ) -> list[dict[str, Any]]:
        call = _Call(
            cluster,
            f"listing {kind.kind} objects of site {site} in namespace {namespace}",
            "list",
            kind,
            (namespace,),
            {"label_selector": _selector(site)},
        )
        return list((await self._run(call)).get("items") or [])

    async def _delete(self, cluster: str, kind: _Kind, name: str, namespace: str = "") -> bool:
        """Deletes an object; False when it was already gone."""
        args = (name, namespace) if namespace else (name,)
        call = _Call(cluster, f"deleting {_what(kind.kind, name, namespace)}", "delete", kind, args)
        try:
            await self._run(call)
        except MemberClusterError as error:
            if error.status == 404:
                return False
            raise
        return True

    # --- Kubernetes calls -------------------------------------------------------------------

    def _known(self, cluster: str) -> None:
        if not self._kube.knows(cluster):
            known = ", ".join(self.clusters) or "none"
            raise MemberClusterError(cluster, f"unknown cluster; the operator knows {known}")

    def _client(self, cluster: str) -> client.ApiClient:
        try:
            return self._kube.get(cluster)
        except KubeconfigUnusable as error:
            raise MemberClusterError(cluster, str(error)) from None

    def _send(self, call: _Call) -> dict[str, Any]:
        api = call.kind.api(self._client(call.cluster))
        scope = "" if call.kind is _NAMESPACE else "namespaced_"
        method = getattr(api, f"{call.method}_{scope}{call.kind.suffix}")
        # Raw JSON rather than the client's models: the manifests are dicts, and what the server
        # stored compares with them field by field. Non-2xx answers still raise ApiException.
        response = method(
            *call.args,
            **call.options,
            _preload_content=False,
            _request_timeout=self._request_timeout,
        )
        return json.loads(response.data or b"{}")

    async def _run(self, call: _Call) -> Any:
        try:
            return await asyncio.to_thread(self._send, call)
        except ApiException as error:
            answer = f"{error.status} {error.reason}: {_api_message(error)}"
            raise MemberClusterError(
                call.cluster, f"{call.what}: Kubernetes answered {answer}", error.status
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            cause = getattr(error, "reason", None) or error
            raise MemberClusterError(
                call.cluster, f"{call.what}: the cluster is unreachable: {cause}"
            ) from None


def _version(stored: Mapping[str, Any]) -> str:
    return str((stored.get("metadata") or {}).get("resourceVersion") or "")
