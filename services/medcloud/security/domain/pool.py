"""The unified security resource pool (R-7.2.4): pooled security instances, each in one centre,
whose capacity is allocated to the sites and zones it protects, private and public alike."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from medcloud.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from medcloud.core.identifiers import dns_label_violations


class Capability(enum.Enum):
    """What a pooled security instance does; the MLPS level-3 baseline names the ones a site needs."""

    VIRTUAL_FIREWALL = "virtual-firewall"
    IPS_IDS = "ips-ids"
    WAF = "waf"
    ANTI_MALWARE = "anti-malware"
    DATABASE_AUDIT = "database-audit"
    BASTION_HOST = "bastion-host"
    LOG_AUDIT = "log-audit"
    VULNERABILITY_SCANNING = "vulnerability-scanning"
    DATA_MASKING = "data-masking"
    KEY_MANAGEMENT = "key-management"


# One integer counts an instance's capacity; what one unit is depends on what the instance does,
# so that the pool can compare free and asked-for units without knowing each product's datasheet.
CAPACITY_UNIT: Mapping[Capability, str] = MappingProxyType(
    {
        Capability.VIRTUAL_FIREWALL: "Gbit/s of inspected traffic",
        Capability.IPS_IDS: "Gbit/s of inspected traffic",
        Capability.WAF: "Gbit/s of inspected traffic",
        Capability.ANTI_MALWARE: "protected hosts",
        Capability.DATABASE_AUDIT: "audited database instances",
        Capability.BASTION_HOST: "managed assets",
        Capability.LOG_AUDIT: "log sources",
        Capability.VULNERABILITY_SCANNING: "scanned assets",
        Capability.DATA_MASKING: "masked data sources",
        Capability.KEY_MANAGEMENT: "client applications",
    }
)


class Zone(enum.Enum):
    """The network zones of a site that security capacity is allocated to. R-A.2.8 names the
    internet access zone and the extranet; core and DMZ complete the usual MLPS zoning."""

    # Between the public-cloud core switch and the egress router: the egress firewall and the
    # security device group inspect what comes from the internet (R-A.2.8).
    INTERNET = "internet"
    # Dedicated lines to outside bodies that are not the internet (health commission, medical
    # insurance, regional platform, other hospitals); R-A.2.8 inspects this traffic too.
    EXTRANET = "extranet"
    # The business systems and their databases (HIS, EMR, LIS, RIS, PACS, CDR), and the security
    # management centre beside the core switch (R-A.2.8): the zone nothing outside reaches directly.
    CORE = "core"
    # The systems the internet may reach (portal, e-mail, internet-hospital web front ends), kept
    # apart so that a compromised web server is not yet inside the core.
    DMZ = "dmz"


@dataclass(frozen=True)
class SecurityInstance:
    """One pooled security appliance or service, of any vendor (R-6.6), running in `centre_id`,
    with `capacity_units` counted as CAPACITY_UNIT says for its capability."""

    id: str
    capability: Capability
    centre_id: str
    capacity_units: int
    vendor: str


@dataclass(frozen=True)
class Allocation:
    """`units` of one instance's capacity, protecting the `zone` of site `site_id`."""

    instance_id: str
    site_id: str
    zone: Zone
    units: int


@dataclass(frozen=True)
class Utilisation:
    """How much of one capability the pool has and how much of it is allocated."""

    capacity_units: int
    allocated_units: int

    @property
    def free_units(self) -> int:
        return self.capacity_units - self.allocated_units


def _positive(field: str, value: int) -> Iterator[FieldViolation]:
    if value <= 0:
        yield FieldViolation(field, f"must be greater than 0, got {value}")


def instance_violations(instance: SecurityInstance) -> list[FieldViolation]:
    """Every rule the instance breaks; an empty list means it can join the pool."""
    violations = [
        *dns_label_violations("instance.id", instance.id),
        *dns_label_violations("instance.centre_id", instance.centre_id),
        *_positive("instance.capacity_units", instance.capacity_units),
    ]
    if not instance.vendor.strip():
        violations.append(FieldViolation("instance.vendor", "must not be empty"))
    return violations


def _units(units: int, capability: Capability) -> str:
    return f"{units} {CAPACITY_UNIT[capability]}"


