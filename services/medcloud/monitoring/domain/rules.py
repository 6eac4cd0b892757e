"""Threshold rules that judge one series at one instant, each tagged with the requirement it serves."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from medcloud.monitoring.domain.findings import Finding, Severity
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey
from medcloud.monitoring.domain.windows import SeriesWindow

_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Quantity:
    """What a series measures, in words people read: "temperature", "°C", shown to one decimal."""

    name: str
    unit: str
    decimals: int = 1

    def number(self, value: float, decimals: int | None = None) -> str:
        places = self.decimals if decimals is None else decimals
        return f"{value:,.{places}f}"

    def format(self, value: float, decimals: int | None = None) -> str:
        number = self.number(value, decimals)
        return f"{number} {self.unit}" if self.unit else number

    def format_against(self, value: float, limit: float) -> str:
        """`value` with enough decimals that it does not read the same as a different `limit`:
        "50.21 Hz above 50.20 Hz", never "50.20 Hz above 50.20 Hz"."""
        places = self.decimals
        while (
            value != limit
            and places < 6
            and self.format(value, places) == self.format(limit, places)
        ):
            places += 1
        return self.format(value, places)


@dataclass(frozen=True, slots=True)
class Limits:
    """An allowed range; either bound may be missing. An inclusive bound allows the value itself
    ("≤ 500"), a strict one does not ("< 800"). `text` replaces the generated description where
    the standard states the range another way ("23±2 °C")."""

    minimum: float | None = None
    maximum: float | None = None
    minimum_inclusive: bool = True
    maximum_inclusive: bool = True
    text: str = ""

    def __post_init__(self) -> None:
        if self.minimum is None and self.maximum is None:
            raise ValueError("limits need a minimum, a maximum or both")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")

    def breached_bound(self, value: float) -> float | None:
        """The bound `value` breaks, or None if it is within limits."""
        if self.maximum is not None and (
            value > self.maximum or (value == self.maximum and not self.maximum_inclusive)
        ):
            return self.maximum
        if self.minimum is not None and (
            value < self.minimum or (value == self.minimum and not self.minimum_inclusive)
        ):
            return self.minimum
        return None

    def describe(self, quantity: Quantity) -> str:
        if self.text:
            return self.text
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            if self.minimum_inclusive and self.maximum_inclusive:
                return f"{quantity.number(low)}\N{EN DASH}{quantity.format(high)}"
            low_op = "≥" if self.minimum_inclusive else ">"
            high_op = "≤" if self.maximum_inclusive else "<"
            return f"{low_op} {quantity.format(low)} and {high_op} {quantity.format(high)}"
        if high is not None:
            return f"{'≤' if self.maximum_inclusive else '<'} {quantity.format(high)}"
        assert low is not None
        return f"{'≥' if self.minimum_inclusive else '>'} {quantity.format(low)}"


@dataclass(frozen=True, slots=True)
class Season:
    """Summer or winter by the local calendar month in the region's time zone: the standard's
    summer and winter ranges follow the weather, and the weather follows local dates."""

    summer_months: frozenset[int] = frozenset(range(5, 11))  # May to October
    time_zone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        # Settings arrive as lists; a frozenset keeps the season hashable and immutable.
        object.__setattr__(self, "summer_months", frozenset(self.summer_months))
        if not self.summer_months <= frozenset(range(1, 13)):
            raise ValueError(f"months run 1-12, got {sorted(self.summer_months)}")
        ZoneInfo(self.time_zone)  # fail at construction, not at the first evaluation

    def is_summer(self, at: float) -> bool:
        return datetime.fromtimestamp(at, ZoneInfo(self.time_zone)).month in self.summer_months

    def name_at(self, at: float) -> str:
        return "summer" if self.is_summer(at) else "winter"


@dataclass(frozen=True, kw_only=True)
class Rule(abc.ABC):
    """Judges the series of one metric whose labels match `labels` (sorted (name, value) pairs, or
    a mapping). `evaluate` returns a finding whether firing or not, so alerts can resolve, and None
    only when the window holds too little to judge."""

    id: str
    requirement_id: str
    metric: str
    quantity: Quantity
    severity: Severity
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(sorted(dict(self.labels).items())))

    @property
    def title(self) -> str:
        """What the rule checks, for inspection reports: "temperature"."""
        return self.quantity.name

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """The limit in words: "23±2 °C in summer, 20±2 °C in winter"."""

    @property
    def lookback_seconds(self) -> float:
        """How much history before `at` the rule reads; windows must keep at least this much (a
        sustained rule also needs the sample just before it)."""
        return 0.0

    def applies_to(self, series: SeriesKey) -> bool:
        return series.metric == self.metric and all(
            series.label(name) == value for name, value in self.labels
        )

    @abc.abstractmethod
    def evaluate(self, window: SeriesWindow, at: float) -> Finding | None:
        """The rule's judgement of the window as of `at`, ignoring samples observed after it."""

    def _subject(self, series: SeriesKey) -> str:
        # Labels the rule does not filter on tell apart series the rule treats alike (disk mounts,
        # capacity resources); the ones it filters on are already in the quantity's name.
        filtered = {name for name, _ in self.labels}
        extra = [f"{name} {value}" for name, value in series.labels if name not in filtered]
        return f"{self.quantity.name} ({', '.join(extra)})" if extra else self.quantity.name

    def _finding(self, sample: Sample, firing: bool, value: float, summary: str) -> Finding:
        return Finding(
            rule_id=self.id,
            requirement_id=self.requirement_id,
            series=sample.series,
            severity=self.severity,
            firing=firing,
            value=value,
            observed_at=sample.observed_at,
            summary=f"{self.requirement_id}: {summary}",
        )


