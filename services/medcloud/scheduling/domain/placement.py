"""Placement of one business system, all instances or none, with the reason every host was chosen or
removed."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from medcloud.core.errors import InvalidArgument
from medcloud.scheduling.domain import consolidation
from medcloud.scheduling.domain.model import (
    BusinessSystem,
    CentreRole,
    DataClassification,
    HostOption,
    Instance,
    RegionView,
    system_violations,
)
from medcloud.scheduling.domain.progress import PlacedSoFar, Reservation, WorkingView, frontier
from medcloud.scheduling.domain.rules import (
    DEFAULT_FILTERS,
    DEFAULT_WEIGHERS,
    CapacityFilter,
    CostWeigher,
    DataResidencyFilter,
    Filter,
    FreeMemoryWeigher,
    FreeVcpuWeigher,
    HostAntiAffinityFilter,
    PreferenceWeigher,
    PrimaryStandbyAntiAffinityFilter,
    ProductionSiteWeigher,
    RackAntiAffinityFilter,
    RemoteCityStandbyFilter,
    RuleRef,
    SameCityStandbyFilter,
    SameHostPenaltyWeigher,
    SameRackPenaltyWeigher,
    StorageFilter,
    Weigher,
)

# Weighted sums of floats differ in the last bits with the order of addition; hosts closer than
# this count as tied, and the host id decides.
_SCORE_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Removal:
    host_id: str
    reason: str


@dataclass(frozen=True)
class InstanceExplanation:
    """Why one instance went where it went, or why it could not go anywhere.

    `removed` maps each rule to the hosts it removed, in filter order; a host refused by several
    rules is charged to the first. `relaxed` maps each soft rule that was ignored, because it would
    have removed every host left, to the hosts it would have removed. `scores` holds the chosen
    host's score per weigher (0..1 before weighting) and `total_score` their weighted sum.

    `moved_from_host_id` names the host the instance was placed on first when a consolidating
    batch moved it (see `place_batch`); the removals and scores are then those of the region as
    consolidation left it, the instance's own vCPU, memory and storage not counted."""

    instance: Instance
    removed: Mapping[RuleRef, tuple[Removal, ...]]
    relaxed: Mapping[RuleRef, tuple[Removal, ...]] = field(default_factory=dict)
    chosen_host_id: str = ""
    scores: Mapping[RuleRef, float] = field(default_factory=dict)
    total_score: float = 0.0
    moved_from_host_id: str = ""

    def removed_by(self, host_id: str) -> RuleRef | None:
        """The rule that removed the host for this instance, or None if no rule did."""
        for rule, removals in self.removed.items():
            if any(removal.host_id == host_id for removal in removals):
                return rule
        return None

    def removed_host_ids(self, rule: RuleRef) -> list[str]:
        return [removal.host_id for removal in self.removed.get(rule, ())]

    def summary(self) -> str:
        """One line: where the instance went, or that no host admits it and which rules removed how
        many hosts."""
        counts = ", ".join(
            f"{rule} removed {_hosts(count)}" for rule, count in _counts(self.removed).items()
        )
        if not self.chosen_host_id:
            return f"no host admits {self.instance}: {counts or 'the region offers no host'}"
        line = f"{self.instance} on host {self.chosen_host_id}"
        if self.moved_from_host_id:
            line += f", moved from host {self.moved_from_host_id} to use fewer hosts"
        if counts:
            line += f" ({counts})"
        if self.relaxed:
            line += "; ignored soft rules that would have removed every host left: " + ", ".join(
                str(rule) for rule in self.relaxed
            )
        return line


def _counts(removed: Mapping[RuleRef, tuple[Removal, ...]]) -> dict[RuleRef, int]:
    if isinstance(removed, _LazyRemovals):
        return dict(removed.counts)
    return {rule: len(removals) for rule, removals in removed.items()}


class _Replay:
    """What it takes to work out again which host each rule removed for one instance: the region,
    the reservations made before it (a shared, append-only log), any of them given back, and where
    its system stood. Keeping this instead of the removals keeps an explanation's size independent
    of the region's."""

    def __init__(
        self,
        system: BusinessSystem,
        instance: Instance,
        view: RegionView,
        log: list[Reservation],
        log_length: int,
        placed: tuple[tuple[Instance, str], ...],
        filters: Sequence[Filter],
        given_back: Reservation | None = None,
    ) -> None:
        self._args = (system, instance, view, log, log_length, placed, filters, given_back)
        self._result: tuple[dict, dict] | None = None

    def result(self) -> tuple[dict, dict]:
        if self._result is None:
            system, instance, view, log, log_length, placed_records, filters, given_back = (
                self._args
            )
            working = WorkingView.replayed(view, log[:log_length])
            if given_back is not None:
                host_id, vcpu, memory_gib, pool_id, storage_gib = given_back
                working.reserve(host_id, -vcpu, -memory_gib, pool_id, -storage_gib)
            placed = PlacedSoFar()
            for placed_instance, host_id in placed_records:
                placed.record(placed_instance, working.host(host_id))
            _, removed, relaxed = _filter_every_host(system, instance, working, placed, filters)
            self._result = (removed, relaxed)
        return self._result


