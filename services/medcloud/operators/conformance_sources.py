"""The evidence of the conformance report for one HospitalSite, gathered over gRPC from the five
services with the caller's certificate (the operator's: a system administrator, who may read
inventory, placements, monitoring and protections and may have the baseline judged, but changes
nothing here unless asked to run an inspection).

Each source is asked on its own: one that cannot be reached, or answers with an error, adds a
`NoEvidence` for its requirements (which the report then shows as unknown, naming the source and
its answer), never an exception. Findings a source gave before it failed are kept."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc

from medcloud.backup.adapters.codecs import facts_from_pb, system_from_pb
from medcloud.backup.domain.plans import RegionFacts
from medcloud.backup.domain.protection import check_protection
from medcloud.backup.v1 import backup_pb2 as backup_pb
from medcloud.backup.v1 import backup_service_pb2 as backup_api
from medcloud.backup.v1 import backup_service_pb2_grpc as backup_grpc
from medcloud.inventory.v1 import inventory_pb2 as inventory_pb
from medcloud.inventory.v1 import inventory_service_pb2 as inventory_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from medcloud.monitoring.v1 import monitoring_pb2 as monitoring_pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as monitoring_api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as monitoring_grpc
from medcloud.operators.conformance import (
    BACKUP,
    INVENTORY,
    JUDGED,
    MONITORING,
    PLATFORM,
    REQUIREMENT_ID,
    SCHEDULING,
    SECURITY,
    Evidence,
    Finding,
    NoEvidence,
    NotApplicable,
    Report,
    Requirement,
    build_report,
    judged_ids,
)
from medcloud.operators.region_services import ServiceAddresses
from medcloud.operators.site import HospitalSite, SiteSystem
from medcloud.runtime.grpc_client import service_channel
from medcloud.runtime.tls import TlsMaterial
from medcloud.scheduling.domain.model import (
    DATABASE_BACKED_KINDS,
    LOW_PRESSURE_KINDS,
    MAX_INSTANCE_MEMORY_GIB,
    MAX_INSTANCE_VCPU,
    StorageClass,
    SystemKind,
)
from medcloud.scheduling.v1 import scheduling_pb2 as scheduling_pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as scheduling_api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc
from medcloud.security.v1 import security_service_pb2 as security_api
from medcloud.security.v1 import security_service_pb2_grpc as security_grpc

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# Monitoring inspects every centre hourly by default; an inspection older than three intervals
# says nothing about the room now.
MAX_INSPECTION_AGE_SECONDS = 3 * 3600.0

# What inventory's ValidateTopology checks (medcloud.inventory.domain.topology.RULES): no finding
# for one of these means the region meets it.
TOPOLOGY_IDS = (
    "R-A.2",
    "R-7.2.2",
    "R-7.2.5",
    "R-A.2.1",
    "R-A.2.2",
    "R-A.2.3",
    "R-A.2.4",
    "R-A.2.5",
    "R-A.2.6",
    "R-7.8a",
    "R-7.8b",
    "R-7.4-0",
    "R-7.3c",
)
# The clause 7.1 rules monitoring's inspection judges, and its "node reports" check.
ENVIRONMENT_IDS = tuple(i for i in judged_ids(MONITORING) if i.startswith("R-7.1-"))
NODE_REPORTS_ID = "R-7.7c"
MONITORING_CAPABILITY_ID = "R-6.5b"
INSPECTION_IDS = (*ENVIRONMENT_IDS, NODE_REPORTS_ID, MONITORING_CAPABILITY_ID)

# From tier 5 up a standby runs: the operator places one (region_services._business_system) and
# backup fails over to it.
STANDBY_FROM_TIER = 5
SAME_CITY_ACTIVE_ACTIVE_TIER = 5
REMOTE_DR_TIER = 6

_DEFAULT_STORAGE = {
    **dict.fromkeys(DATABASE_BACKED_KINDS, StorageClass.BLOCK_FC_SAN),
    SystemKind.PACS_IMAGES: StorageClass.FILE_NAS,
    **dict.fromkeys(LOW_PRESSURE_KINDS, StorageClass.DISTRIBUTED),
}


@dataclass(frozen=True)
class _Options:
    timeout: float
    inspect_now: bool
    max_inspection_age: float


Collect = Callable[[HospitalSite, grpc.aio.Channel, list[Evidence], _Options], Awaitable[None]]


async def gather(
    site: HospitalSite,
    addresses: ServiceAddresses,
    tls: TlsMaterial | None,
    *,
    inspect_now: bool = False,
    call_timeout_seconds: float = TIMEOUT_SECONDS,
    max_inspection_age_seconds: float = MAX_INSPECTION_AGE_SECONDS,
) -> list[Evidence]:
    """Every piece of evidence about `site` (and its region) the services give now: findings,
    what does not apply to the site, and a NoEvidence per source that could not be asked.
    `inspect_now` runs an inspection of the site's room when monitoring holds no recent one
    (that shows the room, but not that inspections run by themselves: R-6.5b stays unknown)."""
    options = _Options(call_timeout_seconds, inspect_now, max_inspection_age_seconds)
    collectors: dict[str, Collect] = {
        INVENTORY: _inventory,
        SCHEDULING: _scheduling,
        SECURITY: _security,
        MONITORING: _monitoring,
        BACKUP: _backup,
    }
    answers = await asyncio.gather(
        *(
            _ask(source, getattr(addresses, source), tls, site, collect, options)
            for source, collect in collectors.items()
        )
    )
    evidence: list[Evidence] = list(not_applicable(site))
    for found in answers:
        evidence.extend(found)
    evidence.extend(_platform(tls, addresses, evidence))
    return evidence


async def report(
    site: HospitalSite,
    addresses: ServiceAddresses,
    tls: TlsMaterial | None,
    requirements: Sequence[Requirement] | None = None,
    *,
    inspect_now: bool = False,
    call_timeout_seconds: float = TIMEOUT_SECONDS,
) -> Report:
    """The site's conformance report: `gather`, then `build_report` over JUDGED."""
    evidence = await gather(
        site, addresses, tls, inspect_now=inspect_now, call_timeout_seconds=call_timeout_seconds
    )
    return build_report(evidence, JUDGED, requirements)


