"""What a rule says about a series at one instant: firing or not, how bad, and why, in words that
name the requirement and the limit."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from medcloud.monitoring.domain.samples import SeriesKey


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    """`summary` is for people: "temperature 26.1 °C above 25.0 °C (summer 23±2 °C)"."""

    rule_id: str
    requirement_id: str
    series: SeriesKey
    severity: Severity
    firing: bool
    value: float
    observed_at: float
    summary: str