class _LazyRemovals(Mapping[RuleRef, tuple[Removal, ...]]):
    """Rule -> removals, with the rules and their counts known at once and the removals (host ids and
    reasons) worked out on first use."""

    def __init__(self, counts: dict[RuleRef, int], replay: _Replay, part: int) -> None:
        self.counts = counts
        self._replay = replay
        self._part = part

    def __getitem__(self, rule: RuleRef) -> tuple[Removal, ...]:
        if rule not in self.counts:
            raise KeyError(rule)
        return self._replay.result()[self._part][rule]

    def __iter__(self):
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    def __repr__(self) -> str:
        return repr(dict(self))


def _hosts(count: int) -> str:
    return "1 host" if count == 1 else f"{count} hosts"


@dataclass(frozen=True)
class Explanation:
    """The reasons behind a placement, one entry per instance tried, in placement order."""

    instances: tuple[InstanceExplanation, ...]

    def of(self, instance: Instance) -> InstanceExplanation:
        for explained in self.instances:
            if explained.instance == instance:
                return explained
        raise KeyError(f"{instance} was not tried")

    def __str__(self) -> str:
        return "\n".join(explained.summary() for explained in self.instances)


@dataclass(frozen=True)
class Assignment:
    """Where one instance runs: a host and, if the system needs storage, a pool in the same centre."""

    instance: Instance
    host_id: str
    pool_id: str
    centre_id: str
    scores: Mapping[RuleRef, float]
    total_score: float


@dataclass(frozen=True)
class Decision:
    """Every instance of the system placed."""

    system_id: str
    assignments: tuple[Assignment, ...]
    explanation: Explanation


@dataclass(frozen=True)
class Refusal:
    """No instance placed, because `instance` fits nowhere; the explanation says which rule removed
    which host for it and for the instances placed before it."""

    system_id: str
    instance: Instance
    explanation: Explanation

    @property
    def message(self) -> str:
        return self.explanation.of(self.instance).summary()


def place_system(
    system: BusinessSystem,
    view: RegionView,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
    weighers: Sequence[Weigher] = DEFAULT_WEIGHERS,
    keep: Sequence[Assignment] = (),
) -> Decision | Refusal:
    """Places every instance of `system`, primaries first, each on the best host the filters admit,
    seeing what the earlier instances took. Greedy: an instance placed is never moved to make room
    for a later one. Raises InvalidArgument if the system breaks a field rule; `view` is not changed.

    `keep` holds assignments that stay where they are (a scale-out, or a re-placement after a host
    went down): their capacity is already taken in `view`, and the rules see them as placed, so
    only the other instances are placed anew."""
    _require_valid(system)
    return _place_on(system, WorkingView(view), filters, weighers, keep)


def place_batch(
    systems: Sequence[BusinessSystem],
    view: RegionView,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
    weighers: Sequence[Weigher] = DEFAULT_WEIGHERS,
    consolidate: bool = False,
) -> list[Decision | Refusal]:
    """Places many systems on one region, each seeing what the ones before it took, and returns one
    result per system in the order given. The hardest to place go first: higher DR tier, then
    personal health data or limited data sets, then more vCPU in all, then by id. Each system is
    placed whole or not at all: a refused one takes nothing. Raises InvalidArgument, placing
    nothing, if any system breaks a field rule.

    With `consolidate` (meant for PACKING_WEIGHERS, which it completes: on the bench's problems
    greedy packing alone uses 10-30% more hosts than needed), the placed instances are then moved
    between the hosts the batch uses, within their centre, while that empties a host (see
    `consolidation.consolidate`): every move is to a host every filter admits the instance on, and
    keeps every hard rule for the rest of its system. Refusals stay refusals, each system stays
    whole, and a moved instance's assignment and explanation say where it ends and why that host
    admits it (`InstanceExplanation.moved_from_host_id`). It costs time that grows with the
    instances and the hosts per centre; off by default, since spreading (the default weighers)
    wants no packing."""
    for system in systems:
        _require_valid(system)
    working = WorkingView(view)
    results: list[Decision | Refusal | None] = [None] * len(systems)
    for position in sorted(range(len(systems)), key=lambda p: _batch_order(systems[p])):
        system = systems[position]
        log_length = len(working.log)
        outcome = _place_on(system, working, filters, weighers, ())
        if isinstance(outcome, Refusal):
            for host_id, vcpu, memory_gib, pool_id, storage_gib in working.log[log_length:]:
                working.reserve(host_id, -vcpu, -memory_gib, pool_id, -storage_gib)
        results[position] = outcome
    outcomes = [result for result in results if result is not None]
    if consolidate:
        return _consolidated(systems, outcomes, view, filters, weighers)
    return outcomes


