"""Region-wide settings of the rule pack: which months are summer, in which time zone, and which
rules a region has switched off."""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass

from medcloud.core.errors import FieldViolation, InvalidArgument

DEFAULT_SUMMER_MONTHS = (5, 6, 7, 8, 9, 10)
DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class RuleSettings:
    summer_months: tuple[int, ...] = DEFAULT_SUMMER_MONTHS
    time_zone: str = DEFAULT_TIME_ZONE
    disabled_rule_ids: tuple[str, ...] = ()

    def check(self, known_rule_ids: Collection[str]) -> None:
        violations = []
        if not self.summer_months or len(self.summer_months) >= 12:
            violations.append(
                FieldViolation("settings.summer_months", "must name 1 to 11 months (R-7.1-1)")
            )
        for index, month in enumerate(self.summer_months):
            if not 1 <= month <= 12:
                violations.append(
                    FieldViolation(f"settings.summer_months[{index}]", "must be 1 to 12")
                )
        if len(set(self.summer_months)) != len(self.summer_months):
            violations.append(FieldViolation("settings.summer_months", "must not repeat a month"))
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            violations.append(
                FieldViolation("settings.time_zone", f"{self.time_zone!r} is not an IANA time zone")
            )
        for index, rule_id in enumerate(self.disabled_rule_ids):
            if rule_id not in known_rule_ids:
                violations.append(
                    FieldViolation(f"settings.disabled_rule_ids[{index}]", f"no rule {rule_id!r}")
                )
        if violations:
            raise InvalidArgument(violations)
