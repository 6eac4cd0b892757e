"""Capacity claims in the manner of OpenStack Placement: a consumer's claim takes resources from
one or more providers (hosts, storage pools) all at once, and never past their capacity."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from medcloud.core.errors import FailedPrecondition, FieldViolation
from medcloud.inventory.domain.model import Resources


class ProviderKind(enum.Enum):
    HOST = "host"
    POOL = "pool"


@dataclass(frozen=True)
class ProviderRef:
    kind: ProviderKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.id}"


@dataclass(frozen=True)
class Allocation:
    provider: ProviderRef
    resources: Resources


@dataclass(frozen=True)
class Claim:
    """Everything one consumer (an instance of a business system) holds; a new claim by the same
    consumer replaces the old one, so retrying a claim is harmless."""

    consumer_id: str
    allocations: tuple[Allocation, ...]

    def on(self, provider: ProviderRef) -> Resources:
        return sum(
            (a.resources for a in self.allocations if a.provider == provider), start=Resources()
        )


@dataclass(frozen=True)
class ProviderUsage:
    """What a provider offers, what is taken, and whether it accepts new claims."""

    capacity: Resources
    used: Resources
    accepts_claims: bool = True
    unavailable_reason: str = ""

    @property
    def free(self) -> Resources:
        return self.capacity - self.used


class InsufficientCapacity(FailedPrecondition):
    """The claim does not fit; the message names every provider and resource that is short."""


_RESOURCES_BY_KIND = {
    ProviderKind.HOST: ("vcpu", "memory_gib"),
    ProviderKind.POOL: ("storage_gib",),
}


def claim_violations(claim: Claim) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if not claim.consumer_id.strip() or len(claim.consumer_id) > 253:
        violations.append(FieldViolation("claim.consumer_id", "must be 1-253 characters"))
    if not claim.allocations:
        violations.append(FieldViolation("claim.allocations", "must hold at least one allocation"))
    seen: set[ProviderRef] = set()
    for index, allocation in enumerate(claim.allocations):
        field = f"claim.allocations[{index}]"
        if allocation.provider in seen:
            violations.append(
                FieldViolation(
                    f"{field}.provider", f"{allocation.provider} appears twice in one claim"
                )
            )
        seen.add(allocation.provider)
        offered = _RESOURCES_BY_KIND[allocation.provider.kind]
        amounts = vars(allocation.resources)
        for name, amount in amounts.items():
            if amount < 0:
                violations.append(
                    FieldViolation(f"{field}.resources.{name}", "must not be negative")
                )
            elif amount and name not in offered:
                violations.append(
                    FieldViolation(
                        f"{field}.resources.{name}",
                        f"a {allocation.provider.kind.value} offers only {', '.join(offered)}",
                    )
                )
        if not any(amounts.values()):
            violations.append(FieldViolation(f"{field}.resources", "must take some resource"))
    return violations


def apply_claim(
    usages: Mapping[ProviderRef, ProviderUsage],
    new_claim: Claim,
    previous_claim: Claim | None,
) -> dict[ProviderRef, ProviderUsage]:
    """The providers' usage after `new_claim` replaces `previous_claim` of the same consumer.
    Raises InsufficientCapacity naming every shortfall; changes nothing then."""
    touched = {a.provider for a in new_claim.allocations}
    if previous_claim:
        touched |= {a.provider for a in previous_claim.allocations}
    updated: dict[ProviderRef, ProviderUsage] = {}
    shortfalls: list[str] = []
    for provider in sorted(touched, key=str):
        usage = usages.get(provider)
        requested = new_claim.on(provider)
        if usage is None:
            if requested != Resources():
                shortfalls.append(f"{provider} does not exist")
            continue
        held = previous_claim.on(provider) if previous_claim else Resources()
        growing = [name for name, amount in vars(requested - held).items() if amount > 0]
        if growing and not usage.accepts_claims:
            shortfalls.append(f"{provider} accepts no new claims: {usage.unavailable_reason}")
            continue
        after = usage.used - held + requested
        # Only what grows must fit: a host whose capacity shrank below its use may still shrink claims.
        short = [name for name in growing if vars(after)[name] > vars(usage.capacity)[name]]
        for name in short:
            free = vars(usage.capacity)[name] - vars(usage.used)[name] + vars(held)[name]
            shortfalls.append(
                f"{provider}: {vars(requested)[name]} {name} requested, {max(free, 0)} free "
                f"of {vars(usage.capacity)[name]}"
            )
        if short:
            continue
        updated[provider] = ProviderUsage(
            usage.capacity, after, usage.accepts_claims, usage.unavailable_reason
        )
    if shortfalls:
        raise InsufficientCapacity("claim does not fit: " + "; ".join(shortfalls))
    return updated


def release_claim(
    usages: Mapping[ProviderRef, ProviderUsage], claim: Claim
) -> dict[ProviderRef, ProviderUsage]:
    """The providers' usage once `claim` is released; providers removed meanwhile are skipped."""
    updated: dict[ProviderRef, ProviderUsage] = {}
    for allocation in claim.allocations:
        usage = updated.get(allocation.provider) or usages.get(allocation.provider)
        if usage is None:
            continue
        updated[allocation.provider] = ProviderUsage(
            usage.capacity,
            usage.used - allocation.resources,
            usage.accepts_claims,
            usage.unavailable_reason,
        )
    return updated