class GrpcConformance:
    """The reconcile core's `ConformanceProbe`: the report's one-line summary for the status."""

    def __init__(
        self,
        addresses: ServiceAddresses,
        tls: TlsMaterial | None,
        requirements: Sequence[Requirement] | None = None,
    ) -> None:
        self._addresses = addresses
        self._tls = tls
        self._requirements = requirements

    async def summary(self, site: HospitalSite) -> str:
        found = await report(site, self._addresses, self._tls, self._requirements)
        return found.summary_line()


async def _ask(
    source: str,
    address: str,
    tls: TlsMaterial | None,
    site: HospitalSite,
    collect: Collect,
    options: _Options,
) -> list[Evidence]:
    found: list[Evidence] = []
    if not address:
        return [NoEvidence(source, f"no address configured for {source}")]
    channel = service_channel(address, tls)
    try:
        await collect(site, channel, found, options)
    except grpc.aio.AioRpcError as error:
        reason = f"{source} at {address} answered {error.code().name}: {error.details()}"
        log.warning("conformance evidence incomplete: %s", reason, extra={"site": site.key})
        found.append(NoEvidence(source, reason))
    except Exception as error:  # a bug or an odd answer must not take the whole report down
        log.exception("conformance source %s failed", source, extra={"site": site.key})
        found.append(NoEvidence(source, f"{source} at {address}: {type(error).__name__}: {error}"))
    finally:
        await channel.close()
    return found


# -- what the spec alone settles -----------------------------------------------------------------


