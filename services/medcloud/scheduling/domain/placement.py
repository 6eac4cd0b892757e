"""Placement of one business system, all instances or none, with the reason every host was chosen or
removed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from medcloud.core.errors import InvalidArgument
from medcloud.scheduling.domain.model import (
    BusinessSystem,
    HostOption,
    Instance,
    RegionView,
    system_violations,
)
from medcloud.scheduling.domain.progress import PlacedSoFar, WorkingView
from medcloud.scheduling.domain.rules import (
    DEFAULT_FILTERS,
    DEFAULT_WEIGHERS,
    Filter,
    RuleRef,
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
    host's score per weigher (0..1 before weighting) and `total_score` their weighted sum."""

    instance: Instance
    removed: Mapping[RuleRef, tuple[Removal, ...]]
    relaxed: Mapping[RuleRef, tuple[Removal, ...]] = field(default_factory=dict)
    chosen_host_id: str = ""
    scores: Mapping[RuleRef, float] = field(default_factory=dict)
    total_score: float = 0.0

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
            f"{rule} removed {_hosts(len(removals))}" for rule, removals in self.removed.items()
        )
        if not self.chosen_host_id:
            return f"no host admits {self.instance}: {counts or 'the region offers no host'}"
        line = f"{self.instance} on host {self.chosen_host_id}"
        if counts:
            line += f" ({counts})"
        if self.relaxed:
            line += "; ignored soft rules that would have removed every host left: " + ", ".join(
                str(rule) for rule in self.relaxed
            )
        return line


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
    violations = system_violations(system)
    if violations:
        raise InvalidArgument(violations)
    working = WorkingView(view)
    placed = PlacedSoFar()
    storage_class = system.effective_storage_class
    assignments: list[Assignment] = []
    explained: list[InstanceExplanation] = []
    kept = {assignment.instance: assignment for assignment in keep}
    for instance in system.instances():
        if instance in kept and working.has_host(kept[instance].host_id):
            placed.record(instance, working.host(kept[instance].host_id))
            assignments.append(kept[instance])
            continue
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
    if not survivors:
        return InstanceExplanation(instance, removed_nonempty)

    scores_by_host, totals = _weigh(system, instance, survivors, placed, weighers)
    best = max(totals)
    chosen_index = min(
        (index for index, total in enumerate(totals) if total >= best - _SCORE_TIE_TOLERANCE),
        key=lambda index: survivors[index].host_id,
    )
    return InstanceExplanation(
        instance,
        removed_nonempty,
        relaxed,
        survivors[chosen_index].host_id,
        scores_by_host[chosen_index],
        totals[chosen_index],
    )


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
