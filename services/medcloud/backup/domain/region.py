"""The region facts plans are checked against: centres and the links between them."""

from __future__ import annotations

from medcloud.backup.domain.plans import RegionFacts
from medcloud.core.errors import FieldViolation
from medcloud.core.identifiers import dns_label_violations


def check_region_facts(facts: RegionFacts) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    seen: set[str] = set()
    for index, centre in enumerate(facts.centres):
        violations += dns_label_violations(f"facts.centres[{index}].id", centre.id)
        if centre.id in seen:
            violations.append(FieldViolation(f"facts.centres[{index}].id", "appears twice"))
        seen.add(centre.id)
        for part in ("city", "province"):
            if not getattr(centre, part).strip():
                violations.append(FieldViolation(f"facts.centres[{index}].{part}", "is required"))
    for index, link in enumerate(facts.links):
        field = f"facts.links[{index}]"
        for end, centre_id in (("a_centre_id", link.a), ("b_centre_id", link.b)):
            if centre_id not in seen:
                violations.append(
                    FieldViolation(f"{field}.{end}", f"no centre {centre_id!r} among the centres")
                )
        if link.a == link.b:
            violations.append(FieldViolation(field, "a link must join two different centres"))
        if not link.bandwidth_gbps > 0:
            violations.append(
                FieldViolation(
                    f"{field}.bandwidth_gbps",
                    f"must be greater than 0, got {link.bandwidth_gbps:g}",
                )
            )
        if not link.distance_km >= 0:
            violations.append(
                FieldViolation(
                    f"{field}.distance_km", f"must be 0 or more, got {link.distance_km:g}"
                )
            )
    return violations