def _kind(system: SiteSystem) -> SystemKind | None:
    try:
        return SystemKind(system.kind)
    except ValueError:
        return None


def not_applicable(site: HospitalSite) -> list[NotApplicable]:
    """Requirements about kinds of system or DR tiers the site does not have."""
    subject = f"site/{site.hospital_id}"
    kinds = {_kind(system) for system in site.systems}
    tiers = {system.dr_tier for system in site.systems}
    exempt: list[tuple[str, str]] = []
    if not site.systems:
        nothing = "the site declares no business system"
        exempt += [(requirement_id, nothing) for requirement_id in judged_ids(SCHEDULING)]
        exempt += [(requirement_id, nothing) for requirement_id in judged_ids(BACKUP)]
    else:
        if not kinds & DATABASE_BACKED_KINDS:
            exempt += [
                (
                    requirement_id,
                    "no database-backed system (HIS, EMR, LIS, RIS, PACS database, "
                    "CDR, clinical pathway)",
                )
                for requirement_id in ("R-7.4a", "R-7.9.4")
            ]
        if SystemKind.PACS_IMAGES not in kinds:
            exempt.append(("R-7.4b", "no PACS image archive"))
        if not kinds & LOW_PRESSURE_KINDS:
            exempt.append(("R-7.4c", "no portal, e-mail or OA system"))
        if SAME_CITY_ACTIVE_ACTIVE_TIER not in tiers:
            exempt.append(("R-7.6b", "no system at tier 5 (same-city active-active)"))
        if max(tiers) < REMOTE_DR_TIER:
            exempt.append(("R-7.6c", "no system at tier 6 or above (remote zero-data-loss DR)"))
        if max(tiers) < STANDBY_FROM_TIER:
            exempt.append(("R-7.9.9", "no system runs a standby (none at tier 5 or above)"))
    return [NotApplicable(i, reason, "site", subject) for i, reason in exempt]


# -- inventory ------------------------------------------------------------------------------------


def _cluster_id(site: HospitalSite, name: str) -> str:
    # As region_services registers a site's cluster.
    return f"{site.hospital_id}-{name}"


async def _inventory(
    site: HospitalSite, channel: grpc.aio.Channel, found: list[Evidence], options: _Options
) -> None:
    stub = inventory_grpc.InventoryServiceStub(channel)
    reply = await stub.ValidateTopology(
        inventory_api.ValidateTopologyRequest(), timeout=options.timeout
    )
    breached = set()
    for finding in reply.findings:
        breached.add(finding.requirement_id)
        found.append(
            Finding(finding.requirement_id, finding.subject, False, finding.message, INVENTORY)
        )
    for requirement_id in TOPOLOGY_IDS:
        if requirement_id not in breached:
            found.append(
                Finding(
                    requirement_id,
                    "region",
                    True,
                    "ValidateTopology finds no breach in the region",
                    INVENTORY,
                )
            )

    registered: list[inventory_pb.Cluster] = []
    for declared in site.clusters:
        cluster_id = _cluster_id(site, declared.name)
        subject = f"cluster/{cluster_id}"
        try:
            cluster = (
                await stub.GetCluster(
                    inventory_api.GetClusterRequest(id=cluster_id), timeout=options.timeout
                )
            ).cluster
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            found.append(
                Finding(
                    "R-5.5",
                    subject,
                    False,
                    "not registered in inventory: the management plane does not govern it",
                    INVENTORY,
                )
            )
            continue
        registered.append(cluster)
        found.append(
            Finding(
                "R-5.5",
                subject,
                True,
                f"registered in inventory, in centre {cluster.centre_id}",
                INVENTORY,
            )
        )
    if not site.clusters:
        found.append(NotApplicable("R-5.5", "the site declares no cluster", INVENTORY))

    roles: dict[str, int] = {}
    for centre_id in sorted({cluster.centre_id for cluster in registered}):
        try:
            centre = (
                await stub.GetCentre(
                    inventory_api.GetCentreRequest(id=centre_id), timeout=options.timeout
                )
            ).centre
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            continue
        roles[centre_id] = centre.role
    carrier = {
        inventory_pb.CENTRE_ROLE_CARRIER_PRODUCTION,
        inventory_pb.CENTRE_ROLE_CARRIER_STANDBY,
    }
    private = [
        c.id
        for c in registered
        if c.ownership == inventory_pb.OWNERSHIP_PRIVATE
        and c.centre_id == site.room_centre_id
        and roles.get(c.centre_id) == inventory_pb.CENTRE_ROLE_HOSPITAL_ROOM
    ]
    public = [
        c.id
        for c in registered
        if c.ownership == inventory_pb.OWNERSHIP_PUBLIC and roles.get(c.centre_id) in carrier
    ]
    missing = []
    if not private:
        missing.append(f"no private cluster in its hospital room {site.room_centre_id}")
    if not public:
        missing.append("no public cluster in a carrier room")
    found.append(
        Finding(
            "R-7.2.1",
            f"site/{site.hospital_id}",
            not missing,
            (
                f"private cloud {', '.join(private)} in the hospital room and the carrier's "
                f"public cloud {', '.join(public)} form the hybrid cloud"
            )
            if not missing
            else "inventory registers " + " and ".join(missing) + ", so no hybrid cloud",
            INVENTORY,
        )
    )


