"""Holds the recent samples of every series and judges each new sample by the rules for its series."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from medcloud.monitoring.domain.findings import Finding
from medcloud.monitoring.domain.rules import Rule
from medcloud.monitoring.domain.samples import Sample, SeriesKey
from medcloud.monitoring.domain.windows import SeriesWindow


class _Tracked:
    __slots__ = ("rules", "window")

    def __init__(self, window: SeriesWindow, rules: tuple[Rule, ...]) -> None:
        self.window = window
        self.rules = rules


class RuleEngine:
    """One window per series, each keeping `retention_seconds` or, if longer, the longest history a
    rule of that series reads (a week for days-to-full). Not thread-safe: one owner feeds it."""

    def __init__(self, rules: Iterable[Rule], retention_seconds: float = 6 * 3600) -> None:
        if not retention_seconds > 0:
            raise ValueError(f"retention must be positive, got {retention_seconds} s")
        self._retention_seconds = float(retention_seconds)
        self._tracked: dict[SeriesKey, _Tracked] = {}
        self._set_rules(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def replace_rules(self, rules: Iterable[Rule]) -> None:
        """Judge by `rules` from now on, keeping every series' samples; a window is resized to what
        its new rules read (history it already dropped stays dropped)."""
        self._set_rules(rules)
        for series, tracked in self._tracked.items():
            tracked.rules = self._matching(series)
            retention = self._retention_for(tracked.rules)
            if retention != tracked.window.retention_seconds:
                window = SeriesWindow(retention)
                for sample in tracked.window.samples():
                    window.add(sample)
                tracked.window = window

    def rules_for(self, series: SeriesKey) -> tuple[Rule, ...]:
        tracked = self._tracked.get(series)
        return tracked.rules if tracked is not None else self._matching(series)

    def ingest(self, sample: Sample) -> list[Finding]:
        """Keep the sample and judge its series as of the sample's own time, so a backfilled sample
        is judged by the data around it, not by what came after. A sample the window refuses
        (duplicate, too old, NaN) is not judged."""
        tracked = self._tracked.get(sample.series)
        if tracked is None:
            rules = self._matching(sample.series)
            window = SeriesWindow(self._retention_for(rules))
            tracked = self._tracked[sample.series] = _Tracked(window, rules)
        if not tracked.window.add(sample):
            return []
        findings = []
        for rule in tracked.rules:
            finding = rule.evaluate(tracked.window, sample.observed_at)
            if finding is not None:
                findings.append(finding)
        return findings

    def latest(self, series: SeriesKey) -> Sample | None:
        tracked = self._tracked.get(series)
        return tracked.window.latest() if tracked is not None else None

    def series(self) -> tuple[SeriesKey, ...]:
        return tuple(self._tracked)

    def window(self, series: SeriesKey) -> SeriesWindow | None:
        tracked = self._tracked.get(series)
        return tracked.window if tracked is not None else None

    def _set_rules(self, rules: Iterable[Rule]) -> None:
        rules = tuple(rules)
        counts = Counter(rule.id for rule in rules)
        duplicates = sorted(rule_id for rule_id, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicates)}")
        self._rules = rules
        # Agents send many samples a second in all: find a series' rules by metric, then filter by
        # labels once per series, never per sample.
        by_metric: defaultdict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            by_metric[rule.metric].append(rule)
        self._by_metric = {metric: tuple(found) for metric, found in by_metric.items()}

    def _matching(self, series: SeriesKey) -> tuple[Rule, ...]:
        candidates = self._by_metric.get(series.metric, ())
        return tuple(rule for rule in candidates if rule.applies_to(series))

    def _retention_for(self, rules: tuple[Rule, ...]) -> float:
        return max([self._retention_seconds, *(rule.lookback_seconds for rule in rules)])
