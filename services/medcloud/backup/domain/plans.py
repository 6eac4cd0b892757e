"""Protection policies checked against what the region can carry, and DR plans that fail systems
over in dependency order."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass

from medcloud.backup.domain.tiers import (
    MAX_TIER,
    MIN_TIER,
    SAME_CITY_ACTIVE_ACTIVE_TIER,
    SYNCHRONOUS_MODES,
    ZERO_DATA_LOSS_TIER,
    ReplicationMode,
    TierProfile,
    profile,
)
from medcloud.core.errors import FieldViolation, InvalidArgument

# Synchronous replication (Tiers 5-7) holds every write until the far side acknowledges it. Light
# in fibre covers about 200 km per ms, so 100 km of path costs 1 ms of round trip per write, which
# is as much as a latency-critical database on FC-SAN (R-7.4a) can absorb; farther means async only.
MAX_SYNC_DISTANCE_KM = 100.0

# Backups must outlive the time it takes to notice a silent corruption or ransomware: a month covers
# the monthly audit cycle (R-7.5b audit and tracing after the fact). Our choice, not the standard's.
MIN_RETENTION_DAYS = 30


class TargetKind(enum.Enum):
    """Where a copy goes (R-7.3-arch: application-level DR in the same city, data-level DR in
    another city; R-7.2.5: data-level DR at an out-of-province node; R-7.4d: cold storage)."""

    SAME_CITY_DR = "same-city-dr"
    OUT_OF_PROVINCE = "out-of-province"
    COLD_TIER = "cold-tier"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    centre_id: str


@dataclass(frozen=True)
class ProtectionPolicy:
    """How one business system is protected. `backup_schedule_seconds` is the interval between
    point-in-time copies: the RPO itself for scheduled-copy tiers, and the guard against corruption
    that replication would copy faithfully for the others."""

    system_id: str
    tier: int
    rpo_seconds: int
    rto_seconds: int
    backup_schedule_seconds: int
    retention_days: int
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Centre:
    id: str
    city: str
    province: str


@dataclass(frozen=True)
class Link:
    """A network link between two centres, usable both ways."""

    a: str
    b: str
    bandwidth_gbps: float
    distance_km: float
    up: bool = True

    def other_end(self, centre_id: str) -> str:
        return self.b if centre_id == self.a else self.a

    def __str__(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass(frozen=True)
class RegionFacts:
    """What the feasibility check needs to know about the region."""

    centres: tuple[Centre, ...]
    links: tuple[Link, ...]

    def centre(self, centre_id: str) -> Centre | None:
        return next((c for c in self.centres if c.id == centre_id), None)


@dataclass(frozen=True)
class _Path:
    centre_ids: tuple[str, ...]
    links: tuple[Link, ...]
    distance_km: float

    def __str__(self) -> str:
        return "-".join(self.centre_ids)


def _shortest_path(
    facts: RegionFacts, source: str, destination: str, min_bandwidth_gbps: float
) -> _Path | None:
    """Dijkstra over the links that are up and carry at least `min_bandwidth_gbps`; ties go to the
    path whose centre ids sort first, so the answer does not depend on the order of
    `facts.links`."""
    queue: list[tuple[float, tuple[str, ...], tuple[Link, ...]]] = [(0.0, (source,), ())]
    settled: set[str] = set()
    while queue:
        distance_km, centre_ids, links = heapq.heappop(queue)
        here = centre_ids[-1]
        if here == destination:
            return _Path(centre_ids, links, distance_km)
        if here in settled:
            continue
        settled.add(here)
        for link in facts.links:
            if here not in (link.a, link.b) or not link.up:
                continue
            if link.bandwidth_gbps < min_bandwidth_gbps:
                continue
            there = link.other_end(here)
            if there not in settled:
                heapq.heappush(
                    queue, (distance_km + link.distance_km, (*centre_ids, there), (*links, link))
                )
    return None


def _reach_problem(
    facts: RegionFacts, primary: str, target: str, write_rate_mbps: float, synchronous: bool
) -> str | None:
    """Why replication from `primary` to `target` cannot keep up, or None if it can. Every mode that
    replicates over the network must ship the writes as fast as they arrive, or the copy falls
    further behind without bound; synchronous modes must also stay within the distance budget."""
    needed_gbps = write_rate_mbps / 1000
    path = _shortest_path(facts, primary, target, needed_gbps)
    if path is None:
        any_path = _shortest_path(facts, primary, target, 0.0)
        if any_path is None:
            return f"no working link path from {primary} to {target} (links missing or down)"
        narrowest = min(any_path.links, key=lambda link: (link.bandwidth_gbps, str(link)))
        return (
            f"no link path from {primary} to {target} carries the write rate of "
            f"{write_rate_mbps:g} Mbps: link {narrowest} on path {any_path} has "
            f"{narrowest.bandwidth_gbps:g} Gbps"
        )
    if synchronous and path.distance_km > MAX_SYNC_DISTANCE_KM:
        return (
            f"the shortest path {path} is {path.distance_km:g} km, beyond the "
            f"{MAX_SYNC_DISTANCE_KM:g} km that synchronous replication allows (1 ms round trip)"
        )
    return None


def _target_violations(
    policy: ProtectionPolicy, facts: RegionFacts, primary: Centre
) -> Iterator[tuple[int, FieldViolation]]:
    seen: set[Target] = set()
    for index, target in enumerate(policy.targets):
        field_name = f"policy.targets[{index}].centre_id"
        centre = facts.centre(target.centre_id)
        if target in seen:
            yield index, FieldViolation(f"policy.targets[{index}]", "appears twice")
        seen.add(target)
        if centre is None:
            yield index, FieldViolation(field_name, f"no centre {target.centre_id!r} in the region")
        elif centre.id == primary.id:
            yield (
                index,
                FieldViolation(
                    field_name, "is the primary centre: a copy there dies with the primary site"
                ),
            )
        elif target.kind is TargetKind.SAME_CITY_DR and centre.city != primary.city:
            yield (
                index,
                FieldViolation(
                    field_name,
                    f"a same-city DR target must be in {primary.city}, the primary's city; "
                    f"{centre.id} is in {centre.city} (R-7.3-arch)",
                ),
            )
        elif target.kind is TargetKind.OUT_OF_PROVINCE and centre.province == primary.province:
            yield (
                index,
                FieldViolation(
                    field_name,
                    f"an out-of-province target must be outside {primary.province}, the primary's "
                    f"province; {centre.id} is inside it (R-7.2.5)",
                ),
            )


def _tier_target_violations(
    policy: ProtectionPolicy,
    tier: TierProfile,
    facts: RegionFacts,
    primary: Centre,
    usable: list[tuple[int, Target, Centre]],
    write_rate_mbps: float,
) -> Iterator[FieldViolation]:
    """The tier's own demand on the targets: some target it can replicate to as it must."""
    if tier.tier >= ZERO_DATA_LOSS_TIER:
        what, requirement = f"synchronous mirroring (Tier {tier.tier})", "R-7.6c"
        candidates = [
            (i, c)
            for i, t, c in usable
            if t.kind is not TargetKind.COLD_TIER and c.city != primary.city
        ]
        if not candidates:
            yield FieldViolation(
                "policy.targets",
                f"tier {tier.tier} needs a target in a city other than {primary.city} to mirror "
                f"to synchronously ({requirement}); none among the targets",
            )
            return
    elif tier.tier == SAME_CITY_ACTIVE_ACTIVE_TIER:
        what, requirement = "two-site two-phase commit (Tier 5)", "R-7.6b"
        candidates = [(i, c) for i, t, c in usable if t.kind is TargetKind.SAME_CITY_DR]
        if not candidates:
            yield FieldViolation(
                "policy.targets",
                f"tier 5 needs a same-city DR target in another centre of {primary.city} "
                "(R-7.6b, R-7.2.2); none among the targets",
            )
            return
    elif tier.tier >= 3:
        # Tiers 1-2 ship media by road; from Tier 3 on, copies travel over the network.
        what, requirement = f"replication at tier {tier.tier}", "R-7.2.5"
        candidates = [(i, c) for i, t, c in usable if t.kind is not TargetKind.COLD_TIER]
        if not candidates:
            yield FieldViolation(
                "policy.targets",
                f"tier {tier.tier} sends copies over the network and needs a DR target that is "
                f"not cold storage ({requirement}); none among the targets",
            )
            return
    else:
        return
    synchronous = tier.mode in SYNCHRONOUS_MODES
    problems = [
        (index, _reach_problem(facts, primary.id, centre.id, write_rate_mbps, synchronous))
        for index, centre in candidates
    ]
    if all(problem is not None for _, problem in problems):
        for index, problem in problems:
            yield FieldViolation(
                f"policy.targets[{index}].centre_id",
                f"{what} to {policy.targets[index].centre_id} is infeasible: {problem} "
                f"({requirement})",
            )


