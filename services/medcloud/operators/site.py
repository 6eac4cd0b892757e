"""A HospitalSite as the reconcile core sees it: the spec read into plain values, and the
conditions it reports. No Kubernetes or gRPC here: the same core runs under kopf, under
`medcloudctl apply -f` and in tests."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from medcloud.operators.region import Link, read_link


class ConditionType(enum.Enum):
    """The status conditions, in the order the steps run (issue: Validated → Ready)."""

    VALIDATED = "Validated"
    INVENTORIED = "Inventoried"
    PLACED = "Placed"
    SECURED = "Secured"
    PROTECTED = "Protected"
    MONITORED = "Monitored"
    READY = "Ready"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool | None  # None: Unknown (not run yet, or waiting for an earlier step)
    reason: str
    message: str
    # Which inputs this outcome was computed from: a step whose inputs did not change and that
    # succeeded is not run again (a spec change re-runs only what it affects).
    inputs: str = ""
    last_transition: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_status(self, generation: int) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "status": {True: "True", False: "False", None: "Unknown"}[self.status],
            "reason": self.reason,
            "message": self.message,
            "observedGeneration": generation,
            "lastTransitionTime": self.last_transition.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


@dataclass(frozen=True)
class ClusterRef:
    name: str
    role: str  # "private" or "public"
    centre_id: str
    secret_name: str
    secret_key: str


@dataclass(frozen=True)
class SiteSystem:
    name: str
    kind: str
    classification: str
    replicas: int
    vcpu: int
    memory_gib: int
    storage_gib: int
    storage_class: str
    dr_tier: int
    rpo_seconds: int
    rto_seconds: int
    depends_on: tuple[str, ...]
    cluster: str
    standby_cluster: str


@dataclass(frozen=True)
class HospitalSite:
    """The spec of one HospitalSite, read from its manifest."""

    namespace: str
    name: str
    generation: int
    hospital_id: str
    display_name: str
    region: str
    room_centre_id: str
    room_city: str
    room_province: str
    nodes: tuple[tuple[str, str], ...]  # (id, role)
    links: tuple[Link, ...]
    clusters: tuple[ClusterRef, ...]
    systems: tuple[SiteSystem, ...]
    zones: tuple[str, ...]
    retention_days: int
    schedule_seconds: int
    same_city_centre_id: str
    out_of_province_centre_id: str
    raw_spec: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def member_namespace(self) -> str:
        """The site's namespace in its member clusters."""
        return self.hospital_id

    def system_id(self, system: SiteSystem) -> str:
        """The system's id across the region's services: unique per hospital."""
        return f"{self.hospital_id}-{system.name}"

    def cluster(self, name: str) -> ClusterRef | None:
        return next((c for c in self.clusters if c.name == name), None)

    def inputs(self, *parts: str) -> str:
        """A digest of the spec parts a step reads, to tell whether it must run again."""
        chosen = {part: self.raw_spec.get(part) for part in parts}
        encoded = json.dumps(chosen, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


def _text(spec: Mapping[str, Any], key: str, default: str = "") -> str:
    value = spec.get(key, default)
    return str(value) if value is not None else default


def read_site(manifest: Mapping[str, Any]) -> HospitalSite:
    """Reads a HospitalSite manifest already checked against the CRD's schema (by the API server
    or `manifests.validate_manifest`); defaults as the CRD declares them."""
    metadata = manifest.get("metadata") or {}
    spec = manifest.get("spec") or {}
    room = spec.get("room") or {}
    security = spec.get("security") or {}
    backup = spec.get("backup") or {}
    return HospitalSite(
        namespace=_text(metadata, "namespace", "default"),
        name=_text(metadata, "name"),
        generation=int(metadata.get("generation") or 1),
        hospital_id=_text(spec, "hospitalId"),
        display_name=_text(spec, "displayName"),
        region=_text(spec, "region"),
        room_centre_id=_text(room, "centreId"),
        room_city=_text(room, "city"),
        room_province=_text(room, "province"),
        nodes=tuple((_text(n, "id"), _text(n, "role")) for n in spec.get("nodes") or ()),
        links=tuple(read_link(link) for link in spec.get("links") or ()),
        clusters=tuple(
            ClusterRef(
                name=_text(c, "name"),
                role=_text(c, "role"),
                centre_id=_text(c, "centreId"),
                secret_name=_text(c.get("kubeconfigSecretRef") or {}, "name"),
                secret_key=_text(c.get("kubeconfigSecretRef") or {}, "key", "kubeconfig"),
            )
            for c in spec.get("clusters") or ()
        ),
        systems=tuple(
            SiteSystem(
                name=_text(s, "name"),
                kind=_text(s, "kind"),
                classification=_text(s, "classification"),
                replicas=int(s.get("replicas") or 1),
                vcpu=int(s.get("vcpu") or 0),
                memory_gib=int(s.get("memoryGiB") or 0),
                storage_gib=int(s.get("storageGiB") or 0),
                storage_class=_text(s, "storageClass"),
                dr_tier=int(s.get("drTier") or 0),
                rpo_seconds=int(s.get("rpoSeconds") or 0),
                rto_seconds=int(s.get("rtoSeconds") or 0),
                depends_on=tuple(s.get("dependsOn") or ()),
                cluster=_text(s, "cluster"),
                standby_cluster=_text(s, "standbyCluster"),
            )
            for s in spec.get("systems") or ()
        ),
        zones=tuple(security.get("zones") or ()),
        retention_days=int(backup.get("retentionDays") or 30),
        schedule_seconds=int(backup.get("scheduleSeconds") or 86400),
        same_city_centre_id=_text(backup, "sameCityCentreId"),
        out_of_province_centre_id=_text(backup, "outOfProvinceCentreId"),
        raw_spec=spec,
    )
