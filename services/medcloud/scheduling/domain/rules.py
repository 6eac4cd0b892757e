"""The placement rules in the manner of Nova: filters that admit or refuse a host for one instance, and
weighers that rank the hosts left, each tagged with the requirement it serves."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from medcloud.scheduling.domain.model import (
    LOW_PRESSURE_KINDS,
    BusinessSystem,
    CentreRole,
    DataClassification,
    HostOption,
    Instance,
    Ownership,
    Role,
    StorageClass,
)
from medcloud.scheduling.domain.progress import PlacedSoFar, WorkingView

# SHARE78 tier 5 is same-city active-active (R-7.6b), tier 6 and above remote DR (R-7.6c).
SAME_CITY_ACTIVE_ACTIVE_TIER = 5
REMOTE_DR_TIER = 6


@dataclass(frozen=True)
class RuleRef:
    """Names a filter or weigher: the requirement it serves ("" if none) and what it checks."""

    requirement_id: str
    name: str

    def __str__(self) -> str:
        return f"{self.requirement_id} {self.name}" if self.requirement_id else self.name


class Filter(abc.ABC):
    """Admits or refuses one host for one instance. A hard filter's refusal removes the host; a soft
    filter's refusal removes it only while some other host is admitted (see `placement`)."""

    requirement_id: str = ""
    name: str = ""
    hard: bool = True

    @property
    def rule(self) -> RuleRef:
        return RuleRef(self.requirement_id, self.name)

    def applies(self, system: BusinessSystem, instance: Instance) -> bool:
        """Whether the filter has anything to say about this instance at all; the placer skips it
        otherwise, which keeps the per-host loop short."""
        return True

    @abc.abstractmethod
    def refusal(
        self,
        system: BusinessSystem,
        instance: Instance,
        host: HostOption,
        placed: PlacedSoFar,
        view: WorkingView,
    ) -> str | None:
        """None if the host is admitted, else a short reason that names the numbers."""


class CapacityFilter(Filter):
    """The host has the instance's vCPU and memory free."""

    requirement_id = "R-7.3a"
    name = "capacity"

    def refusal(self, system, instance, host, placed, view):
        short = []
        if host.free_vcpu < system.vcpu:
            short.append(f"{system.vcpu} vCPU needed, {host.free_vcpu} free")
        if host.free_memory_gib < system.memory_gib:
            short.append(f"{system.memory_gib} GiB memory needed, {host.free_memory_gib} free")
        return "; ".join(short) or None


class StorageFilter(Filter):
    """The host's centre has a pool of the system's storage class with room for one instance; one
    filter per class, so the explanation names the requirement behind the class."""

    def __init__(self, storage_class: StorageClass, requirement_id: str) -> None:
        self.storage_class = storage_class
        self.requirement_id = requirement_id
        self.name = f"{storage_class.value} storage"

    def applies(self, system, instance):
        return system.storage_gib > 0 and system.effective_storage_class is self.storage_class

    def refusal(self, system, instance, host, placed, view):
        pool = view.roomiest_pool(host.centre_id, self.storage_class)
        if pool is None:
            return f"centre {host.centre_id} has no {self.storage_class.value} pool"
        if pool.free_gib < system.storage_gib:
            return (
                f"{system.storage_gib} GiB needed, the roomiest {self.storage_class.value} pool "
                f"in centre {host.centre_id} ({pool.pool_id}) has {pool.free_gib} GiB free"
            )
        return None


# The carrier's dedicated medical cloud in the region may hold health data even where
# its clusters are public; a public cluster anywhere else may not.
_CARRIER_MEDICAL_CLOUD = frozenset({CentreRole.CARRIER_PRODUCTION, CentreRole.CARRIER_STANDBY})
_RESIDENT_CLASSIFICATIONS = frozenset(
    {DataClassification.PERSONAL_HEALTH_DATA, DataClassification.LIMITED_DATA_SET}
)


class DataResidencyFilter(Filter):
    """Personal health data and limited data sets stay on private clusters or in the carrier's
    in-region medical cloud; never on a public cluster elsewhere, such as the backup centre's."""

    requirement_id = "R-7.2.5"
    name = "data residency"

    def applies(self, system, instance):
        return system.classification in _RESIDENT_CLASSIFICATIONS

    def refusal(self, system, instance, host, placed, view):
        if host.ownership is Ownership.PRIVATE or host.centre_role in _CARRIER_MEDICAL_CLOUD:
            return None
        return (
            f"{system.classification.value} data may not go to a public cluster "
            f"({host.cluster_id}) in a {host.centre_role.value} centre ({host.centre_id})"
        )