def check_policy(
    policy: ProtectionPolicy,
    facts: RegionFacts,
    primary_centre_id: str,
    write_rate_mbps: float,
) -> list[FieldViolation]:
    """Every reason the region cannot honour `policy` for a system whose primary runs in
    `primary_centre_id` and writes `write_rate_mbps` megabits per second; empty if it can."""
    violations: list[FieldViolation] = []
    if write_rate_mbps < 0:
        violations.append(
            FieldViolation("write_rate_mbps", f"must be 0 or more, got {write_rate_mbps:g}")
        )
    if policy.retention_days < MIN_RETENTION_DAYS:
        violations.append(
            FieldViolation(
                "policy.retention_days",
                f"must be at least {MIN_RETENTION_DAYS} days, long enough to notice a silent "
                f"corruption before its last clean copy expires, got {policy.retention_days}",
            )
        )
    if policy.backup_schedule_seconds <= 0:
        violations.append(
            FieldViolation(
                "policy.backup_schedule_seconds",
                f"must be greater than 0, got {policy.backup_schedule_seconds}",
            )
        )
    if policy.rto_seconds < 0:
        violations.append(
            FieldViolation("policy.rto_seconds", f"must be 0 or more, got {policy.rto_seconds}")
        )
    if policy.rpo_seconds < 0:
        violations.append(
            FieldViolation("policy.rpo_seconds", f"must be 0 or more, got {policy.rpo_seconds}")
        )
    if not MIN_TIER <= policy.tier <= MAX_TIER:
        violations.append(
            FieldViolation(
                "policy.tier",
                f"must be a SHARE78 tier from {MIN_TIER} to {MAX_TIER}, got {policy.tier}",
            )
        )
        return violations
    tier = profile(policy.tier)
    if tier.mode is ReplicationMode.NONE:
        violations.append(
            FieldViolation(
                "policy.tier",
                "tier 0 keeps no copy away from the primary site, yet the backup centre must "
                "cover every system (R-7.2.5): choose tier 1 or above",
            )
        )
        return violations
    violations.extend(_recovery_violations(policy, tier))

    primary = facts.centre(primary_centre_id)
    if primary is None:
        violations.append(
            FieldViolation("primary_centre_id", f"no centre {primary_centre_id!r} in the region")
        )
        return violations
    if not policy.targets:
        violations.append(
            FieldViolation(
                "policy.targets",
                f"tier {tier.tier} keeps a copy away from the primary site, so it needs at least "
                "one target (R-7.2.5)",
            )
        )
        return violations
    target_problems = list(_target_violations(policy, facts, primary))
    violations.extend(violation for _, violation in target_problems)
    broken = {index for index, _ in target_problems}
    usable = [
        (index, target, centre)
        for index, target in enumerate(policy.targets)
        if index not in broken and (centre := facts.centre(target.centre_id)) is not None
    ]
    violations.extend(
        _tier_target_violations(policy, tier, facts, primary, usable, max(write_rate_mbps, 0))
    )
    return violations