# -- scheduling -----------------------------------------------------------------------------------


def _storage(system: SiteSystem, placement: scheduling_pb.Placement) -> StorageClass | None:
    value = placement.system.storage_class
    if value != scheduling_pb.STORAGE_CLASS_UNSPECIFIED:
        name = scheduling_pb.StorageClass.Name(value).removeprefix("STORAGE_CLASS_")
        return StorageClass(name.lower().replace("_", "-"))
    kind = _kind(system)
    return _DEFAULT_STORAGE.get(kind) if kind else None


def _applicable(system: SiteSystem) -> tuple[str, ...]:
    """The scheduling requirements that speak about this system."""
    kind = _kind(system)
    ids = ["R-7.3a", "R-7.3c"]
    if kind in DATABASE_BACKED_KINDS:
        ids += ["R-7.4a", "R-7.9.4"]
    if kind is SystemKind.PACS_IMAGES:
        ids.append("R-7.4b")
    if kind in LOW_PRESSURE_KINDS:
        ids.append("R-7.4c")
    if system.dr_tier >= STANDBY_FROM_TIER:
        ids.append("R-7.9.9")
    if system.dr_tier == SAME_CITY_ACTIVE_ACTIVE_TIER:
        ids.append("R-7.6b")
    if system.dr_tier >= REMOTE_DR_TIER:
        ids.append("R-7.6c")
    return tuple(ids)


