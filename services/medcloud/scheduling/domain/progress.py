"""A placement in progress: the capacity the region has left, and where the system's instances went so far."""

from __future__ import annotations

import dataclasses
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.scheduling.domain.model import (
    CentreRole,
    HostOption,
    Instance,
    Ownership,
    PoolOption,
    RegionView,
    Role,
    StorageClass,
)


def _place_key(name: str) -> str:
    # Cities are typed by people: "Guangzhou" and "guangzhou " are one city.
    return name.strip().casefold()


class HostIndex:
    """What never changes about a region's hosts, indexed once per view: hosts grouped by everything a
    group-level rule reads (centre, city, centre role, ownership), and by rack."""

    def __init__(self, view: RegionView) -> None:
        _require_unique_ids(view)
        self.view = view
        self.hosts: tuple[HostOption, ...] = view.hosts
        self.host_ids: list[str] = [host.host_id for host in view.hosts]
        self.position: dict[str, int] = {host.host_id: i for i, host in enumerate(view.hosts)}
        group_ids: dict[tuple, int] = {}
        self.group_of: list[int] = []
        self.group_hosts: list[list[int]] = []
        self.group_centre: list[str] = []
        self.group_city: list[str] = []
        self.group_city_key: list[str] = []
        self.group_role: list[CentreRole] = []
        self.group_public: list[bool] = []
        self.rack_hosts: dict[tuple[str, str], list[int]] = {}
        for i, host in enumerate(view.hosts):
            key = (host.centre_id, host.city, host.centre_role, host.ownership)
            group = group_ids.get(key)
            if group is None:
                group = group_ids[key] = len(self.group_hosts)
                self.group_hosts.append([])
                self.group_centre.append(host.centre_id)
                self.group_city.append(host.city)
                self.group_city_key.append(_place_key(host.city))
                self.group_role.append(host.centre_role)
                self.group_public.append(host.ownership is Ownership.PUBLIC)
            self.group_of.append(group)
            self.group_hosts[group].append(i)
            self.rack_hosts.setdefault(_rack_key(host), []).append(i)
        self.group_min_id = [min(view.hosts[i].host_id for i in g) for g in self.group_hosts]
        # What the view has free, from which every WorkingView of it starts.
        self.free_vcpu = [host.free_vcpu for host in view.hosts]
        self.free_memory_gib = [host.free_memory_gib for host in view.hosts]
        vcpu, memory = self.free_vcpu, self.free_memory_gib
        self.group_min_vcpu = [min(vcpu[i] for i in g) for g in self.group_hosts]
        self.group_max_vcpu = [max(vcpu[i] for i in g) for g in self.group_hosts]
        self.group_min_memory = [min(memory[i] for i in g) for g in self.group_hosts]
        self.group_max_memory = [max(memory[i] for i in g) for g in self.group_hosts]
        self.group_frontier = [frontier((vcpu[i], memory[i]) for i in g) for g in self.group_hosts]
        # The pools per centre and class, and the roomiest of each as the view has them: a working
        # view starts from these instead of indexing the region's pools again on every placement.
        self.pools: dict[str, PoolOption] = {pool.pool_id: pool for pool in view.pools}
        self.pool_ids_by_place: dict[tuple[str, StorageClass], list[str]] = {}
        for pool in view.pools:
            key = (pool.centre_id, pool.storage_class)
            self.pool_ids_by_place.setdefault(key, []).append(pool.pool_id)
        self._roomiest: dict[tuple[str, StorageClass], PoolOption | None] = {}
        self._room_by_class: dict[StorageClass, dict[str, int]] = {}
        self._groups_with_role: dict[frozenset[CentreRole], list[bool]] = {}

    def roomiest_pool(self, place: tuple[str, StorageClass]) -> PoolOption | None:
        """The pool of that centre and class with most room in the view (ties by pool id), if any."""
        if place not in self._roomiest:
            self._roomiest[place] = _roomiest_of(
                self.pools[pool_id] for pool_id in self.pool_ids_by_place.get(place, ())
            )
        return self._roomiest[place]

    def room_by_centre(self, storage_class: StorageClass) -> dict[str, int]:
        """Per centre with a pool of the class, the GiB free in its roomiest one, in the view."""
        if storage_class not in self._room_by_class:
            self._room_by_class[storage_class] = {
                centre_id: max(self.pools[pool_id].free_gib for pool_id in pool_ids)
                for (centre_id, pool_class), pool_ids in self.pool_ids_by_place.items()
                if pool_class is storage_class
            }
        return self._room_by_class[storage_class]

    def groups_with_role(self, roles: frozenset[CentreRole]) -> list[bool]:
        """Per group, whether its centre's role is one of `roles`: a rule on roles reads a list
        instead of hashing an enum member per group (a Python-level hash) for every instance."""
        if roles not in self._groups_with_role:
            self._groups_with_role[roles] = [role in roles for role in self.group_role]
        return self._groups_with_role[roles]


