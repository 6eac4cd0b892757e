"""The reconcile core's `MemberClusterWork` port: a HospitalSite's clusters, reached with the
kubeconfigs its Secrets hold, get the site's namespace, quota, limits and network policies."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medcloud.operators.member_clusters import (
    Allowance,
    MemberClusterError,
    MemberClusters,
    SiteWorkload,
    SystemFootprint,
)
from medcloud.operators.reconcile import StepFailed
from medcloud.operators.site import HospitalSite

# The label by which the region enrols a member cluster's kubeconfig Secret for one hospital.
HOSPITAL_LABEL = "medcloud.io/hospital"


@dataclass(frozen=True)
class KubeconfigSecret:
    data: bytes | None  # None when the Secret lacks the key
    hospital: str | None  # its HOSPITAL_LABEL: the one hospital whose sites may use it


# (name, key) -> the Secret, or None when there is none by that name.
SecretReader = Callable[[str, str], KubeconfigSecret | None]
# Prometheus scrapes the site's pods from medcloud's own namespace (R-7.1 monitoring).
MONITORING_ALLOWANCE = Allowance(
    "monitoring",
    {"kubernetes.io/metadata.name": "medcloud"},
    None,
    (9464,),
    "medcloud's monitoring scrapes metrics",
)


def workload_for(site: HospitalSite, cluster: str) -> SiteWorkload:
    """What one member cluster holds for the site: every system whose primary runs there, and
    every standby kept there at the same size (the DR capacity is reserved, not hoped for)."""
    systems = tuple(
        SystemFootprint(s.name, s.replicas, s.vcpu, s.memory_gib, s.storage_gib)
        for s in site.systems
        if cluster in (s.cluster, s.standby_cluster)
    )
    zones = tuple(
        Allowance(
            f"zone-{zone}",
            {"medcloud.io/zone": zone},
            None,
            (443,),
            f"the hospital's {zone} zone reaches the site's services over HTTPS (R-A.2.8)",
        )
        for zone in site.zones
    )
    return SiteWorkload(
        site.key, site.hospital_id, site.member_namespace, systems, (MONITORING_ALLOWANCE, *zones)
    )


class KubernetesMemberWork:
    """Kubeconfig Secrets live in the operator's own namespace, where only the region's operators
    write (as Karmada keeps its cluster Secrets): hospital IT names one in a HospitalSite but can
    neither read it nor use another hospital's, since each is enrolled for one hospital by label
    (R-A.2.6 least privilege; a site cannot make the operator act on a cluster it was not given).
    `require_enrolment=False` is for kubeconfigs the caller supplies directly (medcloudctl
    --embedded --secrets-dir)."""

    def __init__(
        self,
        read_secret: SecretReader,
        secrets_namespace: str,
        work_dir: Path | None = None,
        require_enrolment: bool = True,
    ) -> None:
        self._read_secret = read_secret
        self._secrets_namespace = secrets_namespace
        self._require_enrolment = require_enrolment
        self._work_dir = work_dir or Path(tempfile.mkdtemp(prefix="medcloud-kubeconfigs-"))
        self._work_dir.chmod(0o700)

    async def _members(self, site: HospitalSite) -> MemberClusters:
        paths: dict[str, Path] = {}
        for index, cluster in enumerate(site.clusters):
            secret = await asyncio.to_thread(
                self._read_secret, cluster.secret_name, cluster.secret_key
            )
            field = f"spec.clusters[{index}].kubeconfigSecretRef"
            where = f"Secret {self._secrets_namespace}/{cluster.secret_name}"
            if secret is None or secret.data is None:
                raise StepFailed(
                    "KubeconfigSecretMissing",
                    f"{field}: {where} with key {cluster.secret_key!r} not found: the region "
                    "operator creates it from the cluster's kubeconfig and labels it "
                    f"{HOSPITAL_LABEL}={site.hospital_id}",
                )
            if self._require_enrolment and secret.hospital != site.hospital_id:
                enrolled = f"for {secret.hospital!r}" if secret.hospital else "for no hospital"
                raise StepFailed(
                    "KubeconfigSecretNotEnrolled",
                    f"{field}: {where} is enrolled {enrolled}, not for {site.hospital_id!r}: "
                    f"a site may use only Secrets labelled {HOSPITAL_LABEL}={site.hospital_id}",
                )
            data = secret.data
            digest = hashlib.sha256(data).hexdigest()[:16]
            path = self._work_dir / f"{cluster.name}-{digest}.kubeconfig"
            if not path.exists():
                path.write_bytes(data)
                path.chmod(0o600)
            paths[cluster.name] = path
        return MemberClusters(paths)

    async def apply(self, site: HospitalSite) -> str:
        members = await self._members(site)
        done = []
        try:
            for cluster in site.clusters:
                report = await members.apply(cluster.name, workload_for(site, cluster.name))
                done.append(f"{cluster.name}: {report}")
        except MemberClusterError as error:
            raise StepFailed("MemberClusterUnavailable", str(error)) from error
        finally:
            members.close()
        return "; ".join(done)

    async def drift(self, site: HospitalSite) -> list[str]:
        members = await self._members(site)
        try:
            found = []
            for cluster in site.clusters:
                found += await members.drift(cluster.name, workload_for(site, cluster.name))
            return found
        except MemberClusterError as error:
            return [str(error)]
        finally:
            members.close()

    async def remove(self, site: HospitalSite) -> list[str]:
        try:
            members = await self._members(site)
        except StepFailed:
            return []  # no kubeconfig, nothing we could have created there
        try:
            removed = []
            for cluster in site.clusters:
                removed += await members.remove(cluster.name, site.key, site.member_namespace)
            return removed
        except MemberClusterError as error:
            raise StepFailed("MemberClusterUnavailable", str(error)) from error
        finally:
            members.close()