def _consolidated(
    systems: Sequence[BusinessSystem],
    results: list[Decision | Refusal],
    view: RegionView,
    filters: Sequence[Filter],
    weighers: Sequence[Weigher],
) -> list[Decision | Refusal]:
    """The results after `consolidation.consolidate`, each moved instance re-explained and
    re-scored where it ends."""
    movables = [
        consolidation.Movable(system, assignment.instance, assignment.host_id, assignment.pool_id)
        for system, result in zip(systems, results, strict=True)
        if isinstance(result, Decision)
        for assignment in result.assignments
    ]
    # Consolidation moves on a working view of its own, so that the log the batch's explanations
    # replay keeps only what they saw, not every move tried.
    working = WorkingView.replayed(
        view, [(m.host_id, *_takes(m.system, m.pool_id)) for m in movables]
    )
    ends = iter(consolidation.consolidate(working, movables, filters))
    host_ids = {(m.system.id, m.instance): next(ends) for m in movables}
    # The region as consolidation left it, one reservation per instance, from which an explanation
    # is rebuilt when asked; a moved instance's own reservation is given back in it.
    final_log: list[Reservation] = [
        (host_ids[m.system.id, m.instance], *_takes(m.system, m.pool_id)) for m in movables
    ]
    consolidated: list[Decision | Refusal] = []
    for system, result in zip(systems, results, strict=True):
        if not isinstance(result, Decision) or all(
            host_ids[system.id, a.instance] == a.host_id for a in result.assignments
        ):
            consolidated.append(result)
            continue
        records = tuple((a.instance, host_ids[system.id, a.instance]) for a in result.assignments)
        assignments, explained = [], {e.instance: e for e in result.explanation.instances}
        for assignment in result.assignments:
            host_id = host_ids[system.id, assignment.instance]
            if host_id == assignment.host_id:
                assignments.append(assignment)
                continue
            own = (host_id, *_takes(system, assignment.pool_id))
            others = tuple(record for record in records if record[0] != assignment.instance)
            explanation = _explained_where_it_ends(
                system,
                assignment.instance,
                own,
                others,
                _Replay(
                    system,
                    assignment.instance,
                    view,
                    final_log,
                    len(final_log),
                    others,
                    filters,
                    given_back=own,
                ),
                working,
                filters,
                weighers,
            )
            explained[assignment.instance] = dataclasses.replace(
                explanation, moved_from_host_id=assignment.host_id
            )
            assignments.append(
                dataclasses.replace(
                    assignment,
                    host_id=host_id,
                    scores=explanation.scores,
                    total_score=explanation.total_score,
                )
            )
        consolidated.append(
            Decision(
                system.id,
                tuple(assignments),
                Explanation(tuple(explained[e.instance] for e in result.explanation.instances)),
            )
        )
    return consolidated


def _takes(system: BusinessSystem, pool_id: str) -> tuple[int, int, str, int]:
    """vCPU, memory GiB, pool id and storage GiB one instance of the system takes."""
    return system.vcpu, system.memory_gib, pool_id, system.storage_gib if pool_id else 0


def _explained_where_it_ends(
    system: BusinessSystem,
    instance: Instance,
    own: Reservation,
    others: tuple[tuple[Instance, str], ...],
    replay: _Replay,
    working: WorkingView,
    filters: Sequence[Filter],
    weighers: Sequence[Weigher],
) -> InstanceExplanation:
    """Every rule asked about every host for `instance` on `working` as consolidation left it, its
    own reservation `own` given back, and its host scored among the hosts the rules admit."""
    host_id, vcpu, memory_gib, pool_id, storage_gib = own
    working.reserve(host_id, -vcpu, -memory_gib, pool_id, -storage_gib)
    try:
        placed = PlacedSoFar()
        for other, other_host_id in others:
            placed.record(other, working.host(other_host_id))
        survivors, removed, relaxed = _filter_every_host(system, instance, working, placed, filters)
        scores_by_host, totals = _weigh(system, instance, survivors, placed, weighers)
    finally:
        working.reserve(host_id, vcpu, memory_gib, pool_id, storage_gib)
    # Consolidation moves an instance only to a host every filter admits, hard and soft, and keeps
    # every hard rule for the rest of its system, so no rule removes the host it ends on.
    chosen = next((k for k, host in enumerate(survivors) if host.host_id == host_id), None)
    assert chosen is not None, f"{instance} ended on host {host_id}, which a rule removes"
    return InstanceExplanation(
        instance,
        _LazyRemovals({rule: len(hosts) for rule, hosts in removed.items()}, replay, 0),
        _LazyRemovals({rule: len(hosts) for rule, hosts in relaxed.items()}, replay, 1),
        host_id,
        scores_by_host[chosen],
        totals[chosen],
    )