class PrimaryStandbyAntiAffinityFilter(Filter):
    """A standby never shares a host with a primary of its system, nor a primary with a standby,
    whatever the tier: losing that host would take both."""

    requirement_id = "R-7.9.9"
    name = "primary/standby anti-affinity"

    _OPPOSITE = {Role.PRIMARY: Role.STANDBY, Role.STANDBY: Role.PRIMARY}

    def applies(self, system, instance):
        return instance.role in self._OPPOSITE

    def refusal(self, system, instance, host, placed, view):
        opposite = self._OPPOSITE[instance.role]
        if placed.holds(host.host_id, opposite):
            return f"host {host.host_id} already holds a {opposite.value} of {system.id}"
        return None


class HostAntiAffinityFilter(Filter):
    """No two instances of one system on one host: hard from tier 5 up (active-active must survive the
    loss of any single server), soft below."""

    requirement_id = "R-7.3a"

    def __init__(self, hard: bool) -> None:
        self.hard = hard
        self.name = "host anti-affinity" + (
            "" if hard else f" (soft below tier {SAME_CITY_ACTIVE_ACTIVE_TIER})"
        )

    def applies(self, system, instance):
        return (system.dr_tier >= SAME_CITY_ACTIVE_ACTIVE_TIER) == self.hard

    def refusal(self, system, instance, host, placed, view):
        count = placed.count_on_host(host.host_id)
        if count:
            return f"host {host.host_id} already holds {count} instance(s) of {system.id}"
        return None


class RackAntiAffinityFilter(Filter):
    """Prefer a rack that holds no other instance of the system, so a rack's power or switch failure
    takes at most one; soft at every tier."""

    requirement_id = ""
    name = "rack anti-affinity"
    hard = False

    def refusal(self, system, instance, host, placed, view):
        count = placed.count_on_rack(host)
        if count:
            return (
                f"rack {host.rack} in centre {host.centre_id} already holds {count} "
                f"instance(s) of {system.id}"
            )
        return None


class SameCityStandbyFilter(Filter):
    """Tier 5 (two-site active-active, R-7.2.2): a standby runs in another centre than every primary,
    but in a city that holds a primary, so the two sites can commit together over dark fibre."""

    requirement_id = "R-7.6b"
    name = "same-city standby in another centre"

    def applies(self, system, instance):
        return instance.role is Role.STANDBY and system.dr_tier == SAME_CITY_ACTIVE_ACTIVE_TIER

    def refusal(self, system, instance, host, placed, view):
        if placed.has_primary_in_centre(host.centre_id):
            return f"centre {host.centre_id} already holds a primary of {system.id}"
        if not placed.has_primary_in_city(host.city):
            return (
                f"{host.city} is not the primaries' city "
                f"({', '.join(placed.primary_cities)}), as tier 5 needs"
            )
        return None


class RemoteCityStandbyFilter(Filter):
    """Tier 6 and above (remote DR): a standby runs in a city that holds no primary, so that losing a
    city loses no data."""

    requirement_id = "R-7.6c"
    name = "standby in another city"

    def applies(self, system, instance):
        return instance.role is Role.STANDBY and system.dr_tier >= REMOTE_DR_TIER

    def refusal(self, system, instance, host, placed, view):
        if placed.has_primary_in_city(host.city):
            return (
                f"{host.city} already holds a primary of {system.id}; "
                f"tier {system.dr_tier} needs the standby in another city"
            )
        return None


DEFAULT_FILTERS: tuple[Filter, ...] = (
    # Where the rules say a host may never serve; a host refused by several rules is charged to the
    # first, so policy comes before the resources that might also be short.
    DataResidencyFilter(),
    PrimaryStandbyAntiAffinityFilter(),
    HostAntiAffinityFilter(hard=True),
    SameCityStandbyFilter(),
    RemoteCityStandbyFilter(),
    CapacityFilter(),
    StorageFilter(StorageClass.BLOCK_FC_SAN, "R-7.4a"),
    StorageFilter(StorageClass.FILE_NAS, "R-7.4b"),
    StorageFilter(StorageClass.DISTRIBUTED, "R-7.4c"),
    StorageFilter(StorageClass.OBJECT, "R-7.4-0"),
    StorageFilter(StorageClass.COLD_DISK, "R-7.4d"),
    StorageFilter(StorageClass.COLD_OPTICAL, "R-7.4d"),
    HostAntiAffinityFilter(hard=False),
    RackAntiAffinityFilter(),
)


