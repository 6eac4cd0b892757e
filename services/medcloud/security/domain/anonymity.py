"""k-anonymity of a data set over its quasi-identifiers, naming the combinations too rare to release
(GB/T 37964-2019, k-anonymity model)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from medcloud.core.errors import InvalidArgument


@dataclass(frozen=True)
class Group:
    """Records that share one combination of quasi-identifier values; `values` follow
    `quasi_identifiers`, and a missing value is None."""

    quasi_identifiers: tuple[str, ...]
    values: tuple[object, ...]
    size: int

    def __str__(self) -> str:
        combination = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self.quasi_identifiers, self.values, strict=True)
        )
        return f"{{{combination}}}: {self.size} record{'' if self.size == 1 else 's'}"


@dataclass(frozen=True)
class AnonymityReport:
    """How the records fall into groups of equal quasi-identifiers; `k` is the smallest group.

    An empty data set has k = 0: there is no group to hide in, and a release gate must not pass
    what it could not measure. A data set without quasi-identifiers is one group, so k is its
    record count."""

    quasi_identifiers: tuple[str, ...]
    record_count: int
    k: int
    group_sizes: Mapping[tuple[object, ...], int] = field(repr=False)

    def groups_below(self, k_required: int) -> list[Group]:
        """Every group smaller than `k_required`, smallest first, then by its values, so that the
        same data gives the same list."""
        _check_k_required(k_required)
        return [
            Group(self.quasi_identifiers, values, size)
            for values, size in sorted(
                self.group_sizes.items(), key=lambda item: (item[1], repr(item[0]))
            )
            if size < k_required
        ]


@dataclass(frozen=True)
class KAnonymityCheck:
    """The answer to "is this data set k-anonymous for k_required?", with the groups that say no."""

    k_required: int
    k: int
    record_count: int
    offending_groups: tuple[Group, ...]

    @property
    def passed(self) -> bool:
        return self.k >= self.k_required

    def reason(self) -> str:
        if self.passed:
            return f"every quasi-identifier combination has at least {self.k_required} records"
        if self.record_count == 0:
            return f"the data set is empty, so it cannot be shown {self.k_required}-anonymous"
        shown = "; ".join(str(group) for group in self.offending_groups[:_GROUPS_IN_REASON])
        more = len(self.offending_groups) - _GROUPS_IN_REASON
        return (
            f"k is {self.k}, below the required {self.k_required}: "
            f"{len(self.offending_groups)} quasi-identifier combination(s) have fewer records: "
            f"{shown}{f'; and {more} more' if more > 0 else ''}"
        )


# A reason is read by a person; the full list stays in `offending_groups`.
_GROUPS_IN_REASON = 5


def k_anonymity(
    records: Iterable[Mapping[str, object]], quasi_identifiers: Sequence[str]
) -> AnonymityReport:
    """Group the records by their quasi-identifier values; a field a record lacks counts as None."""
    names = tuple(quasi_identifiers)
    group_sizes = Counter(tuple(map(record.get, names)) for record in records)
    return AnonymityReport(
        quasi_identifiers=names,
        record_count=sum(group_sizes.values()),
        k=min(group_sizes.values(), default=0),
        group_sizes=group_sizes,
    )


def check_k(
    records: Iterable[Mapping[str, object]], quasi_identifiers: Sequence[str], k_required: int
) -> KAnonymityCheck:
    _check_k_required(k_required)
    report = k_anonymity(records, quasi_identifiers)
    return KAnonymityCheck(
        k_required=k_required,
        k=report.k,
        record_count=report.record_count,
        offending_groups=tuple(report.groups_below(k_required)),
    )


def _check_k_required(k_required: int) -> None:
    if isinstance(k_required, bool) or not isinstance(k_required, int) or k_required < 1:
        raise InvalidArgument.single("k_required", "must be a whole number of at least 1")