def _batch_order(system: BusinessSystem) -> tuple[int, int, int, str]:
    resident = system.classification in _RESIDENT_CLASSIFICATIONS
    return (
        -system.dr_tier,
        0 if resident else 1,
        -system.vcpu * len(system.instances()),
        system.id,
    )


_RESIDENT_CLASSIFICATIONS = frozenset(
    {DataClassification.PERSONAL_HEALTH_DATA, DataClassification.LIMITED_DATA_SET}
)


def _require_valid(system: BusinessSystem) -> None:
    violations = system_violations(system)
    if violations:
        raise InvalidArgument(violations)


def _place_on(
    system: BusinessSystem,
    working: WorkingView,
    filters: Sequence[Filter],
    weighers: Sequence[Weigher],
    keep: Sequence[Assignment],
) -> Decision | Refusal:
    placed = PlacedSoFar()
    placed_records: list[tuple[Instance, str]] = []
    storage_class = system.effective_storage_class
    assignments: list[Assignment] = []
    explained: list[InstanceExplanation] = []
    kept = {assignment.instance: assignment for assignment in keep}
    fast = _fast_rules(filters, weighers)
    for instance in system.instances():
        if instance in kept and working.has_host(kept[instance].host_id):
            placed.record(instance, working.host(kept[instance].host_id))
            placed_records.append((instance, kept[instance].host_id))
            assignments.append(kept[instance])
            continue
        if fast:
            replay = _Replay(
                system,
                instance,
                working.index.view,
                working.log,
                len(working.log),
                tuple(placed_records),
                filters,
            )
            explanation = _place_instance_fast(
                system, instance, working, placed, filters, weighers, replay
            )
        else:
            explanation = _place_instance(system, instance, working, placed, filters, weighers)
        explained.append(explanation)
        if not explanation.chosen_host_id:
            return Refusal(system.id, instance, Explanation(tuple(explained)))
        host = working.host(explanation.chosen_host_id)
        pool_id = ""
        if system.storage_gib > 0 and storage_class is not None:
            pool = working.roomiest_pool(host.centre_id, storage_class)
            # The storage filters (which `filters` must include) admitted this host, so its centre
            # has a pool of the class with room.
            assert pool is not None
            pool_id = pool.pool_id
        working.reserve(host.host_id, system.vcpu, system.memory_gib, pool_id, system.storage_gib)
        placed.record(instance, host)
        placed_records.append((instance, host.host_id))
        assignments.append(
            Assignment(
                instance,
                host.host_id,
                pool_id,
                host.centre_id,
                explanation.scores,
                explanation.total_score,
            )
        )
    return Decision(system.id, tuple(assignments), Explanation(tuple(explained)))


def _place_instance(
    system: BusinessSystem,
    instance: Instance,
    working: WorkingView,
    placed: PlacedSoFar,
    filters: Sequence[Filter],
    weighers: Sequence[Weigher],
) -> InstanceExplanation:
    """Asks every rule about every host: the way for rules the fast path does not know."""
    survivors, removed, relaxed = _filter_every_host(system, instance, working, placed, filters)
    if not survivors:
        return InstanceExplanation(instance, removed)

    scores_by_host, totals = _weigh(system, instance, survivors, placed, weighers)
    best = max(totals)
    chosen_index = min(
        (index for index, total in enumerate(totals) if total >= best - _SCORE_TIE_TOLERANCE),
        key=lambda index: survivors[index].host_id,
    )
    return InstanceExplanation(
        instance,
        removed,
        relaxed,
        survivors[chosen_index].host_id,
        scores_by_host[chosen_index],
        totals[chosen_index],
    )