class Weigher(abc.ABC):
    """Ranks the hosts left for one instance. `raw_score` may be in any unit, higher is better; the
    placer rescales each weigher's scores to 0..1 across the hosts left (as Nova does) and adds
    them up times `weight`."""

    requirement_id: str = ""
    name: str = ""
    weight: float = 1.0

    @property
    def rule(self) -> RuleRef:
        return RuleRef(self.requirement_id, self.name)

    def applies(self, system: BusinessSystem, instance: Instance) -> bool:
        return True

    @abc.abstractmethod
    def raw_score(
        self, system: BusinessSystem, instance: Instance, host: HostOption, placed: PlacedSoFar
    ) -> float: ...


class FreeVcpuWeigher(Weigher):
    """Spread: prefer the host with most vCPU left after placement."""

    name = "free vCPU after placement"
    weight = 0.5

    def raw_score(self, system, instance, host, placed):
        return host.free_vcpu - system.vcpu


class FreeMemoryWeigher(Weigher):
    """Spread: prefer the host with most memory left after placement."""

    name = "free memory after placement"
    weight = 0.5

    def raw_score(self, system, instance, host, placed):
        return host.free_memory_gib - system.memory_gib


class CostWeigher(Weigher):
    """Portal, e-mail and OA go where it is cheapest: public clusters before private ones."""

    requirement_id = "R-7.4c"
    name = "cost first"
    weight = 3.0

    def applies(self, system, instance):
        return system.kind in LOW_PRESSURE_KINDS

    def raw_score(self, system, instance, host, placed):
        return 1.0 if host.ownership is Ownership.PUBLIC else 0.0


# The two active-active production sites; the standby room and the backup centre are
# where disaster recovery runs (R-7.3-arch).
_PRODUCTION_SITES = frozenset({CentreRole.HOSPITAL_ROOM, CentreRole.CARRIER_PRODUCTION})


class ProductionSiteWeigher(Weigher):
    """Primaries run in a production site, leaving the DR sites for standbys. Placement is greedy,
    so this also keeps a tier-5 primary out of a city whose only centre would leave its standby
    nowhere to go."""

    requirement_id = "R-7.3-arch"
    name = "primary in a production site"
    weight = 4.0

    def applies(self, system, instance):
        return instance.role is Role.PRIMARY

    def raw_score(self, system, instance, host, placed):
        return 1.0 if host.centre_role in _PRODUCTION_SITES else 0.0


class PreferenceWeigher(Weigher):
    """The hospital's wishes: a preferred centre and a preferred city each count."""

    name = "preferred centre and city"
    weight = 2.0

    def applies(self, system, instance):
        return bool(system.preferences.centre_ids or system.preferences.cities)

    def raw_score(self, system, instance, host, placed):
        preferred_cities = {city.strip().casefold() for city in system.preferences.cities}
        return float(host.centre_id in system.preferences.centre_ids) + float(
            host.city.strip().casefold() in preferred_cities
        )


class SameHostPenaltyWeigher(Weigher):
    """Where soft host anti-affinity had to give way, prefer the host with fewest of the system's
    instances."""

    name = "fewest instances of the system on the host"
    weight = 1.0

    def raw_score(self, system, instance, host, placed):
        return -placed.count_on_host(host.host_id)


class SameRackPenaltyWeigher(Weigher):
    """Where rack anti-affinity had to give way, prefer the rack with fewest of the system's
    instances."""

    name = "fewest instances of the system on the rack"
    weight = 0.5

    def raw_score(self, system, instance, host, placed):
        return -placed.count_on_rack(host)


DEFAULT_WEIGHERS: tuple[Weigher, ...] = (
    FreeVcpuWeigher(),
    FreeMemoryWeigher(),
    CostWeigher(),
    ProductionSiteWeigher(),
    PreferenceWeigher(),
    SameHostPenaltyWeigher(),
    SameRackPenaltyWeigher(),
)


class LeastFreeVcpuWeigher(Weigher):
    """Pack: prefer the host with least vCPU left after placement, so fewer hosts are used."""

    name = "least free vCPU after placement"
    weight = 0.5

    def raw_score(self, system, instance, host, placed):
        return system.vcpu - host.free_vcpu


class LeastFreeMemoryWeigher(Weigher):
    """Pack: prefer the host with least memory left after placement."""

    name = "least free memory after placement"
    weight = 0.5

    def raw_score(self, system, instance, host, placed):
        return system.memory_gib - host.free_memory_gib


# An option, not the default: packing leaves hosts empty (to power off) at the price of less
# headroom on the busy ones.
PACKING_WEIGHERS: tuple[Weigher, ...] = (LeastFreeVcpuWeigher(), LeastFreeMemoryWeigher())