# Placing one system after another on a view re-reads the same hosts; indexing them once per view
# (held only while the view lives) keeps each call proportional to what it places, not to the region.
_INDEX_BY_VIEW_ID: dict[int, tuple[weakref.ref, HostIndex]] = {}


def host_index(view: RegionView) -> HostIndex:
    cached = _INDEX_BY_VIEW_ID.get(id(view))
    if cached is not None and cached[0]() is view:
        return cached[1]
    index = HostIndex(view)
    view_id = id(view)
    _INDEX_BY_VIEW_ID[view_id] = (
        weakref.ref(view, lambda _, cache=_INDEX_BY_VIEW_ID: cache.pop(view_id, None)),
        index,
    )
    return index


# One reservation as `WorkingView.reserve` takes it: host id, vCPU, memory GiB, pool id, storage GiB.
Reservation = tuple[str, int, int, str, int]


class WorkingView:
    """A working copy of a RegionView whose free capacity shrinks as instances are placed; the view
    itself stays untouched, so a refused placement leaves nothing behind.

    Every reservation is appended to `log`, so the state after the first n of them can be rebuilt
    (see `replayed`) when an explanation is asked for its details long after."""

    def __init__(self, view: RegionView) -> None:
        self.index = host_index(view)
        index = self.index
        self.free_vcpu = list(index.free_vcpu)
        self.free_memory_gib = list(index.free_memory_gib)
        # Per group the least and most free vCPU and memory, and the frontier of the two, so a rule
        # on capacity can pass or refuse a whole group, and a weigher bound it, without its hosts.
        self.group_min_vcpu = list(index.group_min_vcpu)
        self.group_max_vcpu = list(index.group_max_vcpu)
        self.group_min_memory = list(index.group_min_memory)
        self.group_max_memory = list(index.group_max_memory)
        self.group_frontier = list(index.group_frontier)
        self._changed: dict[int, HostOption] = {}
        # Pools as reserved here, and the roomiest per place whose pools changed here (and the room
        # per centre of a class some of whose pools did); everything else is as the index has it.
        self._pools: dict[str, PoolOption] = {}
        self._roomiest: dict[tuple[str, StorageClass], PoolOption | None] = {}
        self._room_by_class: dict[StorageClass, dict[str, int]] = {}
        self.log: list[Reservation] = []

    @classmethod
    def replayed(cls, view: RegionView, log: Sequence[Reservation]) -> WorkingView:
        working = cls(view)
        for reservation in log:
            working.reserve(*reservation)
        return working

    def hosts(self) -> Iterable[HostOption]:
        """The hosts in the order the view lists them, each with what it has free now."""
        return [self._host_at(i) for i in range(len(self.index.hosts))]

    def has_host(self, host_id: str) -> bool:
        return host_id in self.index.position

    def host(self, host_id: str) -> HostOption:
        return self._host_at(self.index.position[host_id])

    def _host_at(self, i: int) -> HostOption:
        return self._changed.get(i) or self.index.hosts[i]

    def snapshot(self) -> RegionView:
        """The region as it stands now, free capacity taken as reserved."""
        pools = tuple(self._pool(pool.pool_id) for pool in self.index.view.pools)
        return RegionView(tuple(self.hosts()), pools)

    def _pool(self, pool_id: str) -> PoolOption:
        return self._pools.get(pool_id) or self.index.pools[pool_id]

    def roomiest_pool(self, centre_id: str, storage_class: StorageClass) -> PoolOption | None:
        """The pool of that class in that centre with most room now (ties by pool id), if any."""
        place = (centre_id, storage_class)
        if place in self._roomiest:
            return self._roomiest[place]
        return self.index.roomiest_pool(place)

    def room_by_centre(self, storage_class: StorageClass) -> dict[str, int]:
        """Per centre with a pool of the class, the GiB free in its roomiest one now."""
        if storage_class in self._room_by_class:
            return self._room_by_class[storage_class]
        return self.index.room_by_centre(storage_class)

    def reserve(
        self, host_id: str, vcpu: int, memory_gib: int, pool_id: str, storage_gib: int
    ) -> None:
        """Takes capacity; negative amounts give it back (a batch undoing a refused system)."""
        self.log.append((host_id, vcpu, memory_gib, pool_id, storage_gib))
        i = self.index.position[host_id]
        self.free_vcpu[i] -= vcpu
        self.free_memory_gib[i] -= memory_gib
        self._changed[i] = dataclasses.replace(
            self.index.hosts[i],
            free_vcpu=self.free_vcpu[i],
            free_memory_gib=self.free_memory_gib[i],
        )
        group = self.index.group_of[i]
        members = self.index.group_hosts[group]
        self.group_min_vcpu[group] = min(self.free_vcpu[j] for j in members)
        self.group_max_vcpu[group] = max(self.free_vcpu[j] for j in members)
        self.group_min_memory[group] = min(self.free_memory_gib[j] for j in members)
        self.group_max_memory[group] = max(self.free_memory_gib[j] for j in members)
        self.group_frontier[group] = frontier(
            (self.free_vcpu[j], self.free_memory_gib[j]) for j in members
        )
        if pool_id:
            pool = self._pool(pool_id)
            self._pools[pool_id] = dataclasses.replace(pool, free_gib=pool.free_gib - storage_gib)
            place = (pool.centre_id, pool.storage_class)
            pools = [self._pool(other_id) for other_id in self.index.pool_ids_by_place[place]]
            self._roomiest[place] = _roomiest_of(pools)
            if pool.storage_class not in self._room_by_class:
                self._room_by_class[pool.storage_class] = dict(
                    self.index.room_by_centre(pool.storage_class)
                )
            self._room_by_class[pool.storage_class][pool.centre_id] = max(
                other.free_gib for other in pools
            )


