"""The reconcile core: make the region and the member clusters match one HospitalSite, step by
step, and say where it stands. Framework-free: kopf, `medcloudctl apply -f` and the tests drive
the same `SiteReconciler` through its ports.

Steps run in order, each reporting one condition: Validated → Inventoried (the hospital's room,
nodes, links and clusters in inventory) → Placed (each system placed by scheduling; the member
clusters hold the site's namespace, quota, limits and default-deny network policies with their
allowances) → Secured (the MLPS level-3 baseline judged by the security pool) → Protected (backup
and DR for every system with a DR tier) → Monitored (the room's node agents report) → Ready. A
failed step sets its condition False with the reason; the steps that need it wait and the others
still run. A step whose inputs did not change since it last succeeded is not run again;
`recheck` runs every step (the drift timer). Last, the conformance report's one-line summary
goes into the status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from medcloud.operators.site import Condition, ConditionType, HospitalSite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    ok: bool
    reason: str
    message: str


class StepFailed(Exception):
    """A step that cannot complete now: `reason` is a CamelCase word for the condition, and the
    message names what failed and why (a service down, a field refused, a missing Secret)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PlacedSystem:
    system: str
    state: str  # "placed", "degraded", "failed"
    centres: tuple[str, ...]
    message: str = ""


class RegionServices(Protocol):
    """What the core asks of medcloud's services (adapters: gRPC with the operator's identity)."""

    async def register_site(self, site: HospitalSite) -> str:
        """Registers the room, nodes, links and clusters; returns a summary."""

    async def place_systems(self, site: HospitalSite) -> list[PlacedSystem]: ...

    async def evaluate_baseline(self, site: HospitalSite) -> StepOutcome: ...

    async def protect_systems(self, site: HospitalSite) -> str: ...

    async def monitoring_state(self, site: HospitalSite) -> StepOutcome: ...

    async def remove_site(self, site: HospitalSite, keep: frozenset[str]) -> list[str]:
        """Releases what the site holds in the services; returns what it removed. Room objects
        (centre, nodes, links) whose ids are in `keep` belong to the region too and stay."""


class MemberClusterWork(Protocol):
    """The site's namespace, quota, limits and network policies in its member clusters."""

    async def apply(self, site: HospitalSite) -> str:
        """Namespace, quota, limits and network policies in each cluster; a summary."""

    async def drift(self, site: HospitalSite) -> list[str]: ...

    async def remove(self, site: HospitalSite) -> list[str]: ...


class SiteValidator(Protocol):
    def problems(self, site: HospitalSite) -> list[str]: ...


class ConformanceProbe(Protocol):
    async def summary(self, site: HospitalSite) -> str:
        """Where the site stands against the standard: "38 pass, 2 fail, 11 n/a, 0 unknown"."""


@dataclass(frozen=True)
class SiteReport:
    """What one reconcile found: the conditions in step order, and the status fields."""

    conditions: tuple[Condition, ...]
    placements: tuple[PlacedSystem, ...] = ()
    conformance: str = ""

    @property
    def ready(self) -> bool:
        return all(c.status is True for c in self.conditions)

    @property
    def failed_step(self) -> ConditionType | None:
        return next((c.type for c in self.conditions if c.status is False), None)

    @property
    def phase(self) -> str:
        if self.ready:
            return "Ready"
        failed = self.failed_step
        return f"{failed.value}Failed" if failed else "Reconciling"

    def status(self, site: HospitalSite) -> dict[str, object]:
        """The HospitalSite's status subresource."""
        placed = [p for p in self.placements if p.state in ("placed", "degraded")]
        return {
            "observedGeneration": site.generation,
            "phase": self.phase,
            "conditions": [c.as_status(site.generation) for c in self.conditions],
            "systemCount": len(site.systems),
            "systemsPlaced": len(placed),
            "drTier": max((s.dr_tier for s in site.systems), default=0),
            "placements": [
                {"system": p.system, "centres": list(p.centres), "state": p.state}
                for p in self.placements
            ],
            "failedStep": self.failed_step.value if self.failed_step else "",
            "conformance": self.conformance,
        }