@dataclass(frozen=True, kw_only=True)
class _BoundedRule(Rule):
    """Fires while the value is outside its limits; with `for_seconds`, only once it has been
    outside for that long without a sample back inside (Prometheus's `for`). The finding's value
    is the series value at `at`."""

    for_seconds: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.for_seconds < 0:
            raise ValueError(f"for_seconds must not be negative, got {self.for_seconds}")

    @property
    def lookback_seconds(self) -> float:
        return self.for_seconds

    @abc.abstractmethod
    def limits_at(self, at: float) -> tuple[Limits, str]:
        """The limits in force at `at` and how the summary names them."""

    def _sustained(self, limits: str) -> str:
        if not self.for_seconds:
            return limits
        return f"{limits}, firing once outside for {_duration(self.for_seconds)}"

    def evaluate(self, window: SeriesWindow, at: float) -> Finding | None:
        sample = window.latest(at)
        if sample is None:
            return None
        limits, note = self.limits_at(at)
        subject = self._subject(sample.series)
        value = sample.value
        bound = limits.breached_bound(value)
        if bound is None:
            text = f"{subject} {self.quantity.format(value)} within limits ({note})"
            return self._finding(sample, False, value, text)
        breach = (
            f"{subject} {self.quantity.format_against(value, bound)} "
            f"{_relation(value, bound)} {self.quantity.format(bound)}"
        )
        if not self.for_seconds:
            return self._finding(sample, True, value, f"{breach} ({note})")
        outside_since = self._outside_since(window, limits, at)
        lasted = at - outside_since
        if lasted >= self.for_seconds:
            text = f"{breach} for at least {_duration(self.for_seconds)} ({note})"
            return self._finding(sample, True, value, text)
        text = f"{breach} for {_duration(lasted)} of {_duration(self.for_seconds)} ({note})"
        return self._finding(sample, False, value, text)

    def _outside_since(self, window: SeriesWindow, limits: Limits, at: float) -> float:
        """When the run of samples outside the limits that ends at `at` began, as far back as it
        matters: a run that began at or before at - for_seconds is reported as starting at the
        newest sample at or before that instant, which is enough to fire."""
        horizon = at - self.for_seconds
        recent = window.between(horizon, at)
        since = at
        for sample in reversed(recent):
            if limits.breached_bound(sample.value) is None:
                return since
            since = sample.observed_at
        anchor = window.latest(horizon)
        # With no sample before the horizon nobody knows how long the run has lasted: a fresh
        # window must not fire a sustained rule on the strength of its first few samples.
        if (
            anchor is not None
            and since > horizon
            and limits.breached_bound(anchor.value) is not None
        ):
            return anchor.observed_at
        return since


@dataclass(frozen=True, kw_only=True)
class RangeRule(_BoundedRule):
    """A value must stay within fixed limits, such as dust ≤ 18,000 particles/L (R-7.1-3)."""

    limits: Limits

    @property
    def description(self) -> str:
        return self._sustained(self.limits.describe(self.quantity))

    def limits_at(self, at: float) -> tuple[Limits, str]:
        return self.limits, _limit_note(self.limits, self.quantity)


@dataclass(frozen=True, kw_only=True)
class SeasonalRangeRule(_BoundedRule):
    """A summer range and a winter range, chosen by the local date of `at` (R-7.1-1: 23±2 °C in
    summer, 20±2 °C in winter); a backfilled sample is judged by the season it was taken in."""

    summer: Limits
    winter: Limits
    season: Season = field(default_factory=Season)

    @property
    def description(self) -> str:
        return self._sustained(
            f"{self.summer.describe(self.quantity)} in summer, "
            f"{self.winter.describe(self.quantity)} in winter"
        )

    def limits_at(self, at: float) -> tuple[Limits, str]:
        season = self.season.name_at(at)
        limits = self.summer if season == "summer" else self.winter
        return limits, f"{season} {limits.describe(self.quantity)}"