def _roomiest_of(pools: Iterable[PoolOption]) -> PoolOption | None:
    """The pool with most room (ties by pool id), if any."""
    return min(pools, key=lambda pool: (-pool.free_gib, pool.pool_id), default=None)


def frontier(free: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (vCPU, memory) pairs no other pair beats on both: a score that grows with each is highest
    at one of them."""
    best: list[tuple[int, int]] = []
    for vcpu, memory_gib in sorted(set(free), reverse=True):
        if not best or memory_gib > best[-1][1]:
            best.append((vcpu, memory_gib))
    return best


def _require_unique_ids(view: RegionView) -> None:
    violations: list[FieldViolation] = []
    for items, id_of, field_name in (
        (view.hosts, lambda host: host.host_id, "region.hosts"),
        (view.pools, lambda pool: pool.pool_id, "region.pools"),
    ):
        seen: set[str] = set()
        for index, item in enumerate(items):
            if id_of(item) in seen:
                violations.append(
                    FieldViolation(f"{field_name}[{index}]", f"{id_of(item)!r} appears twice")
                )
            seen.add(id_of(item))
    if violations:
        raise InvalidArgument(violations)


class PlacedSoFar:
    """Where the instances of the system being placed went, indexed so that every rule answers in O(1)
    per host instead of scanning the instances placed before."""

    def __init__(self) -> None:
        self._roles_by_host_id: dict[str, Counter[Role]] = {}
        self._count_by_rack: Counter[tuple[str, str]] = Counter()
        self._primary_centre_ids: set[str] = set()
        # Keyed by the folded name, holding the name as first written for messages.
        self._primary_cities: dict[str, str] = {}

    def record(self, instance: Instance, host: HostOption) -> None:
        self._roles_by_host_id.setdefault(host.host_id, Counter())[instance.role] += 1
        self._count_by_rack[_rack_key(host)] += 1
        if instance.role is Role.PRIMARY:
            self._primary_centre_ids.add(host.centre_id)
            self._primary_cities.setdefault(_place_key(host.city), host.city.strip())

    def holds(self, host_id: str, role: Role) -> bool:
        roles = self._roles_by_host_id.get(host_id)
        return roles is not None and roles[role] > 0

    def count_on_host(self, host_id: str) -> int:
        roles = self._roles_by_host_id.get(host_id)
        return roles.total() if roles else 0

    def count_on_rack(self, host: HostOption) -> int:
        return self._count_by_rack[_rack_key(host)]

    def has_primary_in_centre(self, centre_id: str) -> bool:
        return centre_id in self._primary_centre_ids

    def has_primary_in_city(self, city: str) -> bool:
        return _place_key(city) in self._primary_cities

    @property
    def primary_centre_ids(self) -> frozenset[str]:
        return frozenset(self._primary_centre_ids)

    @property
    def primary_city_keys(self) -> frozenset[str]:
        """The primaries' cities, folded as `_place_key` folds them."""
        return frozenset(self._primary_cities)

    def racks(self) -> list[tuple[str, str]]:
        """(centre id, rack) of every rack holding an instance of the system."""
        return [rack for rack, count in self._count_by_rack.items() if count]

    @property
    def primary_cities(self) -> list[str]:
        return sorted(self._primary_cities.values())


def _rack_key(host: HostOption) -> tuple[str, str]:
    # Rack names are only unique within a machine room: "r1" in two centres are two racks.
    return (host.centre_id, host.rack)
