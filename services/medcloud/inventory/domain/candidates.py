"""Allocation candidates: the hosts and storage pools that could take a request now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from medcloud.inventory.domain.model import (
    Centre,
    Cluster,
    Host,
    HostState,
    Ownership,
    Resources,
    StorageClass,
    StoragePool,
)


@dataclass(frozen=True)
class CandidateRequest:
    vcpu: int = 0
    memory_gib: int = 0
    storage_class: StorageClass | None = None
    storage_gib: int = 0
    required_traits: frozenset[str] = field(default_factory=frozenset)
    forbidden_traits: frozenset[str] = field(default_factory=frozenset)
    excluded_host_ids: frozenset[str] = field(default_factory=frozenset)
    centre_ids: frozenset[str] = field(default_factory=frozenset)
    cities: frozenset[str] = field(default_factory=frozenset)
    ownership: Ownership | None = None
    limit: int = 100

    @property
    def needs_compute(self) -> bool:
        return self.vcpu > 0 or self.memory_gib > 0

    @property
    def needs_storage(self) -> bool:
        return self.storage_gib > 0 or self.storage_class is not None


@dataclass(frozen=True)
class Candidate:
    """A host, a pool in the same centre, or both, with what they have free."""

    centre_id: str
    host_id: str
    pool_id: str
    free: Resources


def _traits_fit(traits: frozenset[str], request: CandidateRequest) -> bool:
    return request.required_traits <= traits and not (request.forbidden_traits & traits)


def find_candidates(
    request: CandidateRequest,
    centres: Mapping[str, Centre],
    clusters: Mapping[str, Cluster],
    hosts: Iterable[tuple[Host, Resources]],
    pools: Iterable[tuple[StoragePool, Resources]],
) -> list[Candidate]:
    """Candidates in (centre, host, pool) order, at most `request.limit`. Where both compute and
    storage are asked for, each host is paired with the pool in its centre with most room."""

    def centre_fits(centre_id: str) -> bool:
        centre = centres.get(centre_id)
        return (
            centre is not None
            and (not request.centre_ids or centre_id in request.centre_ids)
            and (not request.cities or centre.city in request.cities)
        )

    best_pool_by_centre: dict[str, tuple[StoragePool, int]] = {}
    if request.needs_storage:
        for pool, used in pools:
            free_gib = pool.capacity_gib - used.storage_gib
            if (
                free_gib >= request.storage_gib
                and (request.storage_class is None or pool.storage_class is request.storage_class)
                and _traits_fit(pool.traits, request)
                and centre_fits(pool.centre_id)
            ):
                best = best_pool_by_centre.get(pool.centre_id)
                if best is None or free_gib > best[1]:
                    best_pool_by_centre[pool.centre_id] = (pool, free_gib)

    if not request.needs_compute:
        found = [
            Candidate(centre_id, "", pool.id, Resources(storage_gib=free_gib))
            for centre_id, (pool, free_gib) in best_pool_by_centre.items()
        ]
        return sorted(found, key=lambda c: (c.centre_id, c.pool_id))[: request.limit]

    found = []
    for host, used in hosts:
        cluster = clusters.get(host.cluster_id)
        free_vcpu = host.vcpu - used.vcpu
        free_memory = host.memory_gib - used.memory_gib
        if (
            cluster is None
            or host.state is not HostState.ACTIVE
            or free_vcpu < request.vcpu
            or free_memory < request.memory_gib
            or host.id in request.excluded_host_ids
            or (request.ownership is not None and cluster.ownership is not request.ownership)
            or not _traits_fit(host.traits, request)
            or not centre_fits(cluster.centre_id)
        ):
            continue
        pool_id, free_gib = "", 0
        if request.needs_storage:
            best = best_pool_by_centre.get(cluster.centre_id)
            if best is None:
                continue
            pool_id, free_gib = best[0].id, best[1]
        found.append(
            Candidate(
                cluster.centre_id,
                host.id,
                pool_id,
                Resources(vcpu=free_vcpu, memory_gib=free_memory, storage_gib=free_gib),
            )
        )
    found.sort(key=lambda c: (c.centre_id, c.host_id))
    return found[: request.limit]