@dataclass(frozen=True, kw_only=True)
class UtilisationRule(_BoundedRule):
    """Utilisation at or above a threshold fires (R-6.5b capacity management)."""

    threshold_percent: float
    metric: str = Metric.CAPACITY_UTILISATION_PERCENT
    quantity: Quantity = Quantity("capacity utilisation", "%")

    @property
    def description(self) -> str:
        return self._sustained(self._limits.describe(self.quantity))

    @property
    def _limits(self) -> Limits:
        return Limits(maximum=self.threshold_percent, maximum_inclusive=False)

    def limits_at(self, at: float) -> tuple[Limits, str]:
        return self._limits, _limit_note(self._limits, self.quantity)


@dataclass(frozen=True, kw_only=True)
class RateOfChangeRule(Rule):
    """The series may not change by `max_change_per_hour` or more per hour, rising or falling
    (R-7.1-2: temperature change < 5 °C per hour). The finding's value is the change per hour,
    from the oldest to the newest sample of the last `over_seconds`."""

    max_change_per_hour: float
    over_seconds: float = 3600.0
    min_span_seconds: float | None = None  # half of over_seconds by default

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.max_change_per_hour > 0 and self.over_seconds > 0):
            raise ValueError("max_change_per_hour and over_seconds must be positive")

    @property
    def title(self) -> str:
        return f"{self.quantity.name} change per hour"

    @property
    def description(self) -> str:
        return f"change < {self.quantity.format(self.max_change_per_hour)}/h"

    @property
    def lookback_seconds(self) -> float:
        return self.over_seconds

    def evaluate(self, window: SeriesWindow, at: float) -> Finding | None:
        sample = window.latest(at)
        if sample is None:
            return None
        rate = window.rate_per_hour(at, self.over_seconds, self.min_span_seconds)
        if rate is None:
            return None
        per_hour = Quantity(self.quantity.name, f"{self.quantity.unit}/h", self.quantity.decimals)
        direction = "rising" if rate > 0 else "falling" if rate < 0 else "changing"
        firing = abs(rate) >= self.max_change_per_hour
        text = (
            f"{self._subject(sample.series)} {direction} "
            f"{per_hour.format_against(abs(rate), self.max_change_per_hour)} "
            f"over the last {_duration(self.over_seconds)}{'' if firing else ', within limits'} "
            f"(limit < {per_hour.format(self.max_change_per_hour)})"
        )
        return self._finding(sample, firing, rate, text)


@dataclass(frozen=True, kw_only=True)
class DaysToFullRule(Rule):
    """The linear trend of a utilisation series reaches `full_percent` within `within_days`
    (R-6.5b capacity management). The finding's value is the days to full: 0 when already full,
    infinity when the trend is flat or falling."""

    within_days: float
    over_seconds: float = 7 * _SECONDS_PER_DAY
    min_span_seconds: float | None = _SECONDS_PER_DAY
    full_percent: float = 100.0
    metric: str = Metric.CAPACITY_UTILISATION_PERCENT
    quantity: Quantity = Quantity("capacity utilisation", "%")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.within_days > 0 and self.over_seconds > 0):
            raise ValueError("within_days and over_seconds must be positive")

    @property
    def title(self) -> str:
        return f"{self.quantity.name} days to full"

    @property
    def description(self) -> str:
        return (
            f"{self.quantity.format(self.full_percent)} not reached within {self.within_days:g} "
            f"days on the trend of the last {_duration(self.over_seconds)}"
        )

    @property
    def lookback_seconds(self) -> float:
        return self.over_seconds

    def evaluate(self, window: SeriesWindow, at: float) -> Finding | None:
        sample = window.latest(at)
        if sample is None:
            return None
        slope = window.trend_per_second(at, self.over_seconds, self.min_span_seconds)
        if slope is None:
            return None
        subject = f"{self._subject(sample.series)} {self.quantity.format(sample.value)}"
        full = self.quantity.format(self.full_percent)
        limit = f"limit {self.within_days:g} days"
        if sample.value >= self.full_percent:
            return self._finding(sample, True, 0.0, f"{subject} already at {full} ({limit})")
        per_day = self.quantity.format(slope * _SECONDS_PER_DAY, self.quantity.decimals + 1)
        if slope <= 0:
            text = f"{subject}, not growing ({per_day}/day), never reaches {full} ({limit})"
            return self._finding(sample, False, math.inf, text)
        days = (self.full_percent - sample.value) / slope / _SECONDS_PER_DAY
        firing = days < self.within_days
        text = f"{subject} reaches {full} in {days:.1f} days at +{per_day}/day ({limit})"
        return self._finding(sample, firing, days, text)


def _relation(value: float, bound: float) -> str:
    return "above" if value > bound else "below" if value < bound else "at"


def _limit_note(limits: Limits, quantity: Quantity) -> str:
    return f"limit {limits.describe(quantity)}"


def _duration(seconds: float) -> str:
    if seconds >= _SECONDS_PER_DAY and seconds % _SECONDS_PER_DAY == 0:
        return f"{seconds / _SECONDS_PER_DAY:g} d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
