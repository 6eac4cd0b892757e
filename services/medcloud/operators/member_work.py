"""The reconcile core's `MemberClusterWork` port: a HospitalSite's clusters, reached with the
kubeconfigs its Secrets hold, get the site's namespace, quota, limits and network policies."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Callable
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

# (namespace, name, key) -> the kubeconfig's bytes, or None when the Secret or key is missing.
SecretReader = Callable[[str, str, str], bytes | None]
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
    def __init__(self, read_secret: SecretReader, work_dir: Path | None = None) -> None:
        self._read_secret = read_secret
        self._work_dir = work_dir or Path(tempfile.mkdtemp(prefix="medcloud-kubeconfigs-"))
        self._work_dir.chmod(0o700)

    async def _members(self, site: HospitalSite) -> MemberClusters:
        paths: dict[str, Path] = {}
        for index, cluster in enumerate(site.clusters):
            data = await asyncio.to_thread(
                self._read_secret, site.namespace, cluster.secret_name, cluster.secret_key
            )
            if data is None:
                raise StepFailed(
                    "KubeconfigSecretMissing",
                    f"spec.clusters[{index}].kubeconfigSecretRef: Secret "
                    f"{site.namespace}/{cluster.secret_name} with key {cluster.secret_key!r} "
                    "not found: create it from the cluster's kubeconfig",
                )
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