def _recovery_violations(policy: ProtectionPolicy, tier: TierProfile) -> Iterator[FieldViolation]:
    assert tier.best_rpo_seconds is not None and tier.best_rto_seconds is not None
    label = f"tier {tier.tier} ({tier.name}, GB/T 20988 level {tier.gbt20988_level})"
    scheduled = tier.mode is ReplicationMode.SCHEDULED_COPY
    if policy.rpo_seconds == 0 and tier.best_rpo_seconds > 0:
        if scheduled:
            loss = (
                f"scheduled copies every {policy.backup_schedule_seconds} s lose up to "
                f"{policy.backup_schedule_seconds} s"
            )
        else:
            loss = f"{label} can lose up to {tier.best_rpo_seconds} s"
        yield FieldViolation(
            "policy.rpo_seconds", f"0 needs synchronous mirroring (Tier 6); {loss} (R-7.6c)"
        )
    elif 0 < policy.rpo_seconds < tier.best_rpo_seconds:
        yield FieldViolation(
            "policy.rpo_seconds",
            f"{label} can promise at best {tier.best_rpo_seconds} s, got {policy.rpo_seconds}",
        )
    elif scheduled and policy.backup_schedule_seconds > policy.rpo_seconds > 0:
        yield FieldViolation(
            "policy.backup_schedule_seconds",
            f"copies every {policy.backup_schedule_seconds} s can lose up to that much, more than "
            f"rpo_seconds {policy.rpo_seconds}",
        )
    if 0 <= policy.rto_seconds < tier.best_rto_seconds:
        yield FieldViolation(
            "policy.rto_seconds",
            f"{label} can promise at best {tier.best_rto_seconds} s, got {policy.rto_seconds}",
        )