@dataclass
class _Step:
    type: ConditionType
    # The spec fields the step reads: a change elsewhere leaves it alone.
    reads: tuple[str, ...]
    run: Callable[[HospitalSite], Awaitable[StepOutcome]]
    # Steps that must have succeeded first; a step needing none of a failed one still runs.
    needs: tuple[ConditionType, ...] = ()


@dataclass
class SiteReconciler:
    services: RegionServices
    members: MemberClusterWork
    validator: SiteValidator
    conformance: ConformanceProbe | None = None
    _placements: dict[str, tuple[PlacedSystem, ...]] = field(default_factory=dict)

    def _steps(self) -> list[_Step]:
        validated, inventoried, placed = (
            ConditionType.VALIDATED,
            ConditionType.INVENTORIED,
            ConditionType.PLACED,
        )
        topology = ("room", "nodes", "links", "clusters")
        return [
            _Step(validated, ("*",), self._validate),
            _Step(inventoried, topology, self._inventory, (validated,)),
            _Step(placed, ("systems", "clusters"), self._place, (inventoried,)),
            _Step(
                ConditionType.SECURED,
                ("security", "systems", "clusters"),
                self._secure,
                (inventoried,),
            ),
            _Step(
                ConditionType.PROTECTED,
                ("systems", "backup", "clusters"),
                self._protect,
                (placed,),
            ),
            _Step(ConditionType.MONITORED, ("room", "nodes"), self._monitor, (inventoried,)),
        ]

    async def reconcile(
        self,
        site: HospitalSite,
        previous: Mapping[ConditionType, Condition] | None = None,
        recheck: bool = False,
    ) -> SiteReport:
        previous = previous or {}
        conditions: list[Condition] = []
        succeeded: set[ConditionType] = set()
        for step in self._steps():
            inputs = (
                site.inputs(*step.reads)
                if step.reads != ("*",)
                else site.inputs(*sorted(site.raw_spec))
            )
            before = previous.get(step.type)
            waiting = [need.value for need in step.needs if need not in succeeded]
            if waiting:
                conditions.append(
                    Condition(step.type, None, "Waiting", f"waits for {', '.join(waiting)}")
                )
                continue
            if not recheck and before and before.status is True and before.inputs == inputs:
                conditions.append(before)  # nothing it reads changed: not run again
                succeeded.add(step.type)
                continue
            outcome = await self._run(step, site)
            changed = before is None or before.status is not outcome.ok
            conditions.append(
                Condition(
                    step.type,
                    outcome.ok,
                    outcome.reason,
                    outcome.message,
                    inputs if outcome.ok else "",
                    **({} if changed else {"last_transition": before.last_transition}),
                )
            )
            if outcome.ok:
                succeeded.add(step.type)
        ready = all(c.status is True for c in conditions)
        was = previous.get(ConditionType.READY)
        conditions.append(
            Condition(
                ConditionType.READY,
                ready,
                "AllStepsSucceeded" if ready else "StepsPending",
                "the region and the member clusters match the spec"
                if ready
                else "; ".join(
                    f"{c.type.value}: {c.message}" for c in conditions if c.status is not True
                )[:1000],
                **({"last_transition": was.last_transition} if was and was.status is ready else {}),
            )
        )
        return SiteReport(
            tuple(conditions), self._placements.get(site.key, ()), await self._conformance(site)
        )

    async def _conformance(self, site: HospitalSite) -> str:
        """The report's summary line; a report that cannot be made says so, it never fails the
        reconcile."""
        if self.conformance is None:
            return ""
        try:
            return await self.conformance.summary(site)
        except Exception as error:
            log.exception("conformance report failed", extra={"site": site.key})
            return f"unavailable: {type(error).__name__}"[:64]

    async def check_drift(self, site: HospitalSite) -> list[str]:
        """What differs in the member clusters from what the site needs (the timer's probe)."""
        return await self.members.drift(site)

    async def remove(
        self, site: HospitalSite, region_ids: frozenset[str] = frozenset()
    ) -> list[str]:
        """Everything the site created, in the services and the member clusters; the room's
        objects that the Region also declares (`region_ids`) stay, as the region's."""
        removed = await self.members.remove(site)
        removed += await self.services.remove_site(site, region_ids)
        self._placements.pop(site.key, None)
        return removed

    async def _run(self, step: _Step, site: HospitalSite) -> StepOutcome:
        try:
            return await step.run(site)
        except StepFailed as failed:
            return StepOutcome(False, failed.reason, failed.message)
        except Exception as error:  # a bug in a step must show in status, not kill the loop
            log.exception("step raised", extra={"site": site.key, "step": step.type.value})
            return StepOutcome(False, "InternalError", f"{type(error).__name__}: {error}")

    async def _validate(self, site: HospitalSite) -> StepOutcome:
        problems = self.validator.problems(site)
        if problems:
            return StepOutcome(False, "InvalidSpec", "; ".join(problems)[:1000])
        return StepOutcome(True, "SpecValid", "the spec meets the CRD's schema and rules")

    async def _inventory(self, site: HospitalSite) -> StepOutcome:
        summary = await self.services.register_site(site)
        return StepOutcome(True, "Registered", summary)

    async def _place(self, site: HospitalSite) -> StepOutcome:
        placed = await self.services.place_systems(site)
        self._placements[site.key] = tuple(placed)
        failed = [p for p in placed if p.state == "failed"]
        if failed:
            return StepOutcome(
                False,
                "PlacementFailed",
                "; ".join(f"{p.system}: {p.message}" for p in failed)[:1000],
            )
        clusters = await self.members.apply(site)
        degraded = [p.system for p in placed if p.state == "degraded"]
        message = f"{len(placed)} systems placed; {clusters}"
        if degraded:
            message += f"; degraded (running with fewer instances): {', '.join(degraded)}"
        return StepOutcome(True, "Placed", message)

    async def _secure(self, site: HospitalSite) -> StepOutcome:
        # The network policies went in with the namespace (Placed); this judges the rest.
        return await self.services.evaluate_baseline(site)

    async def _protect(self, site: HospitalSite) -> StepOutcome:
        return StepOutcome(True, "Protected", await self.services.protect_systems(site))

    async def _monitor(self, site: HospitalSite) -> StepOutcome:
        return await self.services.monitoring_state(site)


def previous_conditions(
    status: Mapping[str, object] | None, inputs: Mapping[str, str]
) -> dict[ConditionType, Condition]:
    """Conditions as stored in status, with the step inputs kept beside them (an annotation)."""
    found: dict[ConditionType, Condition] = {}
    for item in (status or {}).get("conditions", []) or []:  # type: ignore[union-attr]
        try:
            kind = ConditionType(item["type"])
        except (KeyError, ValueError):
            continue
        state = {"True": True, "False": False}.get(item.get("status", ""))
        found[kind] = Condition(
            kind,
            state,
            item.get("reason", ""),
            item.get("message", ""),
            inputs.get(kind.value, ""),
            **_transition(item.get("lastTransitionTime")),
        )
    return found


def _transition(stamp: object) -> dict[str, datetime]:
    """The stored lastTransitionTime, so that a condition that keeps its status keeps its time."""
    if not isinstance(stamp, str):
        return {}
    try:
        return {
            "last_transition": datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        }
    except ValueError:
        return {}


def step_inputs(report: SiteReport) -> dict[str, str]:
    return {c.type.value: c.inputs for c in report.conditions if c.inputs}
