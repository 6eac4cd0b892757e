"""The reconcile core with recording ports: which steps run, what the conditions say."""

from __future__ import annotations

from collections import Counter

from medcloud.operators.reconcile import (
    PlacedSystem,
    SiteReconciler,
    StepFailed,
    StepOutcome,
    previous_conditions,
    step_inputs,
)
from medcloud.operators.site import ConditionType, HospitalSite, read_site

MANIFEST = {
    "apiVersion": "medcloud.io/v1alpha1",
    "kind": "HospitalSite",
    "metadata": {"name": "central", "namespace": "hospital-central", "generation": 1},
    "spec": {
        "hospitalId": "central-hospital",
        "region": "panyu",
        "room": {"centreId": "central-room", "city": "Guangzhou", "province": "Guangdong"},
        "nodes": [{"id": "central-core", "role": "core"}],
        "clusters": [
            {
                "name": "hospital-private",
                "role": "private",
                "centreId": "central-room",
                "kubeconfigSecretRef": {"name": "private-kubeconfig"},
            }
        ],
        "systems": [
            {
                "name": "his",
                "kind": "his",
                "classification": "personal-health-data",
                "vcpu": 8,
                "memoryGiB": 32,
                "drTier": 5,
                "cluster": "hospital-private",
            },
        ],
    },
}


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, StepFailed] = {}

    def _record(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.fail:
            raise self.fail[name]

    # RegionServices
    async def register_site(self, site: HospitalSite) -> str:
        self._record("inventory")
        return "registered"

    async def place_systems(self, site: HospitalSite) -> list[PlacedSystem]:
        self._record("scheduling")
        return [PlacedSystem(s.name, "placed", ("panyu-production",)) for s in site.systems]

    async def evaluate_baseline(self, site: HospitalSite) -> StepOutcome:
        self._record("security")
        return StepOutcome(True, "BaselineMet", "met")

    async def protect_systems(self, site: HospitalSite) -> str:
        self._record("backup")
        return "protected"

    async def monitoring_state(self, site: HospitalSite) -> StepOutcome:
        self._record("monitoring")
        return StepOutcome(True, "Reporting", "2 agents")

    async def remove_site(self, site: HospitalSite, keep: frozenset[str]) -> list[str]:
        self._record("remove-services")
        return ["placement"]

    # MemberClusterWork
    async def apply(self, site: HospitalSite) -> str:
        self._record("members")
        return "namespace, quota and policies"

    async def drift(self, site: HospitalSite) -> list[str]:
        return []

    async def remove(self, site: HospitalSite) -> list[str]:
        self._record("remove-members")
        return ["namespace"]

    # SiteValidator
    def problems(self, site: HospitalSite) -> list[str]:
        return []

    # ConformanceProbe
    async def summary(self, site: HospitalSite) -> str:
        self._record("conformance")
        return "40 pass, 2 fail, 6 n/a, 0 unknown"


def _core() -> tuple[SiteReconciler, Recorder]:
    ports = Recorder()
    return SiteReconciler(ports, ports, ports, ports), ports


async def test_a_site_that_every_step_accepts_is_ready():
    core, _ = _core()
    site = read_site(MANIFEST)
    report = await core.reconcile(site)
    assert report.ready and report.phase == "Ready"
    assert [c.type for c in report.conditions] == list(ConditionType)
    status = report.status(site)
    assert status["systemsPlaced"] == 1 and status["drTier"] == 5
    assert status["conformance"] == "40 pass, 2 fail, 6 n/a, 0 unknown"
    assert status["placements"] == [
        {"system": "his", "centres": ["panyu-production"], "state": "placed"}
    ]


async def test_a_failed_step_names_its_reason_and_the_steps_needing_it_wait():
    core, ports = _core()
    ports.fail["scheduling"] = StepFailed("SchedulingUnavailable", "scheduling at x: UNAVAILABLE")
    report = await core.reconcile(read_site(MANIFEST))
    by_type = {c.type: c for c in report.conditions}
    assert by_type[ConditionType.INVENTORIED].status is True
    placed = by_type[ConditionType.PLACED]
    assert placed.status is False and placed.reason == "SchedulingUnavailable"
    # Protection needs the placement; the baseline and monitoring do not, and still run.
    assert by_type[ConditionType.PROTECTED].status is None
    assert by_type[ConditionType.PROTECTED].message == "waits for Placed"
    assert by_type[ConditionType.SECURED].status is True
    assert by_type[ConditionType.MONITORED].status is True
    assert report.phase == "PlacedFailed" and not report.ready
    assert ports.calls["backup"] == 0


async def test_once_the_service_returns_the_next_pass_converges_without_rerunning_done_steps():
    core, ports = _core()
    ports.fail["scheduling"] = StepFailed("SchedulingUnavailable", "down")
    first = await core.reconcile(read_site(MANIFEST))
    del ports.fail["scheduling"]
    second = await core.reconcile(read_site(MANIFEST), {c.type: c for c in first.conditions})
    assert second.ready
    assert ports.calls["inventory"] == 1  # done before, inputs unchanged: not run again
    assert ports.calls["security"] == 1
    assert ports.calls["scheduling"] == 2


async def test_adding_a_system_reruns_only_the_steps_that_read_systems():
    core, ports = _core()
    first = await core.reconcile(read_site(MANIFEST))
    changed = {**MANIFEST, "spec": {**MANIFEST["spec"]}}
    changed["spec"]["systems"] = [
        *MANIFEST["spec"]["systems"],
        {
            "name": "lis",
            "kind": "lis",
            "classification": "personal-health-data",
            "vcpu": 4,
            "memoryGiB": 16,
            "drTier": 4,
            "cluster": "hospital-private",
        },
    ]
    await core.reconcile(read_site(changed), {c.type: c for c in first.conditions})
    assert ports.calls["inventory"] == 1 and ports.calls["monitoring"] == 1
    assert ports.calls["scheduling"] == 2 and ports.calls["backup"] == 2
    assert ports.calls["security"] == 2


async def test_a_condition_keeps_its_transition_time_until_its_status_changes():
    core, ports = _core()
    site = read_site(MANIFEST)
    ports.fail["scheduling"] = StepFailed("SchedulingUnavailable", "down")
    first = await core.reconcile(site)
    # As the operator stores it and reads it back on the next pass.
    stored = first.status(site)
    for condition in stored["conditions"]:  # type: ignore[union-attr]
        condition["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    previous = previous_conditions(stored, step_inputs(first))
    again = await core.reconcile(site, previous)
    times = {c.type: c.last_transition.year for c in again.conditions}
    # Unchanged (done and skipped; failed again; still not Ready): the old time stays.
    assert times[ConditionType.INVENTORIED] == 2020
    assert times[ConditionType.PLACED] == 2020
    assert times[ConditionType.READY] == 2020
    del ports.fail["scheduling"]
    third = await core.reconcile(site, previous)
    times = {c.type: c.last_transition.year for c in third.conditions}
    assert times[ConditionType.INVENTORIED] == 2020
    assert times[ConditionType.PLACED] > 2020 and times[ConditionType.READY] > 2020


async def test_a_recheck_runs_every_step_again():
    core, ports = _core()
    first = await core.reconcile(read_site(MANIFEST))
    await core.reconcile(read_site(MANIFEST), {c.type: c for c in first.conditions}, recheck=True)
    assert set(ports.calls.values()) == {2}


async def test_removal_clears_member_clusters_and_services():
    core, _ = _core()
    removed = await core.remove(read_site(MANIFEST))
    assert removed == ["namespace", "placement"]


async def test_a_conformance_report_that_cannot_be_made_does_not_fail_the_reconcile():
    core, ports = _core()
    ports.fail["conformance"] = StepFailed("Unavailable", "monitoring down")
    report = await core.reconcile(read_site(MANIFEST))
    assert report.ready
    assert report.conformance == "unavailable: StepFailed"
