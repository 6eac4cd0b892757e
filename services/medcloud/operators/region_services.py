"""The reconcile core's `RegionServices` port over gRPC: inventory, scheduling, security, backup
and monitoring, called with the operator's own certificate (a system administrator: it runs the
systems, and under three-role separation cannot change security policy or the audit trail)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from medcloud.backup.v1 import backup_pb2 as backup_pb
from medcloud.backup.v1 import backup_service_pb2 as backup_api
from medcloud.backup.v1 import backup_service_pb2_grpc as backup_grpc
from medcloud.common.v1 import data_classification_pb2 as classification_pb
from medcloud.inventory.v1 import inventory_pb2 as inventory_pb
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.monitoring.v1 import monitoring_pb2 as monitoring_pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as monitoring_api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as monitoring_grpc
from medcloud.operators.reconcile import PlacedSystem, StepFailed, StepOutcome
from medcloud.operators.region import Link, RegionSpec
from medcloud.operators.site import HospitalSite, SiteSystem
from medcloud.runtime.grpc_client import service_channel
from medcloud.runtime.tls import TlsMaterial
from medcloud.scheduling.v1 import scheduling_pb2 as scheduling_pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from medcloud.security.v1 import security_service_pb2 as security_api
from medcloud.security.v1 import security_service_pb2_grpc as security_grpc

T = TypeVar("T")
TIMEOUT_SECONDS = 30.0
# Reads and writes of one inventory object before a conflict with other writers fails the step.
ENSURE_ATTEMPTS = 5


@dataclass(frozen=True)
class ServiceAddresses:
    inventory: str
    scheduling: str
    security: str
    backup: str
    monitoring: str


def _enum(wrapper: Any, prefix: str, value: str) -> int:
    """`fc-san` → LINK_PURPOSE_FC_SAN: the CRD's spelling of the services' enums."""
    return wrapper.Value(f"{prefix}_{value.upper().replace('-', '_')}")


class GrpcRegionServices:
    def __init__(self, addresses: ServiceAddresses, tls: TlsMaterial | None) -> None:
        self._channels = {
            name: service_channel(getattr(addresses, name), tls)
            for name in ("inventory", "scheduling", "security", "backup", "monitoring")
        }
        self._addresses = addresses
        self._inventory = inventory_grpc.InventoryServiceStub(self._channels["inventory"])
        self._scheduling = scheduling_grpc.SchedulingServiceStub(self._channels["scheduling"])
        self._security = security_grpc.SecurityServiceStub(self._channels["security"])
        self._backup = backup_grpc.BackupServiceStub(self._channels["backup"])
        self._monitoring = monitoring_grpc.MonitoringServiceStub(self._channels["monitoring"])

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def _call(self, service: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One call; a failure becomes the step's reason, naming the service and its answer."""
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            reason = {
                grpc.StatusCode.UNAVAILABLE: f"{service.capitalize()}Unavailable",
                grpc.StatusCode.DEADLINE_EXCEEDED: f"{service.capitalize()}Unavailable",
                grpc.StatusCode.INVALID_ARGUMENT: "Refused",
                grpc.StatusCode.PERMISSION_DENIED: "NotPermitted",
            }.get(error.code(), "ServiceError")
            address = getattr(self._addresses, service)
            raise StepFailed(
                reason,
                f"{what}: {service} at {address} answered {error.code().name}: {error.details()}",
            ) from error

    # -- inventory -----------------------------------------------------------------------------

    async def apply_region(self, region: RegionSpec) -> str:
        """Registers the region's centres, nodes, links and carrier clusters in inventory, and
        gives backup the facts its DR plans are checked against (cities, provinces, link
        capacity and distance between centres)."""
        for centre in region.centres:
            await self._ensure(
                "Centre",
                "centre",
                inventory_pb.Centre(
                    id=centre.id,
                    display_name=centre.display_name or centre.id,
                    role=_enum(inventory_pb.CentreRole, "CENTRE_ROLE", centre.role),
                    city=centre.city,
                    province=centre.province,
                ),
            )
        for node_id, centre_id, role in region.nodes:
            await self._ensure(
                "NetworkNode",
                "node",
                inventory_pb.NetworkNode(
                    id=node_id,
                    centre_id=centre_id,
                    role=_enum(inventory_pb.NodeRole, "NODE_ROLE", role),
                ),
            )
        for link in region.links:
            await self._ensure("Link", "link", _link_message(link))
        for cluster_id, centre_id, platform, ownership in region.clusters:
            await self._ensure(
                "Cluster",
                "cluster",
                inventory_pb.Cluster(
                    id=cluster_id,
                    centre_id=centre_id,
                    platform=_enum(inventory_pb.Platform, "PLATFORM", platform),
                    ownership=_enum(inventory_pb.Ownership, "OWNERSHIP", ownership),
                ),
            )
        facts = backup_pb.RegionFacts(
            centres=[
                backup_pb.Centre(id=c.id, city=c.city, province=c.province) for c in region.centres
            ]
        )
        for link in region.links:
            a, b = region.centre_of(link.a_node), region.centre_of(link.b_node)
            if a and b and a != b:
                facts.links.append(
                    backup_pb.Link(
                        a_centre_id=a,
                        b_centre_id=b,
                        bandwidth_gbps=link.capacity_gbps,
                        distance_km=link.distance_km,
                        up=True,
                    )
                )
        await self._call(
            "backup",
            f"set the facts of region {region.name}",
            lambda: self._backup.SetRegionFacts(
                backup_api.SetRegionFactsRequest(facts=facts), timeout=TIMEOUT_SECONDS
            ),
        )
        return (
            f"{len(region.centres)} centres, {len(region.nodes)} nodes, {len(region.links)} links "
            f"and {len(region.clusters)} clusters registered; {len(facts.links)} inter-centre "
            "links given to backup"
        )

    async def register_site(self, site: HospitalSite) -> str:
        centre = inventory_pb.Centre(
            id=site.room_centre_id,
            display_name=site.display_name or site.hospital_id,
            role=inventory_pb.CENTRE_ROLE_HOSPITAL_ROOM,
            city=site.room_city,
            province=site.room_province,
        )
        # A room several sites share, or the Region also declares, keeps the name it has.
        await self._ensure("Centre", "centre", centre, keep=("display_name",))
        for node_id, role in site.nodes:
            node = inventory_pb.NetworkNode(
                id=node_id,
                centre_id=site.room_centre_id,
                role=_enum(inventory_pb.NodeRole, "NODE_ROLE", role),
            )
            await self._ensure("NetworkNode", "node", node)
        for link in site.links:
            await self._ensure("Link", "link", _link_message(link))
        for cluster in site.clusters:
            message = inventory_pb.Cluster(
                id=f"{site.hospital_id}-{cluster.name}",
                centre_id=cluster.centre_id,
                platform=inventory_pb.PLATFORM_KUBERNETES,
                ownership=_enum(inventory_pb.Ownership, "OWNERSHIP", cluster.role),
            )
            await self._ensure("Cluster", "cluster", message)
        return (
            f"room {site.room_centre_id}, {len(site.nodes)} nodes, {len(site.links)} links and "
            f"{len(site.clusters)} clusters in inventory"
        )

    async def _ensure(
        self, kind: str, field: str, message: Any, keep: tuple[str, ...] = ()
    ) -> None:
        """Creates the object, or brings an existing one to `message` (idempotent), leaving the
        fields in `keep` as they are. Another
        writer between our read and our write (ABORTED, ALREADY_EXISTS: sites that share a room
        register it at once) makes it read again, a few times, before the step fails."""
        for attempt in range(1, ENSURE_ATTEMPTS + 1):
            try:
                await self._ensure_once(kind, field, message, keep)
                return
            except grpc.aio.AioRpcError as error:
                raced = error.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.ALREADY_EXISTS)
                if raced and attempt < ENSURE_ATTEMPTS:
                    continue
                await self._call("inventory", f"register {kind} {message.id}", _raiser(error))

    async def _ensure_once(
        self, kind: str, field: str, message: Any, keep: tuple[str, ...]
    ) -> None:
        get = getattr(self._inventory, f"Get{kind}")
        request_type = getattr(inventory_api, f"Get{kind}Request")
        try:
            current = getattr(
                await get(request_type(id=message.id), timeout=TIMEOUT_SECONDS), field
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            create = getattr(self._inventory, f"Create{kind}")
            request = getattr(inventory_api, f"Create{kind}Request")(**{field: message})
            await create(request, timeout=TIMEOUT_SECONDS)
            return
        wanted = type(message)()
        wanted.CopyFrom(message)
        wanted.generation = current.generation
        for name in keep:
            setattr(wanted, name, getattr(current, name))
        if wanted != current:
            update = getattr(self._inventory, f"Update{kind}")
            request = getattr(inventory_api, f"Update{kind}Request")(**{field: wanted})
            await update(request, timeout=TIMEOUT_SECONDS)

    # -- scheduling ----------------------------------------------------------------------------

    def _business_system(
        self, site: HospitalSite, system: SiteSystem
    ) -> scheduling_pb.BusinessSystem:
        roles = [scheduling_pb.RoleCount(role=scheduling_pb.ROLE_PRIMARY, count=1)]
        if system.replicas > 1:
            roles.append(
                scheduling_pb.RoleCount(role=scheduling_pb.ROLE_REPLICA, count=system.replicas - 1)
            )
        if system.dr_tier >= 5:  # R-7.6b: the active-active pair's second room
            roles.append(scheduling_pb.RoleCount(role=scheduling_pb.ROLE_STANDBY, count=1))
        cluster = site.cluster(system.cluster)
        return scheduling_pb.BusinessSystem(
            id=site.system_id(system),
            kind=_enum(scheduling_pb.SystemKind, "SYSTEM_KIND", system.kind),
            roles=roles,
            vcpu=system.vcpu,
            memory_gib=system.memory_gib,
            storage_class=(
                _enum(scheduling_pb.StorageClass, "STORAGE_CLASS", system.storage_class)
                if system.storage_class
                else 0
            ),
            storage_gib=system.storage_gib,
            classification=_enum(
                classification_pb.DataClassification, "DATA_CLASSIFICATION", system.classification
            ),
            dr_tier=system.dr_tier,
            preferences=scheduling_pb.Preferences(
                centre_ids=[cluster.centre_id] if cluster and cluster.centre_id else []
            ),
        )

    async def place_systems(self, site: HospitalSite) -> list[PlacedSystem]:
        placed = []
        for system in site.systems:
            wanted = self._business_system(site, system)
            placement = await self._current_placement(wanted.id)
            if placement is not None and placement.system != wanted:
                # The system changed: release and place again (scheduling re-checks every rule).
                await self._call(
                    "scheduling",
                    f"release {wanted.id}",
                    lambda id=wanted.id: self._scheduling.ReleasePlacement(
                        scheduling_api.ReleasePlacementRequest(system_id=id),
                        timeout=TIMEOUT_SECONDS,
                    ),
                )
                placement = None
            if placement is None or placement.state == scheduling_pb.PLACEMENT_STATE_FAILED:
                reply = await self._call(
                    "scheduling",
                    f"place {wanted.id}",
                    lambda w=wanted: self._scheduling.Place(
                        scheduling_api.PlaceRequest(system=w), timeout=TIMEOUT_SECONDS
                    ),
                )
                placement = reply.placement
            state = {
                scheduling_pb.PLACEMENT_STATE_PLACED: "placed",
                scheduling_pb.PLACEMENT_STATE_DEGRADED: "degraded",
            }.get(placement.state, "failed")
            placed.append(
                PlacedSystem(
                    system.name,
                    state,
                    tuple(sorted({a.centre_id for a in placement.assignments})),
                    placement.message,
                )
            )
        return placed

    async def _current_placement(self, system_id: str) -> scheduling_pb.Placement | None:
        try:
            reply = await self._scheduling.GetPlacement(
                scheduling_api.GetPlacementRequest(system_id=system_id), timeout=TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            return await self._call("scheduling", f"read placement {system_id}", _raiser(error))
        return reply.placement

    # -- security, backup, monitoring ----------------------------------------------------------

    async def evaluate_baseline(self, site: HospitalSite) -> StepOutcome:
        reply = await self._call(
            "security",
            f"evaluate the MLPS level-3 baseline of {site.hospital_id}",
            lambda: self._security.EvaluateBaseline(
                security_api.EvaluateBaselineRequest(site_id=site.hospital_id),
                timeout=TIMEOUT_SECONDS,
            ),
        )
        failing = [f for f in reply.findings if not f.passed]
        if not failing:
            return StepOutcome(
                True, "BaselineMet", f"MLPS level-3 baseline met (score {reply.score:.2f})"
            )
        first = failing[0]
        return StepOutcome(
            False,
            "BaselineNotMet",
            f"{len(failing)} MLPS level-3 controls not met (score {reply.score:.2f}), e.g. "
            f"{first.control_id} {first.title} ({', '.join(first.requirement_ids)}): {first.detail}",
        )

    async def protect_systems(self, site: HospitalSite) -> str:
        protected = 0
        for system in site.systems:
            if system.dr_tier < 1:
                continue
            await self._call(
                "backup",
                f"protect {site.system_id(system)}",
                lambda s=system: self._backup.SetProtection(
                    backup_api.SetProtectionRequest(system=self._protection(site, s)),
                    timeout=TIMEOUT_SECONDS,
                ),
            )
            protected += 1
        return f"{protected} systems protected by tier"

    def _protection(self, site: HospitalSite, system: SiteSystem) -> backup_pb.ProtectedSystem:
        """The system's protection: copies to the site's same-city and out-of-province centres
        (other than where it runs), a running standby in its standby cluster when it has one."""
        primary = site.cluster(system.cluster)
        primary_centre = primary.centre_id if primary else ""
        standby = site.cluster(system.standby_cluster) if system.standby_cluster else None
        targets = [
            backup_pb.Target(kind=kind, centre_id=centre)
            for kind, centre in (
                (backup_pb.TARGET_KIND_SAME_CITY_DR, site.same_city_centre_id),
                (backup_pb.TARGET_KIND_OUT_OF_PROVINCE, site.out_of_province_centre_id),
            )
            if centre and centre != primary_centre
        ]
        if standby is not None and standby.centre_id not in {t.centre_id for t in targets}:
            targets.insert(
                0,
                backup_pb.Target(
                    kind=backup_pb.TARGET_KIND_SAME_CITY_DR, centre_id=standby.centre_id
                ),
            )
        namespace = site.member_namespace
        standby_endpoint = (
            backup_pb.Endpoint(
                centre_id=standby.centre_id,
                cluster=system.standby_cluster,
                namespace=namespace,
                workload=system.name,
            )
            if standby is not None
            # No standby runs: the copies' first target is where it would be restored.
            else backup_pb.Endpoint(centre_id=targets[0].centre_id if targets else "")
        )
        return backup_pb.ProtectedSystem(
            hospital_id=site.hospital_id,
            system_id=system.name,
            tier=system.dr_tier,
            rpo_seconds=system.rpo_seconds,
            rto_seconds=system.rto_seconds,
            backup_schedule_seconds=site.schedule_seconds,
            retention_days=site.retention_days,
            targets=targets,
            depends_on=list(system.depends_on),
            driver="kubernetes",
            primary=backup_pb.Endpoint(
                centre_id=primary_centre,
                cluster=system.cluster,
                namespace=namespace,
                workload=system.name,
            ),
            standby=standby_endpoint,
        )

    async def monitoring_state(self, site: HospitalSite) -> StepOutcome:
        reply = await self._call(
            "monitoring",
            "read site health",
            lambda: self._monitoring.ListSiteHealth(
                monitoring_api.ListSiteHealthRequest(), timeout=TIMEOUT_SECONDS
            ),
        )
        health = next((s for s in reply.sites if s.centre_id == site.room_centre_id), None)
        if health is None:
            return StepOutcome(
                False,
                "NoNodeAgents",
                f"no node agent reports from {site.room_centre_id} yet: run medcloud-agent on the "
                "room's nodes (R-7.1 environment monitoring)",
            )
        if health.state == monitoring_pb.SITE_STATE_DOWN:
            return StepOutcome(
                False, "SiteDown", f"{site.room_centre_id} is down ({health.reason})"
            )
        return StepOutcome(
            True,
            "Reporting",
            f"{len(health.nodes_reporting)} node agents in {site.room_centre_id} report",
        )

    async def remove_site(self, site: HospitalSite, keep: frozenset[str]) -> list[str]:
        removed = []
        for system in site.systems:
            system_id = site.system_id(system)
            if await self._current_placement(system_id) is not None:
                await self._call(
                    "scheduling",
                    f"release {system_id}",
                    lambda id=system_id: self._scheduling.ReleasePlacement(
                        scheduling_api.ReleasePlacementRequest(system_id=id),
                        timeout=TIMEOUT_SECONDS,
                    ),
                )
                removed.append(f"placement {system_id}")
        remaining = [system.name for system in site.systems]
        while remaining:  # dependents go first: backup refuses to drop what others need
            progress = False
            for name in list(remaining):
                try:
                    await self._backup.DeleteProtection(
                        backup_api.DeleteProtectionRequest(
                            hospital_id=site.hospital_id, system_id=name
                        ),
                        timeout=TIMEOUT_SECONDS,
                    )
                    removed.append(f"protection {site.hospital_id}/{name}")
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                        continue
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        await self._call("backup", f"unprotect {name}", _raiser(error))
                remaining.remove(name)
                progress = True
            if not progress:
                raise StepFailed("ServiceError", f"backup keeps protections {remaining}")
        for cluster in site.clusters:
            cluster_id = f"{site.hospital_id}-{cluster.name}"
            try:
                await self._inventory.DeleteCluster(
                    inventory_api.DeleteClusterRequest(id=cluster_id), timeout=TIMEOUT_SECONDS
                )
                removed.append(f"cluster {cluster_id}")
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    await self._call("inventory", f"delete cluster {cluster_id}", _raiser(error))
        # The room last: links before the nodes they join, nodes before their centre.
        for kind, ids in (
            ("Link", [link.id for link in site.links]),
            ("NetworkNode", [node_id for node_id, _ in site.nodes]),
            ("Centre", [site.room_centre_id]),
        ):
            delete = getattr(self._inventory, f"Delete{kind}")
            request_type = getattr(inventory_api, f"Delete{kind}Request")
            for object_id in ids:
                if object_id in keep:
                    removed.append(f"kept {kind.lower()} {object_id}: the Region declares it")
                    continue
                try:
                    await delete(request_type(id=object_id), timeout=TIMEOUT_SECONDS)
                    removed.append(f"{kind.lower()} {object_id}")
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                        # The region's own links use it too (the Region declares the room as
                        # well): it stays, as the region's.
                        removed.append(f"kept {kind.lower()} {object_id}: {error.details()}")
                    elif error.code() != grpc.StatusCode.NOT_FOUND:
                        await self._call("inventory", f"delete {kind} {object_id}", _raiser(error))
        return removed


def _link_message(link: Link) -> inventory_pb.Link:
    return inventory_pb.Link(
        id=link.id,
        a_node_id=link.a_node,
        b_node_id=link.b_node,
        purpose=_enum(inventory_pb.LinkPurpose, "LINK_PURPOSE", link.purpose),
        medium=_enum(inventory_pb.LinkMedium, "LINK_MEDIUM", link.medium),
        pairs=[
            inventory_pb.FibrePair(conduit=conduit, up_gbps=up, down_gbps=down)
            for conduit, up, down in link.pairs
        ],
        state=inventory_pb.LINK_STATE_UP,
    )


def _raiser(error: grpc.aio.AioRpcError) -> Callable[[], Awaitable[Any]]:
    async def again() -> Any:
        raise error

    return again