def _filter_every_host(
    system: BusinessSystem,
    instance: Instance,
    working: WorkingView,
    placed: PlacedSoFar,
    filters: Sequence[Filter],
) -> tuple[
    list[HostOption], dict[RuleRef, tuple[Removal, ...]], dict[RuleRef, tuple[Removal, ...]]
]:
    """The hosts every rule admits, and per rule the hosts it removed (and per soft rule given way,
    the hosts it would have removed), each with the rule's reason."""
    # Each rule's name is worked out once per instance, not once per host.
    applicable = [(f, f.rule) for f in filters if f.applies(system, instance)]
    hard = [(f, rule) for f, rule in applicable if f.hard]
    removed: dict[RuleRef, list[Removal]] = {rule: [] for _, rule in applicable}

    survivors: list[HostOption] = []
    for host in working.hosts():
        for rule_filter, rule in hard:
            reason = rule_filter.refusal(system, instance, host, placed, working)
            if reason is not None:
                removed[rule].append(Removal(host.host_id, reason))
                break
        else:
            survivors.append(host)

    relaxed: dict[RuleRef, tuple[Removal, ...]] = {}
    if survivors:
        # Each soft rule in turn narrows the hosts left, unless it would leave none.
        for rule_filter, rule in ((f, rule) for f, rule in applicable if not f.hard):
            kept: list[HostOption] = []
            refused: list[Removal] = []
            for host in survivors:
                reason = rule_filter.refusal(system, instance, host, placed, working)
                if reason is None:
                    kept.append(host)
                else:
                    refused.append(Removal(host.host_id, reason))
            if kept:
                survivors = kept
                removed[rule] = refused
            elif refused:
                relaxed[rule] = tuple(refused)

    removed_nonempty = {rule: tuple(hosts) for rule, hosts in removed.items() if hosts}
    return survivors, removed_nonempty, relaxed


def _weigh(
    system: BusinessSystem,
    instance: Instance,
    hosts: list[HostOption],
    placed: PlacedSoFar,
    weighers: Sequence[Weigher],
) -> tuple[list[dict[RuleRef, float]], list[float]]:
    """Per host, in the order given: each applicable weigher's score rescaled to 0..1 across the hosts
    (all 0 when the weigher cannot tell them apart), and the weighted total."""
    scores: list[dict[RuleRef, float]] = [{} for _ in hosts]
    totals = [0.0] * len(hosts)
    for weigher in weighers:
        if not weigher.applies(system, instance):
            continue
        rule = weigher.rule
        raw = [weigher.raw_score(system, instance, host, placed) for host in hosts]
        low, high = min(raw), max(raw)
        for index, value in enumerate(raw):
            score = (value - low) / (high - low) if high > low else 0.0
            scores[index][rule] = score
            totals[index] += score * weigher.weight
    return scores, totals


# The fast path. It knows the built-in rules by type and asks each the question it can answer for
# many hosts at once: rules on a host's centre, city, centre role or ownership are decided once per
# group of hosts sharing those; rules on where the system's instances went only look at the racks
# holding them; capacity passes or refuses a whole group from its least and most free host. It
# must choose exactly what `_place_instance` chooses (tests compare the two); the removals'
# reasons are left to `_Replay`, which runs `_filter_every_host` when someone asks.

_GROUP_FILTERS = (
    DataResidencyFilter,
    StorageFilter,
    SameCityStandbyFilter,
    RemoteCityStandbyFilter,
)
_PLACED_FILTERS = (PrimaryStandbyAntiAffinityFilter, HostAntiAffinityFilter, RackAntiAffinityFilter)
_FAST_FILTERS = frozenset({*_GROUP_FILTERS, *_PLACED_FILTERS, CapacityFilter})
_GROUP_WEIGHERS = (CostWeigher, ProductionSiteWeigher, PreferenceWeigher)
_PLACED_WEIGHERS = (SameHostPenaltyWeigher, SameRackPenaltyWeigher)
_FAST_WEIGHERS = frozenset(
    {*_GROUP_WEIGHERS, *_PLACED_WEIGHERS, FreeVcpuWeigher, FreeMemoryWeigher}
)
_CARRIER_MEDICAL_CLOUD = frozenset({CentreRole.CARRIER_PRODUCTION, CentreRole.CARRIER_STANDBY})
_PRODUCTION_SITES = frozenset({CentreRole.HOSPITAL_ROOM, CentreRole.CARRIER_PRODUCTION})


def _fast_rules(filters: Sequence[Filter], weighers: Sequence[Weigher]) -> bool:
    # The bounds in `_best_host` hold for weighers that count for, not against.
    return all(type(f) in _FAST_FILTERS for f in filters) and all(
        type(w) in _FAST_WEIGHERS and w.weight >= 0 for w in weighers
    )