@dataclass(frozen=True)
class PlanStep:
    system_id: str
    depends_on: frozenset[str]


@dataclass(frozen=True)
class DrPlan:
    """A hospital's failover plan: its systems in the order they fail over (R-7.6a)."""

    hospital_id: str
    steps: tuple[PlanStep, ...]

    @classmethod
    def build(cls, hospital_id: str, systems: Mapping[str, Set[str]]) -> DrPlan:
        """Order `systems` (each mapped to the systems it needs); InvalidArgument as for
        `order_failover`."""
        return cls(
            hospital_id,
            tuple(
                PlanStep(system_id, frozenset(systems[system_id]))
                for system_id in order_failover(systems)
            ),
        )

    def step(self, system_id: str) -> PlanStep | None:
        return next((s for s in self.steps if s.system_id == system_id), None)


def order_failover(systems: Mapping[str, Set[str]]) -> list[str]:
    """The systems in an order where each comes after everything it depends on (databases before
    the applications that need them); among those free to go, the smallest id first, so the same
    input always gives the same plan. InvalidArgument names an unknown dependency or a cycle."""
    unknown = [
        FieldViolation(f"systems[{system_id}].depends_on", f"names unknown system {dep!r}")
        for system_id in sorted(systems)
        for dep in sorted(systems[system_id])
        if dep not in systems
    ]
    if unknown:
        raise InvalidArgument(unknown)
    waiting_on = {system_id: set(deps) for system_id, deps in systems.items()}
    dependents: dict[str, set[str]] = {system_id: set() for system_id in systems}
    for system_id, deps in systems.items():
        for dep in deps:
            dependents[dep].add(system_id)
    ready = [system_id for system_id, deps in waiting_on.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        system_id = heapq.heappop(ready)
        order.append(system_id)
        for dependent in dependents[system_id]:
            waiting_on[dependent].discard(system_id)
            if not waiting_on[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) < len(systems):
        cycle = _a_cycle({s: deps for s, deps in waiting_on.items() if deps})
        raise InvalidArgument.single(
            "systems",
            "dependency cycle " + " needs ".join(cycle) + ": no system in it can fail over first",
        )
    return order


def _a_cycle(stuck: Mapping[str, Set[str]]) -> list[str]:
    """A cycle among systems that each still wait on another stuck one: follow the smallest
    dependency from the smallest id until a system repeats."""
    path = [min(stuck)]
    while True:
        nxt = min(dep for dep in stuck[path[-1]] if dep in stuck)
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
