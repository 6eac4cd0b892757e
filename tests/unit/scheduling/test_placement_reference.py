"""The fast placer chooses exactly what asking every rule about every host chooses, and explains it
with the same removals; a batch places the hardest systems first, each whole or not at all."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from medcloud.scheduling.domain.model import (
    BusinessSystem,
    DataClassification,
    Preferences,
    RegionView,
)
from medcloud.scheduling.domain.placement import Decision, Refusal, place_batch, place_system
from medcloud.scheduling.domain.progress import PlacedSoFar, WorkingView
from medcloud.scheduling.domain.rules import DEFAULT_FILTERS, DEFAULT_WEIGHERS
from tests.unit.scheduling.regions import REGION, his, roles
from tests.unit.scheduling.test_placement_properties import regions, systems


def reference_place(system: BusinessSystem, view: RegionView):
    """Every rule asked about every host, as the placer did before it grew a fast path: per
    instance, (host id or "", pool id, scores, total, removed, relaxed)."""
    working = WorkingView(view)
    placed = PlacedSoFar()
    outcome = []
    for instance in system.instances():
        applicable = [f for f in DEFAULT_FILTERS if f.applies(system, instance)]
        removed = {f.rule: [] for f in applicable}
        survivors = []
        for host in working.hosts():
            for f in (f for f in applicable if f.hard):
                reason = f.refusal(system, instance, host, placed, working)
                if reason is not None:
                    removed[f.rule].append((host.host_id, reason))
                    break
            else:
                survivors.append(host)
        relaxed = {}
        for f in (f for f in applicable if not f.hard) if survivors else ():
            refused = [
                (h.host_id, r)
                for h in survivors
                if (r := f.refusal(system, instance, h, placed, working)) is not None
            ]
            if len(refused) < len(survivors):
                ids = {host_id for host_id, _ in refused}
                survivors = [h for h in survivors if h.host_id not in ids]
                removed[f.rule] = refused
            elif refused:
                relaxed[f.rule] = refused
        removed = {rule: hosts for rule, hosts in removed.items() if hosts}
        if not survivors:
            outcome.append(("", "", {}, 0.0, removed, {}))
            return outcome
        totals = [0.0] * len(survivors)
        scores = [{} for _ in survivors]
        for w in (w for w in DEFAULT_WEIGHERS if w.applies(system, instance)):
            raw = [w.raw_score(system, instance, h, placed) for h in survivors]
            low, high = min(raw), max(raw)
            for k, value in enumerate(raw):
                scores[k][w.rule] = (value - low) / (high - low) if high > low else 0.0
                totals[k] += scores[k][w.rule] * w.weight
        best = max(totals)
        k = min(
            (k for k, total in enumerate(totals) if total >= best - 1e-9),
            key=lambda k: survivors[k].host_id,
        )
        host = survivors[k]
        pool_id = ""
        if system.storage_gib and system.effective_storage_class:
            pool_id = working.roomiest_pool(host.centre_id, system.effective_storage_class).pool_id
        working.reserve(host.host_id, system.vcpu, system.memory_gib, pool_id, system.storage_gib)
        placed.record(instance, host)
        outcome.append((host.host_id, pool_id, scores[k], totals[k], removed, relaxed))
    return outcome


def fast_place(system: BusinessSystem, view: RegionView):
    result = place_system(system, view)
    pools = {}
    if isinstance(result, Decision):
        pools = {a.instance: a.pool_id for a in result.assignments}
    return [
        (
            e.chosen_host_id,
            pools.get(e.instance, ""),
            dict(e.scores),
            e.total_score,
            {
                rule: [(r.host_id, r.reason) for r in removals]
                for rule, removals in e.removed.items()
            },
            {
                rule: [(r.host_id, r.reason) for r in removals]
                for rule, removals in e.relaxed.items()
            },
        )
        for e in result.explanation.instances
    ]


@st.composite
def preferring_systems(draw) -> BusinessSystem:
    system = draw(systems())
    centre_ids = draw(st.frozensets(st.sampled_from(("c0", "c1", "c2")), max_size=2))
    cities = draw(st.frozensets(st.sampled_from(("Guangzhou", " chengdu")), max_size=1))
    return dataclasses.replace(system, preferences=Preferences(centre_ids, cities))


@settings(max_examples=300, deadline=None)
@given(view=regions(), system=preferring_systems())
def test_the_fast_placer_decides_and_explains_as_asking_every_host_does(view, system):
    expected = reference_place(system, view)
    if not expected[-1][0]:
        # A refusal carries no assignments, so no pools to compare.
        expected = [(host_id, "", *rest) for host_id, _, *rest in expected]
    assert fast_place(system, view) == expected


def test_the_summary_counts_match_the_removals_it_names():
    refusal = place_system(his(roles=roles(9), dr_tier=5), REGION)
    assert isinstance(refusal, Refusal)
    explained = refusal.explanation.of(refusal.instance)
    assert explained.summary() == f"no host admits {refusal.instance}: " + ", ".join(
        f"{rule} removed {len(removals)} host{'s' if len(removals) != 1 else ''}"
        for rule, removals in explained.removed.items()
    )


def test_a_batch_places_higher_tiers_and_health_data_first_and_answers_in_input_order():
    small = his(id="small", dr_tier=0, roles=roles(1), classification=DataClassification.PUBLIC)
    health = his(id="health", dr_tier=0, roles=roles(1))
    tier_6 = his(id="tier-6", dr_tier=6, vcpu=2)
    big = his(id="big", dr_tier=0, roles=roles(2), classification=DataClassification.PUBLIC)
    results = place_batch([small, health, tier_6, big], REGION)
    assert [r.system_id for r in results] == ["small", "health", "tier-6", "big"]
    # Placed one after another in batch order on one working view, each sees what went before.
    view = REGION
    for system in (tier_6, health, big, small):
        alone = place_system(system, view)
        assert results[[small, health, tier_6, big].index(system)].assignments == (
            alone.assignments
        )
        working = WorkingView(view)
        for a in alone.assignments:
            working.reserve(
                a.host_id, system.vcpu, system.memory_gib, a.pool_id, system.storage_gib
            )
        view = working.snapshot()


def test_a_refused_system_in_a_batch_takes_nothing():
    too_many = his(id="too-many", dr_tier=5, roles=roles(9), vcpu=30)
    after = his(id="after", dr_tier=0, roles=roles(1))
    refused, placed = place_batch([too_many, after], REGION)
    assert isinstance(refused, Refusal)
    assert placed.assignments == place_system(after, REGION).assignments