class _Alive:
    """The hosts still in the running: whole groups, and for groups some of whose hosts were removed
    one by one, the hosts left."""

    def __init__(self, groups: list[int], partial: dict[int, list[int]], index) -> None:
        self.groups = groups
        self.partial = partial
        self._index = index

    def hosts_of(self, group: int) -> list[int]:
        partial = self.partial.get(group)
        return partial if partial is not None else self._index.group_hosts[group]

    def more_than(self, count: int) -> bool:
        """Whether more than `count` hosts are left, counting only as far as it takes."""
        for group in self.groups:
            count -= len(self.hosts_of(group))
            if count < 0:
                return True
        return False

    def without_groups(self, refused: Sequence[bool]) -> tuple[_Alive, int]:
        """Without the groups `refused` flags; it holds a flag for every group of the region."""
        kept = [group for group in self.groups if not refused[group]]
        if len(kept) == len(self.groups):
            return self, 0
        removed = sum(len(self.hosts_of(group)) for group in self.groups if refused[group])
        partial = {g: hosts for g, hosts in self.partial.items() if not refused[g]}
        return _Alive(kept, partial, self._index), removed

    def without_hosts(self, refused_by_group: dict[int, set[int]]) -> tuple[_Alive, int]:
        # Only the groups holding a refused host change, so only those are looked at.
        alive = set(self.groups)
        partial = dict(self.partial)
        emptied, removed = set(), 0
        for group, refused in refused_by_group.items():
            if group not in alive:
                continue
            hosts = self.hosts_of(group)
            left = [i for i in hosts if i not in refused]
            removed += len(hosts) - len(left)
            if left:
                partial[group] = left
            else:
                emptied.add(group)
                partial.pop(group, None)
        groups = (
            [group for group in self.groups if group not in emptied] if emptied else self.groups
        )
        return _Alive(groups, partial, self._index), removed


def _place_instance_fast(
    system: BusinessSystem,
    instance: Instance,
    working: WorkingView,
    placed: PlacedSoFar,
    filters: Sequence[Filter],
    weighers: Sequence[Weigher],
    replay: _Replay,
) -> InstanceExplanation:
    index = working.index
    applicable = [(f, f.rule) for f in filters if f.applies(system, instance)]
    counts: dict[RuleRef, int] = {}
    relaxed: dict[RuleRef, int] = {}
    alive = _Alive(list(range(len(index.group_hosts))), {}, index)
    for rule_filter, rule in [(f, r) for f, r in applicable if f.hard] + [
        (f, r) for f, r in applicable if not f.hard
    ]:
        if not alive.groups:
            break
        narrowed, removed = _apply_filter(rule_filter, system, instance, working, placed, alive)
        if not removed:
            continue
        if rule_filter.hard or narrowed.groups:
            alive = narrowed
            counts[rule] = removed
        else:
            relaxed[rule] = removed
    ordered_counts = {rule: counts[rule] for _, rule in applicable if rule in counts}
    removals = _LazyRemovals(ordered_counts, replay, 0)
    if not alive.groups:
        return InstanceExplanation(instance, removals)
    relaxed_removals = _LazyRemovals(relaxed, replay, 1)
    chosen, scores, total = _best_host(system, instance, working, placed, weighers, alive)
    return InstanceExplanation(
        instance, removals, relaxed_removals, index.hosts[chosen].host_id, scores, total
    )


def _apply_filter(
    rule_filter: Filter,
    system: BusinessSystem,
    instance: Instance,
    working: WorkingView,
    placed: PlacedSoFar,
    alive: _Alive,
) -> tuple[_Alive, int]:
    index = working.index
    kind = type(rule_filter)
    if kind is DataResidencyFilter:
        carrier = index.groups_with_role(_CARRIER_MEDICAL_CLOUD)
        return alive.without_groups(
            [
                public and not in_carrier
                for public, in_carrier in zip(index.group_public, carrier, strict=True)
            ]
        )
    if kind is StorageFilter:
        room = working.room_by_centre(rule_filter.storage_class)
        needed_gib = system.storage_gib
        return alive.without_groups(
            [room.get(centre_id, -1) < needed_gib for centre_id in index.group_centre]
        )
    if kind is SameCityStandbyFilter:
        centres, cities = placed.primary_centre_ids, placed.primary_city_keys
        return alive.without_groups(
            [
                centre_id in centres or city not in cities
                for centre_id, city in zip(index.group_centre, index.group_city_key, strict=True)
            ]
        )
    if kind is RemoteCityStandbyFilter:
        cities = placed.primary_city_keys
        return alive.without_groups([city in cities for city in index.group_city_key])
    if kind is CapacityFilter:
        return _without_short_hosts(system, working, alive)
    # The rules on where the system went so far refuse only hosts in the racks holding it.
    refused_by_group: dict[int, set[int]] = {}
    for rack in placed.racks():
        for i in index.rack_hosts.get(rack, ()):
            if rule_filter.refusal(system, instance, index.hosts[i], placed, working) is not None:
                refused_by_group.setdefault(index.group_of[i], set()).add(i)
    return alive.without_hosts(refused_by_group)