class SecurityPool:
    """The instances of the unified pool and what is allocated from them. Any site may draw on
    an instance in any centre, which is what makes one pool protect the private and the public
    parts alike (R-7.2.4). Every choice is deterministic: ties go to the lower instance id."""

    def __init__(
        self, instances: Iterable[SecurityInstance] = (), allocations: Iterable[Allocation] = ()
    ) -> None:
        self._instances: dict[str, SecurityInstance] = {}
        self._allocations: list[Allocation] = []
        for instance in instances:
            self.add_instance(instance)
        for allocation in allocations:
            self._restore(allocation)

    @property
    def instances(self) -> tuple[SecurityInstance, ...]:
        return tuple(self._instances[instance_id] for instance_id in sorted(self._instances))

    @property
    def allocations(self) -> tuple[Allocation, ...]:
        """Every allocation, oldest first."""
        return tuple(self._allocations)

    def add_instance(self, instance: SecurityInstance) -> None:
        violations = instance_violations(instance)
        if violations:
            raise InvalidArgument(violations)
        if instance.id in self._instances:
            raise AlreadyExists("security instance", instance.id)
        self._instances[instance.id] = instance

    def allocated_units(self, instance_id: str) -> int:
        self._instance(instance_id)
        return sum(a.units for a in self._allocations if a.instance_id == instance_id)

    def free_units(self, instance_id: str) -> int:
        return self._instance(instance_id).capacity_units - self.allocated_units(instance_id)

    def allocate(
        self,
        site_id: str,
        zone: Zone,
        capability: Capability,
        units: int,
        *,
        prefer_centre_id: str | None = None,
    ) -> Allocation:
        """Allocates `units` of `capability` to the zone of a site from the first instance, by
        id, that has them free, looking first in `prefer_centre_id` (where the site's traffic
        already is, so it need not cross the dark fibre to be inspected). A site may hold several
        allocations of one capability in one zone, e.g. firewalls in two centres for redundancy."""
        violations = [
            *dns_label_violations("allocation.site_id", site_id),
            *_positive("allocation.units", units),
        ]
        if prefer_centre_id is not None:
            violations += dns_label_violations("prefer_centre_id", prefer_centre_id)
        if violations:
            raise InvalidArgument(violations)
        candidates = sorted(
            (i for i in self._instances.values() if i.capability is capability),
            key=lambda i: (i.centre_id != prefer_centre_id, i.id),
        )
        for instance in candidates:
            if self.free_units(instance.id) >= units:
                allocation = Allocation(instance.id, site_id, zone, units)
                self._allocations.append(allocation)
                return allocation
        raise FailedPrecondition(self._shortage(site_id, zone, capability, units, candidates))

    def release(self, site_id: str, zone: Zone, capability: Capability) -> tuple[Allocation, ...]:
        """Releases every allocation of `capability` to the zone of the site; returns them."""
        released = tuple(
            a
            for a in self._allocations
            if (a.site_id, a.zone) == (site_id, zone)
            and self._instances[a.instance_id].capability is capability
        )
        if not released:
            raise NotFound("allocation", f"{site_id}/{zone.value}/{capability.value}")
        self._allocations = [a for a in self._allocations if a not in released]
        return released

    def coverage(self, site_id: str) -> Mapping[Zone, frozenset[Capability]]:
        """The capabilities allocated to each zone of the site; every zone is present, empty
        when nothing protects it."""
        held: dict[Zone, set[Capability]] = {zone: set() for zone in Zone}
        for allocation in self._allocations:
            if allocation.site_id == site_id:
                held[allocation.zone].add(self._instances[allocation.instance_id].capability)
        return MappingProxyType({zone: frozenset(held[zone]) for zone in Zone})

    def centres_serving(self, site_id: str, zone: Zone, capability: Capability) -> frozenset[str]:
        """The centres whose instances of `capability` protect the zone of the site."""
        return frozenset(
            self._instances[a.instance_id].centre_id
            for a in self._allocations
            if (a.site_id, a.zone) == (site_id, zone)
            and self._instances[a.instance_id].capability is capability
        )

    def utilisation(self) -> Mapping[Capability, Utilisation]:
        """Capacity and allocated units of every capability, zero for one the pool lacks."""
        capacity = dict.fromkeys(Capability, 0)
        allocated = dict.fromkeys(Capability, 0)
        for instance in self._instances.values():
            capacity[instance.capability] += instance.capacity_units
        for allocation in self._allocations:
            allocated[self._instances[allocation.instance_id].capability] += allocation.units
        return MappingProxyType({c: Utilisation(capacity[c], allocated[c]) for c in Capability})

    def _instance(self, instance_id: str) -> SecurityInstance:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise NotFound("security instance", instance_id) from None

    def _restore(self, allocation: Allocation) -> None:
        """Takes back an allocation made earlier (from storage), holding it to today's rules."""
        violations = [
            *dns_label_violations("allocation.site_id", allocation.site_id),
            *_positive("allocation.units", allocation.units),
        ]
        if allocation.instance_id not in self._instances:
            violations.append(
                FieldViolation(
                    "allocation.instance_id",
                    f"must name an instance of the pool, got {allocation.instance_id!r}",
                )
            )
        if violations:
            raise InvalidArgument(violations)
        instance = self._instances[allocation.instance_id]
        free = self.free_units(instance.id)
        if allocation.units > free:
            raise FailedPrecondition(
                f"Instance '{instance.id}' has {_units(free, instance.capability)} free; the "
                f"allocation to site '{allocation.site_id}' asks "
                f"{_units(allocation.units, instance.capability)}."
            )
        self._allocations.append(allocation)

    def _shortage(
        self,
        site_id: str,
        zone: Zone,
        capability: Capability,
        units: int,
        candidates: list[SecurityInstance],
    ) -> str:
        refusal = (
            f"Cannot allocate {_units(units, capability)} of {capability.value} to the "
            f"{zone.value} zone of site '{site_id}'"
        )
        if not candidates:
            return f"{refusal}: the pool has no {capability.value} instance."
        free = [self.free_units(i.id) for i in candidates]
        # One allocation is never split across instances, so the total free may still be enough.
        return (
            f"{refusal}: the most free on any of the {len(candidates)} {capability.value} "
            f"instances is {max(free)} ({sum(free)} free in all); add an instance or release "
            "capacity."
        )
