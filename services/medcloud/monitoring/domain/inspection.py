"""Automated inspection (巡检, R-6.5b): every rule checked on every series of a centre, and every
expected node heard from, in one report of passed and failed checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medcloud.monitoring.domain.evaluation import RuleEngine
from medcloud.monitoring.domain.rules import Rule
from medcloud.monitoring.domain.samples import Sample, SeriesKey

NODE_REPORTS_REQUIREMENT = "R-7.7c"
NODE_REPORTS = "node reports"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report. `node_id` is "" for a check of the centre as a whole; `value` is
    what was measured (the rule's value, or for "node reports" the age of the newest sample in
    seconds), None when there was nothing to measure."""

    requirement_id: str
    name: str
    node_id: str
    passed: bool
    detail: str
    value: float | None


@dataclass(frozen=True, slots=True)
class InspectionReport:
    centre_id: str
    inspected_at: float
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)


def inspect(
    centre_id: str,
    at: float,
    engine: RuleEngine,
    rules: Sequence[Rule],
    nodes: Sequence[str],
    stale_after_seconds: float,
) -> InspectionReport:
    """Inspect one centre as of `at` (the caller's clock; nothing here reads one).

    For each rule (normally the environment rules), each series of the centre it applies to is
    judged on its latest sample if that sample is fresh, and fails as "no reading" if it is stale;
    a rule with no series at all in the centre fails once, centre-wide. Each expected node passes
    "node reports" (R-7.7c) if any of its series has a fresh sample.
    """
    latest: dict[SeriesKey, Sample] = {}
    for series in engine.series():
        if series.centre_id == centre_id:
            sample = engine.latest(series)
            if sample is not None:
                latest[series] = sample
    ordered = sorted(latest, key=lambda series: (series.node_id, series.metric, series.labels))

    checks: list[Check] = []
    for rule in rules:
        applicable = [series for series in ordered if rule.applies_to(series)]
        if not applicable:
            detail = f"{rule.requirement_id}: no reading of {rule.title} in centre {centre_id}"
            checks.append(Check(rule.requirement_id, rule.title, "", False, detail, None))
        for series in applicable:
            checks.append(_rule_check(rule, engine, latest[series], at, stale_after_seconds))

    newest_by_node: dict[str, Sample] = {}
    for series, sample in latest.items():
        newest = newest_by_node.get(series.node_id)
        if newest is None or sample.observed_at > newest.observed_at:
            newest_by_node[series.node_id] = sample
    for node_id in nodes:
        checks.append(_node_check(node_id, newest_by_node.get(node_id), at, stale_after_seconds))
    return InspectionReport(centre_id, at, tuple(checks))


def _rule_check(
    rule: Rule, engine: RuleEngine, sample: Sample, at: float, stale_after_seconds: float
) -> Check:
    node_id = sample.series.node_id
    age = at - sample.observed_at
    if age > stale_after_seconds:
        detail = (
            f"{rule.requirement_id}: no reading of {rule.title} at node {node_id} for "
            f"{age:g} s (stale after {stale_after_seconds:g} s)"
        )
        return Check(rule.requirement_id, rule.title, node_id, False, detail, None)
    window = engine.window(sample.series)
    finding = rule.evaluate(window, sample.observed_at) if window is not None else None
    if finding is None:
        # Too little history to judge (a rate needs half an hour of samples): not a fault of the
        # site, and the "no reading" checks already catch a sensor that has gone quiet.
        detail = (
            f"{rule.requirement_id}: {rule.title} at node {node_id} not judged yet, too little data"
        )
        return Check(rule.requirement_id, rule.title, node_id, True, detail, None)
    return Check(
        rule.requirement_id, rule.title, node_id, not finding.firing, finding.summary, finding.value
    )


def _node_check(
    node_id: str, newest: Sample | None, at: float, stale_after_seconds: float
) -> Check:
    if newest is None:
        detail = f"{NODE_REPORTS_REQUIREMENT}: node {node_id} has sent no sample"
        return Check(NODE_REPORTS_REQUIREMENT, NODE_REPORTS, node_id, False, detail, None)
    seconds = at - newest.observed_at
    passed = seconds <= stale_after_seconds
    detail = (
        f"{NODE_REPORTS_REQUIREMENT}: node {node_id} last reported {seconds:g} s ago"
        f"{'' if passed else f' (stale after {stale_after_seconds:g} s)'}"
    )
    return Check(NODE_REPORTS_REQUIREMENT, NODE_REPORTS, node_id, passed, detail, seconds)