def _without_short_hosts(
    system: BusinessSystem, working: WorkingView, alive: _Alive
) -> tuple[_Alive, int]:
    vcpu, memory_gib = system.vcpu, system.memory_gib
    free_vcpu, free_memory = working.free_vcpu, working.free_memory_gib
    groups, partial, removed = [], dict(alive.partial), 0
    for group in alive.groups:
        if working.group_min_vcpu[group] >= vcpu and working.group_min_memory[group] >= memory_gib:
            groups.append(group)
            continue
        hosts = alive.hosts_of(group)
        if working.group_max_vcpu[group] < vcpu or working.group_max_memory[group] < memory_gib:
            left = []
        else:
            left = [i for i in hosts if free_vcpu[i] >= vcpu and free_memory[i] >= memory_gib]
        removed += len(hosts) - len(left)
        if left:
            groups.append(group)
            partial[group] = left
        else:
            partial.pop(group, None)
    return _Alive(groups, partial, working.index), removed


def _best_host(
    system: BusinessSystem,
    instance: Instance,
    working: WorkingView,
    placed: PlacedSoFar,
    weighers: Sequence[Weigher],
    alive: _Alive,
) -> tuple[int, dict[RuleRef, float], float]:
    """The host `_weigh` would rank first (ties by host id), its scores and total, weighing exactly
    (same operations in the same order) only the groups whose bound says they might win."""
    index = working.index
    free_vcpu, free_memory = working.free_vcpu, working.free_memory_gib
    groups = alive.groups
    # Per group the least and most free vCPU and memory of its hosts still in the running.
    lows_v, highs_v, lows_m, highs_m = [], [], [], []
    for group in groups:
        if group in alive.partial:
            hosts = alive.partial[group]
            lows_v.append(min(free_vcpu[i] for i in hosts))
            highs_v.append(max(free_vcpu[i] for i in hosts))
            lows_m.append(min(free_memory[i] for i in hosts))
            highs_m.append(max(free_memory[i] for i in hosts))
        else:
            lows_v.append(working.group_min_vcpu[group])
            highs_v.append(working.group_max_vcpu[group])
            lows_m.append(working.group_min_memory[group])
            highs_m.append(working.group_max_memory[group])

    placed_hosts = {i for rack in placed.racks() for i in index.rack_hosts.get(rack, ())}
    alive_groups = set(groups)
    alive_placed = [
        i
        for i in placed_hosts
        if index.group_of[i] in alive_groups and i in alive.hosts_of(index.group_of[i])
    ]
    some_unplaced = alive.more_than(len(alive_placed))

    # Per applicable weigher: rule, weight, how to score one host, and a bound per group.
    plans = []
    for weigher in weighers:
        if not weigher.applies(system, instance):
            continue
        kind = type(weigher)
        if kind is FreeVcpuWeigher or kind is FreeMemoryWeigher:
            free, lows, highs = (
                (free_vcpu, lows_v, highs_v)
                if kind is FreeVcpuWeigher
                else (free_memory, lows_m, highs_m)
            )
            needed = system.vcpu if kind is FreeVcpuWeigher else system.memory_gib
            low, high = min(lows) - needed, max(highs) - needed

            def raw(i, free=free, needed=needed):
                return free[i] - needed

            # Scored per frontier point below.
            bounds = 0 if kind is FreeVcpuWeigher else 1
        elif kind in _GROUP_WEIGHERS:
            by_group = _group_raw_scores(weigher, system, index)
            values = [by_group[g] for g in groups]
            low, high = min(values), max(values)

            def raw(i, by_group=by_group):
                return by_group[index.group_of[i]]

            bounds = _scaled_all(values, low, high, weigher.weight)
        else:
            by_host = {
                i: weigher.raw_score(system, instance, index.hosts[i], placed) for i in alive_placed
            }
            values = list(by_host.values()) + ([0] if some_unplaced else [])
            low, high = min(values), max(values)

            def raw(i, by_host=by_host):
                return by_host.get(i, 0)

            # Per group the best raw score: 0 if it has a host holding none of the system.
            best_raw: dict[int, float] = {}
            for i, value in by_host.items():
                group = index.group_of[i]
                best_raw[group] = max(best_raw.get(group, value), value)
            for group, count in Counter(index.group_of[i] for i in by_host).items():
                if count < len(alive.hosts_of(group)):
                    best_raw[group] = max(best_raw[group], 0)
            bounds = _scaled_all([best_raw.get(g, 0) for g in groups], low, high, weigher.weight)
        plans.append((weigher.rule, weigher.weight, raw, low, high, bounds))

    # A group's bound adds up, in the totals' order, the best score each weigher can give one of
    # its hosts at one frontier point; rounding is monotone, so no host of the group totals more,
    # and without the weighers on where the system went, some host totals exactly that. Adding a
    # number is monotone too, so the terms after the last one read at a frontier point are added
    # once, to the best of the points, instead of once per point: the same bound, for less work.
    terms = [
        (
            weight,
            low,
            high,
            bounds,
            None
            if not isinstance(bounds, int)
            else (system.vcpu if bounds == 0 else system.memory_gib),
        )
        for _, weight, _, low, high, bounds in plans
    ]
    per_point = max((n + 1 for n, term in enumerate(terms) if term[4] is not None), default=0)
    head, tail = terms[:per_point], [bounds for _, _, _, bounds, _ in terms[per_point:]]
    # The usual head, free vCPU then free memory: the loop below, unrolled, as it runs per group
    # and per frontier point for every instance.
    unrolled = [term[3] for term in head] == [0, 1]
    if unrolled:
        (weight_v, low_v, high_v, _, needed_v), (weight_m, low_m, high_m, _, needed_m) = head
        span_v, span_m = high_v - low_v, high_m - low_m
        wide_v, wide_m = high_v > low_v, high_m > low_m
    group_bounds = []
    for k, group in enumerate(groups):
        bound = 0.0
        if head:
            if group in alive.partial:
                points = frontier((free_vcpu[i], free_memory[i]) for i in alive.partial[group])
            else:
                points = working.group_frontier[group]
            bound = float("-inf")
            for point in points:
                total = 0.0
                if unrolled:
                    total += ((point[0] - needed_v - low_v) / span_v if wide_v else 0.0) * weight_v
                    total += ((point[1] - needed_m - low_m) / span_m if wide_m else 0.0) * weight_m
                else:
                    for weight, low, high, bounds, needed in head:
                        if needed is None:
                            total += bounds[k]
                        else:
                            score = (
                                (point[bounds] - needed - low) / (high - low) if high > low else 0.0
                            )
                            total += score * weight
                if total > bound:
                    bound = total
        for bounds in tail:
            bound += bounds[k]
        group_bounds.append(bound)

    def scores_of(i: int) -> dict[RuleRef, float]:
        return {
            rule: (raw(i) - low) / (high - low) if high > low else 0.0
            for rule, _, raw, low, high, _ in plans
        }

    def total_of(i: int) -> float:
        total = 0.0
        for _, weight, raw, low, high, _ in plans:
            total += ((raw(i) - low) / (high - low) if high > low else 0.0) * weight
        return total

    # First the best total: groups by bound, until no group left can beat what was found.
    best_total = float("-inf")
    for k in sorted(range(len(groups)), key=group_bounds.__getitem__, reverse=True):
        if group_bounds[k] <= best_total:
            break
        best_total = max(best_total, *(total_of(i) for i in alive.hosts_of(groups[k])))
    # Then, among the hosts within the tolerance of it, the one with the smallest id.
    threshold = best_total - _SCORE_TIE_TOLERANCE
    host_ids = index.host_ids
    in_reach = sorted(
        (
            min(host_ids[i] for i in alive.partial[groups[k]])
            if groups[k] in alive.partial
            else index.group_min_id[groups[k]],
            k,
        )
        for k in range(len(groups))
        if group_bounds[k] >= threshold
    )
    chosen_id, chosen, chosen_total = None, -1, 0.0
    for smallest_id, k in in_reach:
        if chosen_id is not None and smallest_id > chosen_id:
            break
        for i in alive.hosts_of(groups[k]):
            if chosen_id is not None and host_ids[i] >= chosen_id:
                continue
            total = total_of(i)
            if total >= threshold:
                chosen_id, chosen, chosen_total = host_ids[i], i, total
    return chosen, scores_of(chosen), chosen_total


def _scaled_all(values: list[float], low: float, high: float, weight: float) -> list[float]:
    """Each value rescaled to 0..1 between `low` and `high`, times `weight`, as `_weigh` does."""
    if high > low:
        return [(value - low) / (high - low) * weight for value in values]
    return [0.0 * weight] * len(values)


def _group_raw_scores(weigher: Weigher, system: BusinessSystem, index) -> list[float]:
    """A weigher on what never changes about a group's hosts: its raw score per group."""
    kind = type(weigher)
    if kind is CostWeigher:
        return [1.0 if public else 0.0 for public in index.group_public]
    if kind is ProductionSiteWeigher:
        return [1.0 if site else 0.0 for site in index.groups_with_role(_PRODUCTION_SITES)]
    centre_ids = system.preferences.centre_ids
    preferred_cities = {city.strip().casefold() for city in system.preferences.cities}
    return [
        float(centre_id in centre_ids) + float(city in preferred_cities)
        for centre_id, city in zip(index.group_centre, index.group_city_key, strict=True)
    ]
