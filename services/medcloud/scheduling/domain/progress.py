"""A placement in progress: the capacity the region has left, and where the system's instances went so far."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.scheduling.domain.model import (
    HostOption,
    Instance,
    PoolOption,
    RegionView,
    Role,
    StorageClass,
)


def _place_key(name: str) -> str:
    # Cities are typed by people: "Guangzhou" and "guangzhou " are one city.
    return name.strip().casefold()


class WorkingView:
    """A working copy of a RegionView whose free capacity shrinks as instances are placed; the view
    itself stays untouched, so a refused placement leaves nothing behind."""

    def __init__(self, view: RegionView) -> None:
        _require_unique_ids(view)
        self._hosts: dict[str, HostOption] = {host.host_id: host for host in view.hosts}
        self._pools: dict[str, PoolOption] = {pool.pool_id: pool for pool in view.pools}
        self._pool_ids_by_place: dict[tuple[str, StorageClass], list[str]] = {}
        for pool in view.pools:
            key = (pool.centre_id, pool.storage_class)
            self._pool_ids_by_place.setdefault(key, []).append(pool.pool_id)
        # Every host asks for the roomiest pool of its centre; remembering it keeps that O(1).
        self._roomiest: dict[tuple[str, StorageClass], PoolOption | None] = {}

    def hosts(self) -> Iterable[HostOption]:
        """The hosts in the order the view lists them, each with what it has free now."""
        return self._hosts.values()

    def has_host(self, host_id: str) -> bool:
        return host_id in self._hosts

    def host(self, host_id: str) -> HostOption:
        return self._hosts[host_id]

    def roomiest_pool(self, centre_id: str, storage_class: StorageClass) -> PoolOption | None:
        """The pool of that class in that centre with most room now (ties by pool id), if any."""
        key = (centre_id, storage_class)
        if key not in self._roomiest:
            pools = [self._pools[pool_id] for pool_id in self._pool_ids_by_place.get(key, ())]
            self._roomiest[key] = min(
                pools, key=lambda pool: (-pool.free_gib, pool.pool_id), default=None
            )
        return self._roomiest[key]

    def reserve(
        self, host_id: str, vcpu: int, memory_gib: int, pool_id: str, storage_gib: int
    ) -> None:
        host = self._hosts[host_id]
        self._hosts[host_id] = dataclasses.replace(
            host,
            free_vcpu=host.free_vcpu - vcpu,
            free_memory_gib=host.free_memory_gib - memory_gib,
        )
        if pool_id:
            pool = self._pools[pool_id]
            self._pools[pool_id] = dataclasses.replace(pool, free_gib=pool.free_gib - storage_gib)
            self._roomiest.pop((pool.centre_id, pool.storage_class), None)


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
    def primary_cities(self) -> list[str]:
        return sorted(self._primary_cities.values())


def _rack_key(host: HostOption) -> tuple[str, str]:
    # Rack names are only unique within a machine room: "r1" in two centres are two racks.
    return (host.centre_id, host.rack)
