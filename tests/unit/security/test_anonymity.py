"""k-anonymity reports the smallest group of equal quasi-identifiers and names every combination
too rare for the k a release needs."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.security.domain.anonymity import Group, check_k, k_anonymity

QUASI_IDENTIFIERS = ("age", "sex", "postcode")


def rows(count: int, age: str, sex: str, postcode: str) -> list[dict[str, object]]:
    return [{"age": age, "sex": sex, "postcode": postcode, "diagnosis": "E11.9"}] * count


DATA_SET = (
    rows(6, "40-44", "F", "511***")
    + rows(5, "40-44", "M", "511***")
    + rows(2, "90+", "F", "511***")
    + rows(1, "45-49", "M", "510***")
)


def test_k_is_the_size_of_the_smallest_group():
    report = k_anonymity(DATA_SET, QUASI_IDENTIFIERS)

    assert report.k == 1
    assert report.record_count == 14


def test_a_data_set_below_k_is_reported_with_its_offending_groups_smallest_first():
    check = check_k(DATA_SET, QUASI_IDENTIFIERS, k_required=5)

    assert not check.passed
    assert check.k == 1
    assert check.offending_groups == (
        Group(QUASI_IDENTIFIERS, ("45-49", "M", "510***"), 1),
        Group(QUASI_IDENTIFIERS, ("90+", "F", "511***"), 2),
    )
    assert "age='90+', sex='F', postcode='511***'" in check.reason()
    assert "k is 1, below the required 5" in check.reason()


def test_a_data_set_with_every_group_large_enough_passes_with_nothing_named():
    check = check_k(DATA_SET, QUASI_IDENTIFIERS, k_required=1)

    assert check.passed
    assert check.offending_groups == ()


def test_groups_below_lists_only_groups_smaller_than_asked():
    report = k_anonymity(DATA_SET, QUASI_IDENTIFIERS)

    assert [group.size for group in report.groups_below(6)] == [1, 2, 5]
    assert report.groups_below(1) == []


def test_fewer_quasi_identifiers_make_larger_groups():
    assert k_anonymity(DATA_SET, ("sex",)).k == 6


def test_a_data_set_without_quasi_identifiers_is_one_group():
    assert k_anonymity(DATA_SET, ()).k == 14


def test_a_missing_quasi_identifier_counts_as_none():
    records = [{"age": "40-44"}, {"age": "40-44", "sex": None}]

    report = k_anonymity(records, ("age", "sex"))

    assert report.k == 2
    assert report.groups_below(3) == [Group(("age", "sex"), ("40-44", None), 2)]


def test_an_empty_data_set_has_k_zero_and_passes_no_check():
    check = check_k([], QUASI_IDENTIFIERS, k_required=1)

    assert check.k == 0
    assert not check.passed
    assert check.offending_groups == ()
    assert "empty" in check.reason()


def test_a_long_list_of_offending_groups_is_shortened_in_the_reason():
    records = [{"age": str(age)} for age in range(8)]

    check = check_k(records, ("age",), k_required=2)

    assert len(check.offending_groups) == 8
    assert check.reason().endswith("; and 3 more")


@pytest.mark.parametrize("k_required", [0, -1, True, 2.5])
def test_a_required_k_below_one_is_refused(k_required):
    with pytest.raises(InvalidArgument) as refused:
        check_k(DATA_SET, QUASI_IDENTIFIERS, k_required)

    assert refused.value.violations[0].field == "k_required"
