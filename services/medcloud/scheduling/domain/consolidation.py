"""Consolidation after a batch: instances move between the hosts the batch uses, within their centre,
while that empties a host, and only to a host every rule admits them on."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from medcloud.scheduling.domain.model import BusinessSystem, Instance
from medcloud.scheduling.domain.progress import PlacedSoFar, WorkingView
from medcloud.scheduling.domain.rules import Filter

# An attempt to empty a host places, ejects and swaps until every instance it held has a place or
# nothing more can be done; this bounds one that keeps going without getting there (on the bench's
# problems no attempt that succeeds takes more than a few rounds).
_MAX_ROUNDS_PER_HOST = 50
# Shares are sums of float ratios; a swap must gain more than rounding does.
_SHARE_TOLERANCE = 1e-9
# Where an instance is while it is lifted off its host, looking for another.
_NO_HOST = -1


@dataclass(frozen=True)
class Movable:
    """An instance the batch placed, on `host_id`, its storage (if any) in `pool_id`."""

    system: BusinessSystem
    instance: Instance
    host_id: str
    pool_id: str


def consolidate(
    working: WorkingView, placed: Sequence[Movable], filters: Sequence[Filter]
) -> list[str]:
    """Moves instances of `placed` off the host the batch uses least, onto the other hosts it uses
    in the same centre, as long as that empties a host; returns where each instance ends, in the
    order given. `working` must hold what `placed` takes, and ends holding where it ends.

    Emptying a host first puts each of its instances on the fullest host with room for it; when one
    is left over, an instance on another host moves on to make room for it (an ejection chain), or
    one or two instances on a host are swapped for one or two larger ones left over, so that those
    left over get smaller (Levine and Ducatelle's dominance swaps). An attempt that leaves an
    instance without a host is undone. Instances keep their pool: a centre's pools serve all its
    hosts, so no data moves.

    A move is made only if every filter, hard and soft, admits the instance on its new host, and
    every hard filter still admits every other instance of its system where that stands; hosts
    never give more vCPU or memory than they have free, whatever the filters."""
    search = _Search(working, placed, filters)
    search.run()
    return [working.index.host_ids[host] for host in search.host_of]


class _Search:
    def __init__(
        self, working: WorkingView, placed: Sequence[Movable], filters: Sequence[Filter]
    ) -> None:
        index = working.index
        self.working = working
        self.filters = filters
        self.placed = placed
        self.host_of = [index.position[movable.host_id] for movable in placed]
        self.on: dict[int, set[int]] = {}
        self.of_system: dict[str, list[int]] = {}
        for k, movable in enumerate(placed):
            self.on.setdefault(self.host_of[k], set()).add(k)
            self.of_system.setdefault(movable.system.id, []).append(k)
        # What each host had free before the batch: shares of it measure how full a host is. A host
        # placed on by filters without the capacity one may have had nothing free.
        self.capacity_vcpu = [max(vcpu, 1) for vcpu in index.free_vcpu]
        self.capacity_memory_gib = [max(memory_gib, 1) for memory_gib in index.free_memory_gib]
        # (instance, host) moves in order, each with the host it left, so an attempt can be undone.
        self.journal: list[tuple[int, int]] = []

    def run(self) -> None:
        emptied = True
        while emptied:
            emptied = False
            for host in sorted(self._used(), key=lambda i: (self._fill(i), i)):
                if self._empty(host):
                    emptied = True
                    break

    def _used(self) -> list[int]:
        return sorted(host for host, held in self.on.items() if held)

    def _share(self, k: int, host: int) -> float:
        system = self.placed[k].system
        return (
            system.vcpu / self.capacity_vcpu[host]
            + system.memory_gib / self.capacity_memory_gib[host]
        )

    def _fill(self, host: int) -> float:
        """The share of the host's vCPU plus that of its memory the batch takes."""
        capacity_vcpu, capacity_memory = self.capacity_vcpu[host], self.capacity_memory_gib[host]
        return (capacity_vcpu - self.working.free_vcpu[host]) / capacity_vcpu + (
            capacity_memory - self.working.free_memory_gib[host]
        ) / capacity_memory

    def _empty(self, target: int) -> bool:
        index = self.working.index
        mark = len(self.journal)
        centre_id = index.hosts[target].centre_id
        others = [
            host
            for host in self._used()
            if host != target and index.hosts[host].centre_id == centre_id
        ]
        left = sorted(self.on[target])
        for k in left:
            self._move(k, _NO_HOST)
        for _ in range(_MAX_ROUNDS_PER_HOST):
            for k in sorted(left, key=lambda k: (-self._share(k, target), k)):
                for host in sorted(others, key=lambda i: (-self._fill(i), i)):
                    if self._try_move(k, host):
                        left.remove(k)
                        break
            if not left:
                return True
            if not self._eject(left, others, target) and not self._swap(left, others):
                break
        self._undo(mark)
        return False

    def _eject(self, left: list[int], others: list[int], target: int) -> bool:
        """Places one instance left over on a host by moving one of that host's instances on to
        another host."""
        free_vcpu, free_memory = self.working.free_vcpu, self.working.free_memory_gib
        fullest_first = sorted(others, key=lambda i: (-self._fill(i), i))
        for k in sorted(left, key=lambda k: (-self._share(k, target), k)):
            needed = self.placed[k].system
            for host in fullest_first:
                for evicted in sorted(self.on[host]):
                    moving = self.placed[evicted].system
                    if (
                        free_vcpu[host] + moving.vcpu < needed.vcpu
                        or free_memory[host] + moving.memory_gib < needed.memory_gib
                    ):
                        continue
                    for to in fullest_first:
                        if (
                            to == host
                            or free_vcpu[to] < moving.vcpu
                            or free_memory[to] < moving.memory_gib
                        ):
                            continue
                        mark = len(self.journal)
                        self._move(evicted, _NO_HOST)
                        if self._try_move(k, host) and self._try_move(evicted, to):
                            left.remove(k)
                            return True
                        self._undo(mark)
        return False

    def _swap(self, left: list[int], others: list[int]) -> bool:
        """Swaps one or two instances on a host for one or two left over that take a larger share
        of it, the first such swap the rules admit."""
        free_vcpu, free_memory = self.working.free_vcpu, self.working.free_memory_gib
        incoming = [(self._needs(group), group) for group in _ones_and_twos(left)]
        for host in others:
            for outgoing in _ones_and_twos(self.on[host]):
                out_vcpu, out_memory = self._needs(outgoing)
                room_vcpu = free_vcpu[host] + out_vcpu
                room_memory = free_memory[host] + out_memory
                out_share = sum(self._share(k, host) for k in outgoing)
                for (in_vcpu, in_memory), group in incoming:
                    if (
                        in_vcpu > room_vcpu
                        or in_memory > room_memory
                        or sum(self._share(k, host) for k in group) <= out_share + _SHARE_TOLERANCE
                    ):
                        continue
                    mark = len(self.journal)
                    for k in outgoing:
                        self._move(k, _NO_HOST)
                    if all(self._try_move(k, host) for k in group):
                        left[:] = [k for k in left if k not in group] + list(outgoing)
                        return True
                    self._undo(mark)
        return False

    def _needs(self, group: Iterable[int]) -> tuple[int, int]:
        systems = [self.placed[k].system for k in group]
        return sum(s.vcpu for s in systems), sum(s.memory_gib for s in systems)

    def _try_move(self, k: int, host: int) -> bool:
        """Moves the lifted instance `k` to `host` if it has the room and the rules admit it there
        (see `consolidate`)."""
        movable = self.placed[k]
        system, instance = movable.system, movable.instance
        if (
            self.working.free_vcpu[host] < system.vcpu
            or self.working.free_memory_gib[host] < system.memory_gib
        ):
            return False
        target = self.working.host(self.working.index.host_ids[host])
        placed = self._placed_except(system.id, k)
        for rule_filter in self.filters:
            if (
                rule_filter.applies(system, instance)
                and rule_filter.refusal(system, instance, target, placed, self.working) is not None
            ):
                return False
        mark = len(self.journal)
        self._move(k, host)
        for other in self.of_system[system.id]:
            if other != k and self.host_of[other] != _NO_HOST and not self._stands(other):
                self._undo(mark)
                return False
        return True

    def _stands(self, k: int) -> bool:
        """Whether every hard filter admits `k` where it is, its own vCPU, memory and storage not
        counted against it."""
        movable = self.placed[k]
        system, instance = movable.system, movable.instance
        host_id = self.working.index.host_ids[self.host_of[k]]
        self._reserve(k, host_id, -1)
        try:
            host = self.working.host(host_id)
            placed = self._placed_except(system.id, k)
            return not any(
                rule_filter.hard
                and rule_filter.applies(system, instance)
                and rule_filter.refusal(system, instance, host, placed, self.working) is not None
                for rule_filter in self.filters
            )
        finally:
            self._reserve(k, host_id, 1)

    def _placed_except(self, system_id: str, k: int) -> PlacedSoFar:
        placed = PlacedSoFar()
        for other in self.of_system[system_id]:
            if other != k and self.host_of[other] != _NO_HOST:
                host_id = self.working.index.host_ids[self.host_of[other]]
                placed.record(self.placed[other].instance, self.working.host(host_id))
        return placed

    def _move(self, k: int, host: int) -> None:
        """Moves `k` to `host`, or lifts it off its host if `host` is _NO_HOST, and records it."""
        self.journal.append((k, self.host_of[k]))
        self._put(k, host)

    def _undo(self, mark: int) -> None:
        while len(self.journal) > mark:
            k, host = self.journal.pop()
            self._put(k, host)

    def _put(self, k: int, host: int) -> None:
        host_ids = self.working.index.host_ids
        was = self.host_of[k]
        if was != _NO_HOST:
            self.on[was].discard(k)
            self._reserve(k, host_ids[was], -1)
        if host != _NO_HOST:
            self.on.setdefault(host, set()).add(k)
            self._reserve(k, host_ids[host], 1)
        self.host_of[k] = host

    def _reserve(self, k: int, host_id: str, sign: int) -> None:
        movable = self.placed[k]
        system = movable.system
        storage_gib = system.storage_gib if movable.pool_id else 0
        self.working.reserve(
            host_id,
            sign * system.vcpu,
            sign * system.memory_gib,
            movable.pool_id,
            sign * storage_gib,
        )


def _ones_and_twos(ks: Iterable[int]) -> list[tuple[int, ...]]:
    ordered = sorted(ks)
    return [(k,) for k in ordered] + list(itertools.combinations(ordered, 2))