async def _scheduling(
    site: HospitalSite, channel: grpc.aio.Channel, found: list[Evidence], options: _Options
) -> None:
    stub = scheduling_grpc.SchedulingServiceStub(channel)
    for system in site.systems:
        system_id = site.system_id(system)
        try:
            reply = await stub.GetPlacement(
                scheduling_api.GetPlacementRequest(system_id=system_id), timeout=options.timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            found.append(
                NoEvidence(
                    SCHEDULING,
                    f"{system_id} has no placement (not placed yet)",
                    _applicable(system),
                    f"system/{system_id}",
                )
            )
            continue
        found.extend(placement_evidence(system, system_id, reply.placement))


def placement_evidence(
    system: SiteSystem, system_id: str, placement: scheduling_pb.Placement
) -> list[Evidence]:
    """What one placement shows: each rule that applies to the system met by where its instances
    run, or the rules that left an instance without a host."""
    subject = f"system/{system_id}"
    evidence: list[Evidence] = []

    def judge(requirement_id: str, passed: bool, message: str) -> None:
        evidence.append(Finding(requirement_id, subject, passed, message, SCHEDULING))

    applicable = _applicable(system)
    placed = placement.system
    if (placed.dr_tier, placed.vcpu, placed.memory_gib) != (
        system.dr_tier,
        system.vcpu,
        system.memory_gib,
    ):
        # The spec changed and the operator has not placed the system again yet.
        return [
            NoEvidence(
                SCHEDULING,
                f"the placement of {system_id} (tier {placed.dr_tier}, {placed.vcpu} vCPU, "
                f"{placed.memory_gib} GiB) is not of the site's spec (tier {system.dr_tier}, "
                f"{system.vcpu} vCPU, {system.memory_gib} GiB) yet",
                applicable,
                subject,
            )
        ]
    unplaced = [e for e in placement.explanation if not e.chosen_host_id]
    refused: set[str] = set()
    for explanation in unplaced:
        for removal in explanation.removed:
            if removal.requirement_id and removal.requirement_id not in refused:
                refused.add(removal.requirement_id)
                judge(
                    removal.requirement_id,
                    False,
                    f"no host for an instance: {explanation.summary or placement.message}",
                )
    if placement.state == scheduling_pb.PLACEMENT_STATE_FAILED:
        rest = tuple(i for i in applicable if i not in refused)
        if rest:
            evidence.append(
                NoEvidence(
                    SCHEDULING, f"{system_id} failed to place: {placement.message}", rest, subject
                )
            )
        return evidence
    if placement.state == scheduling_pb.PLACEMENT_STATE_DEGRADED and "R-7.3a" not in refused:
        refused.add("R-7.3a")
        judge("R-7.3a", False, f"degraded: {placement.message}")

    by_role: dict[int, list[scheduling_pb.Assignment]] = {}
    for assignment in placement.assignments:
        by_role.setdefault(assignment.instance.role, []).append(assignment)
    primaries = by_role.get(scheduling_pb.ROLE_PRIMARY, [])
    standbys = by_role.get(scheduling_pb.ROLE_STANDBY, [])
    replicas = by_role.get(scheduling_pb.ROLE_REPLICA, [])
    hosts = Counter(a.host_id for a in placement.assignments)

    if "R-7.3a" not in refused:
        crowded = [(host, count) for host, count in hosts.items() if count > 1]
        if crowded:
            host, count = crowded[0]
            judge("R-7.3a", False, f"host {host} holds {count} instances: losing it loses them")
        elif len(placement.assignments) < 2:
            judge("R-7.3a", False, "a single instance: losing its host stops the system")
        else:
            judge("R-7.3a", True, f"{len(placement.assignments)} instances on as many hosts")

    vcpu, memory = placement.system.vcpu, placement.system.memory_gib
    judge(
        "R-7.3c",
        vcpu <= MAX_INSTANCE_VCPU and memory <= MAX_INSTANCE_MEMORY_GIB,
        f"{vcpu} vCPU and {memory} GiB per instance (at most {MAX_INSTANCE_VCPU} vCPU and "
        f"{MAX_INSTANCE_MEMORY_GIB} GiB)",
    )

    storage = _storage(system, placement)
    pools = sorted({a.pool_id for a in placement.assignments if a.pool_id})
    stored = f"on {storage.value if storage else 'no'} storage" + (
        f" (pools {', '.join(pools)})" if pools else ""
    )
    for requirement_id, wanted in (
        ("R-7.4a", StorageClass.BLOCK_FC_SAN),
        ("R-7.4b", StorageClass.FILE_NAS),
        ("R-7.4c", StorageClass.DISTRIBUTED),
    ):
        if requirement_id in applicable and requirement_id not in refused:
            judge(requirement_id, storage is wanted, f"{stored}; wanted {wanted.value}")

    if "R-7.9.4" in applicable and "R-7.9.4" not in refused:
        judge(
            "R-7.9.4",
            bool(primaries) and bool(replicas or standbys),
            f"{len(primaries)} primary, {len(replicas)} replica and {len(standbys)} standby "
            "instances"
            + ("" if replicas or standbys else ": a single database; rework to primary/replica"),
        )

    primary_hosts = {a.host_id for a in primaries}
    primary_centres = sorted({a.centre_id for a in primaries})
    if "R-7.9.9" in applicable and "R-7.9.9" not in refused:
        shared = sorted(primary_hosts & {a.host_id for a in standbys})
        if not standbys:
            judge("R-7.9.9", False, "no standby placed")
        else:
            judge(
                "R-7.9.9",
                not shared,
                f"a primary and a standby share host {shared[0]}"
                if shared
                else "primaries and standbys on different hosts",
            )
    for requirement_id, what in (
        ("R-7.6b", "in the primaries' city"),
        ("R-7.6c", "in another city"),
    ):
        if requirement_id not in applicable or requirement_id in refused:
            continue
        standby_centres = sorted({a.centre_id for a in standbys})
        together = sorted(set(standby_centres) & set(primary_centres))
        if not standbys:
            judge(requirement_id, False, f"tier {system.dr_tier} but no standby placed")
        else:
            judge(
                requirement_id,
                not together,
                f"standby in {', '.join(standby_centres)}, primaries in "
                f"{', '.join(primary_centres)}"
                + (f": both in {together[0]}" if together else f" (standby {what})"),
            )
    return evidence


# -- security -------------------------------------------------------------------------------------


async def _security(
    site: HospitalSite, channel: grpc.aio.Channel, found: list[Evidence], options: _Options
) -> None:
    stub = security_grpc.SecurityServiceStub(channel)
    reply = await stub.EvaluateBaseline(
        security_api.EvaluateBaselineRequest(site_id=site.hospital_id), timeout=options.timeout
    )
    subject = f"site/{site.hospital_id}"
    for control in reply.findings:
        message = f"{control.control_id} {control.title}: {control.detail}"
        for requirement_id in control.requirement_ids:
            found.append(Finding(requirement_id, subject, control.passed, message, SECURITY))


# -- monitoring -----------------------------------------------------------------------------------


async def _monitoring(
    site: HospitalSite, channel: grpc.aio.Channel, found: list[Evidence], options: _Options
) -> None:
    stub = monitoring_grpc.MonitoringServiceStub(channel)
    rules = (await stub.ListRules(monitoring_api.ListRulesRequest(), timeout=options.timeout)).rules
    capability = [rule for rule in rules if rule.requirement_id == MONITORING_CAPABILITY_ID]
    for rule in rules:
        if not rule.enabled and rule.requirement_id in INSPECTION_IDS:
            found.append(
                Finding(
                    rule.requirement_id,
                    f"rule/{rule.id}",
                    False,
                    f"disabled in this region: monitoring no longer judges {rule.description}",
                    MONITORING,
                )
            )
    if capability and all(rule.enabled for rule in capability):
        found.append(
            Finding(
                MONITORING_CAPABILITY_ID,
                "rules",
                True,
                "capacity and performance rules enabled: "
                + ", ".join(rule.id for rule in capability),
                MONITORING,
            )
        )

    centre = site.room_centre_id
    subject = f"centre/{centre}"
    inspection: monitoring_pb.InspectionReport | None = None
    try:
        inspection = (
            await stub.GetInspectionReport(
                monitoring_api.GetInspectionReportRequest(centre_id=centre),
                timeout=options.timeout,
            )
        ).report
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
    if inspection is None:
        missing = f"no inspection of centre {centre} yet"
    else:
        age = time.time() - inspection.inspected_at.ToSeconds()
        missing = (
            f"the latest inspection of centre {centre} is {age / 3600:.1f} h old (more than "
            f"{options.max_inspection_age / 3600:g} h)"
            if age > options.max_inspection_age
            else ""
        )
    if missing and not options.inspect_now:
        found.append(NoEvidence(MONITORING, missing, INSPECTION_IDS, subject))
        return
    if missing:
        inspection = (
            await stub.RunInspection(
                monitoring_api.RunInspectionRequest(centre_id=centre), timeout=options.timeout
            )
        ).report
        # What was run on demand shows the room, not that inspections run by themselves.
        found.append(
            NoEvidence(
                MONITORING,
                f"{missing}: no automated inspection to show, one ran on demand",
                (MONITORING_CAPABILITY_ID,),
                subject,
            )
        )
    else:
        assert inspection is not None
        inspected = inspection.inspected_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
        found.append(
            Finding(
                MONITORING_CAPABILITY_ID,
                subject,
                True,
                f"inspected automatically at {inspected}: {len(inspection.checks)} checks",
                MONITORING,
            )
        )
    for check in inspection.checks:
        found.append(
            Finding(
                check.requirement_id,
                f"node/{check.node_id}" if check.node_id else subject,
                check.passed,
                check.detail,
                MONITORING,
            )
        )
    if not any(check.requirement_id == NODE_REPORTS_ID for check in inspection.checks):
        found.append(
            Finding(
                NODE_REPORTS_ID,
                subject,
                False,
                f"no node agent of centre {centre} has reported: nothing monitors its nodes",
                MONITORING,
            )
        )


# -- backup ---------------------------------------------------------------------------------------


async def _backup(
    site: HospitalSite, channel: grpc.aio.Channel, found: list[Evidence], options: _Options
) -> None:
    stub = backup_grpc.BackupServiceStub(channel)
    facts = facts_from_pb(
        (
            await stub.GetRegionFacts(backup_api.GetRegionFactsRequest(), timeout=options.timeout)
        ).facts
    )
    reply = await stub.ListProtections(
        backup_api.ListProtectionsRequest(hospital_id=site.hospital_id), timeout=options.timeout
    )
    protections = {p.system_id: p for p in reply.systems}
    cities = {centre.id: centre.city for centre in facts.centres}
    for system in site.systems:
        found.extend(protection_evidence(site, system, protections.get(system.name), facts, cities))


def _tier_requirement(tier: int) -> str:
    if tier >= REMOTE_DR_TIER:
        return "R-7.6c"
    return "R-7.6b" if tier == SAME_CITY_ACTIVE_ACTIVE_TIER else "R-7.2.5"


def protection_evidence(
    site: HospitalSite,
    system: SiteSystem,
    protection: backup_pb.ProtectedSystem | None,
    facts: RegionFacts,
    cities: dict[str, str],
) -> list[Evidence]:
    """What backup shows about one system: covered, copied out of the province, to a same-city
    and another-city DR centre, its tier still feasible against the region's facts, its scheduled
    copies in place."""
    subject = f"system/{site.system_id(system)}"

    def finding(requirement_id: str, passed: bool, message: str) -> Finding:
        return Finding(requirement_id, subject, passed, message, BACKUP)

    if protection is None:
        why = (
            "drTier 0 keeps no copy away from the primary site"
            if system.dr_tier < 1
            else f"the site asks tier {system.dr_tier}"
        )
        missing = f"no protection at the backup centre ({why})"
        ids = {"R-7.2.5", "R-7.3-arch", _tier_requirement(system.dr_tier)}
        return [finding(i, False, missing) for i in sorted(ids)]

    evidence: list[Evidence] = []
    try:
        violations = check_protection(system_from_pb(protection), facts)
    except Exception as error:  # an unreadable record is a failure to show, not a crash
        return [finding("R-7.2.5", False, f"unreadable protection: {error}")]
    for violation in violations:
        ids = REQUIREMENT_ID.findall(violation.description) or ["R-7.2.5"]
        for requirement_id in dict.fromkeys(ids):
            evidence.append(
                finding(
                    requirement_id,
                    False,
                    f"infeasible now: {violation.field} {violation.description}",
                )
            )
    if protection.tier != system.dr_tier:
        evidence.append(
            finding(
                _tier_requirement(system.dr_tier),
                False,
                f"protected at tier {protection.tier}, the site asks tier {system.dr_tier}",
            )
        )

    kinds = {target.kind: target.centre_id for target in reversed(protection.targets)}
    out_of_province = kinds.get(backup_pb.TARGET_KIND_OUT_OF_PROVINCE)
    evidence.append(
        finding(
            "R-7.2.5",
            out_of_province is not None,
            f"tier {protection.tier} ({protection.replication_mode}), data-level copy out of the "
            f"province in {out_of_province}"
            if out_of_province
            else f"tier {protection.tier}, but no copy at an out-of-province node",
        )
    )
    evidence.append(
        finding(
            "R-7.2.5",
            protection.copies_scheduled,
            f"scheduled copies: {protection.schedule_status or 'in place'}"
            if protection.copies_scheduled
            else f"scheduled copies not in place: {protection.schedule_status or 'not tried yet'}",
        )
    )

    primary_city = cities.get(protection.primary.centre_id, "")
    same_city = kinds.get(backup_pb.TARGET_KIND_SAME_CITY_DR)
    elsewhere = [
        t.centre_id
        for t in protection.targets
        if t.kind != backup_pb.TARGET_KIND_COLD_TIER
        and cities.get(t.centre_id, primary_city) != primary_city
    ]
    # Every system keeps a data-level copy in another city; application-level DR (a standby
    # that runs) exists from tier 5 up, and the architecture puts it in the same city.
    application_level = protection.tier >= STANDBY_FROM_TIER
    gaps = []
    if application_level and same_city is None:
        gaps.append(f"tier {protection.tier} runs a standby but has no same-city DR centre")
    if not elsewhere:
        gaps.append("no DR centre in another city (data level)")
    if gaps:
        arch = "; ".join(gaps)
    elif application_level:
        arch = f"application-level DR in {same_city}, data-level DR in {', '.join(elsewhere)}"
    else:
        arch = f"data-level DR in {', '.join(elsewhere)} (tier {protection.tier}: no standby runs)"
    evidence.append(finding("R-7.3-arch", not gaps, arch))
    if not violations and protection.tier == system.dr_tier:
        if system.dr_tier == SAME_CITY_ACTIVE_ACTIVE_TIER:
            evidence.append(
                finding(
                    "R-7.6b",
                    True,
                    f"tier 5 ({protection.replication_mode}) to {same_city}, feasible over the "
                    "region's links now",
                )
            )
        elif system.dr_tier >= REMOTE_DR_TIER:
            evidence.append(
                finding(
                    "R-7.6c",
                    True,
                    f"tier {system.dr_tier} ({protection.replication_mode}) to "
                    f"{', '.join(elsewhere)}, feasible over the region's links now",
                )
            )
    return evidence


# -- the platform ---------------------------------------------------------------------------------


def _platform(
    tls: TlsMaterial | None, addresses: ServiceAddresses, evidence: Iterable[Evidence]
) -> list[Evidence]:
    """Whether the operator itself reaches the services over mutual TLS (their servers require
    a client certificate, so an answer over a secure channel proves it)."""
    if tls is None:
        return [
            Finding(
                "R-7.5c",
                "platform",
                False,
                "the operator reaches the services in plaintext: no TLS material configured",
                PLATFORM,
            )
        ]
    down = {
        item.source
        for item in evidence
        if isinstance(item, NoEvidence) and not item.requirement_ids
    }
    answered = [s for s in (INVENTORY, SCHEDULING, SECURITY, MONITORING, BACKUP) if s not in down]
    if not answered:
        return [NoEvidence(PLATFORM, "no service answered the operator")]
    return [
        Finding(
            "R-7.5c",
            f"platform/{source}",
            True,
            f"{source} at {getattr(addresses, source)} answered over mutual TLS",
            PLATFORM,
        )
        for source in answered
    ]
