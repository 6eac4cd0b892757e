"""A protected business system: its policy, its two copies and which one serves now."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from medcloud.backup.domain.plans import ProtectionPolicy, RegionFacts, check_policy
from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.core.identifiers import dns_label_violations

# Systems on a Kubernetes member cluster: the driver needs cluster, namespace and Deployment.
KUBERNETES_DRIVER = "kubernetes"
# From tier 5 (same-city active-active, R-7.6b) a standby copy runs and a failover moves to it;
# below, replicated or scheduled copies wait at the standby's centre to be restored.
STANDBY_RUNS_FROM_TIER = 5


@dataclass(frozen=True)
class Endpoint:
    """Where one copy of a business system runs: a centre, and for Kubernetes-hosted systems the
    member cluster (its name in the backup service's cluster list), namespace and Deployment."""

    centre_id: str
    cluster: str = ""
    namespace: str = ""
    workload: str = ""


@dataclass(frozen=True)
class SystemCopies:
    """A protected system's two copies, in the direction a failover moves it: from `primary` to
    `standby` (a failback swaps them), and the driver that moves it."""

    hospital_id: str
    system_id: str
    driver: str
    primary: Endpoint
    standby: Endpoint


class ActiveCopy(enum.Enum):
    PRIMARY = "primary"
    STANDBY = "standby"


@dataclass(frozen=True)
class ProtectedSystem:
    hospital_id: str
    policy: ProtectionPolicy
    depends_on: frozenset[str]
    driver: str
    primary: Endpoint
    standby: Endpoint
    write_rate_mbps: float = 0.0
    active: ActiveCopy = ActiveCopy.PRIMARY
    generation: int = 0
    # Whether the policy's scheduled copies exist where the system serves, and if not, why.
    copies_scheduled: bool = False
    schedule_status: str = ""

    @property
    def system_id(self) -> str:
        return self.policy.system_id

    @property
    def key(self) -> str:
        return protection_key(self.hospital_id, self.system_id)

    def copies(self, failback: bool) -> SystemCopies:
        """The copies a failover (or, with `failback`, a failback) moves between."""
        source, destination = (
            (self.standby, self.primary) if failback else (self.primary, self.standby)
        )
        return SystemCopies(self.hospital_id, self.system_id, self.driver, source, destination)

    def serving_copies(self) -> SystemCopies:
        """The copies with the serving one first (as `primary`)."""
        return self.copies(failback=self.active is ActiveCopy.STANDBY)

    def serving(self) -> Endpoint:
        return self.standby if self.active is ActiveCopy.STANDBY else self.primary

    def after_failover(self, failback: bool) -> ProtectedSystem:
        return replace(self, active=ActiveCopy.PRIMARY if failback else ActiveCopy.STANDBY)


def protection_key(hospital_id: str, system_id: str) -> str:
    return f"{hospital_id}.{system_id}"


def check_protection(system: ProtectedSystem, facts: RegionFacts) -> list[FieldViolation]:
    """Every reason to refuse `system`: its names, its copies, and the policy's feasibility in
    the region (plans.check_policy); empty when it can be honoured."""
    violations = list(dns_label_violations("system.hospital_id", system.hospital_id))
    violations += dns_label_violations("system.system_id", system.system_id)
    for dependency in sorted(system.depends_on):
        violations += dns_label_violations("system.depends_on", dependency)
    if system.system_id in system.depends_on:
        violations.append(FieldViolation("system.depends_on", "a system cannot depend on itself"))
    kubernetes = system.driver == KUBERNETES_DRIVER
    violations += _endpoint_violations("system.primary", system.primary, facts, kubernetes)
    # Below tier 5 no standby runs: the standby names the centre the copies go to.
    standby_runs = kubernetes and system.policy.tier >= STANDBY_RUNS_FROM_TIER
    violations += _endpoint_violations("system.standby", system.standby, facts, standby_runs)
    if system.primary == system.standby and system.primary.centre_id:
        violations.append(
            FieldViolation("system.standby", "must differ from the primary: a copy on itself")
        )
    if system.primary.centre_id and system.standby.centre_id:
        standby_is_a_target = any(
            t.centre_id == system.standby.centre_id for t in system.policy.targets
        )
        if system.policy.targets and not standby_is_a_target:
            violations.append(
                FieldViolation(
                    "system.standby.centre_id",
                    f"{system.standby.centre_id} is none of the policy's targets: the standby "
                    "must run where the data is replicated to",
                )
            )
    violations += check_policy(
        system.policy, facts, system.primary.centre_id, system.write_rate_mbps
    )
    return [_under_system(v) for v in violations]


def _endpoint_violations(
    field: str, endpoint: Endpoint, facts: RegionFacts, kubernetes: bool
) -> Iterator[FieldViolation]:
    if not endpoint.centre_id:
        yield FieldViolation(f"{field}.centre_id", "is required")
    elif facts.centre(endpoint.centre_id) is None:
        yield FieldViolation(
            f"{field}.centre_id", f"no centre {endpoint.centre_id!r} in the region"
        )
    for part in ("cluster", "namespace", "workload") if kubernetes else ():
        if not getattr(endpoint, part):
            yield FieldViolation(f"{field}.{part}", "is required by the kubernetes driver")


def _under_system(violation: FieldViolation) -> FieldViolation:
    """check_policy names `policy.*`, `primary_centre_id` and `write_rate_mbps`; in the API they
    are fields of `system`."""
    field = violation.field
    if field.startswith("policy."):
        field = "system." + field.removeprefix("policy.")
    elif field == "primary_centre_id":
        field = "system.primary.centre_id"
    elif field == "write_rate_mbps":
        field = "system.write_rate_mbps"
    return FieldViolation(field, violation.description)


def require_valid(system: ProtectedSystem, facts: RegionFacts, drivers: Iterable[str]) -> None:
    violations = check_protection(system, facts)
    known = sorted(drivers)
    if system.driver not in known:
        violations.append(
            FieldViolation("system.driver", f"must be one of {known}, got {system.driver!r}")
        )
    if violations:
        raise InvalidArgument(violations)


def plan_systems(systems: Iterable[ProtectedSystem]) -> dict[str, frozenset[str]]:
    """A hospital's systems as DrPlan.build wants them: each mapped to what it depends on."""
    return {s.system_id: s.depends_on for s in systems}
