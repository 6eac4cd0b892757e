"""The sharing gate allows an export only when the data's class and de-identification fit the
declared mode, and refuses it otherwise with the reason and the requirement it enforces."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.security.domain.classification import DataClass
from medcloud.security.domain.sharing import (
    ExportRequest,
    SharingMode,
    SharingThresholds,
    decide,
)

FULL, CONTROLLED, ENCLAVE = (
    SharingMode.FULL_PUBLIC,
    SharingMode.CONTROLLED_PUBLIC,
    SharingMode.ENCLAVE,
)


def request(data_class: DataClass, mode: SharingMode, **changes: object) -> ExportRequest:
    fields: dict[str, object] = {
        "dataset_id": "diabetes-2024",
        "data_class": data_class,
        "mode": mode,
        "purpose": "diabetes outcomes study",
        "recipient": "",
        "agreement_id": "",
        "k_anonymity": None,
    }
    if mode is CONTROLLED:
        fields.update(recipient="Sun Yat-sen University", agreement_id="DUA-2024-017")
    fields.update(changes)
    return ExportRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [FULL, CONTROLLED])
def test_identifiable_data_is_refused_for_public_sharing(mode):
    decision = decide(request(DataClass.PERSONAL_HEALTH_DATA, mode))

    assert not decision.allowed
    assert decision.reason.startswith("data_class: personal-health-data identifies patients")
    assert "only in an enclave" in decision.reason
    assert decision.requirement_id == "R-7.5c"


@pytest.mark.parametrize("data_class", list(DataClass))
def test_an_enclave_takes_every_class_since_nothing_leaves_it(data_class):
    decision = decide(request(data_class, ENCLAVE))

    assert decision.allowed
    assert "never leaves" in decision.reason
    assert decision.requirement_id == "R-7.5a"


def test_public_data_may_be_published_openly():
    assert decide(request(DataClass.PUBLIC, FULL)).allowed


@pytest.mark.parametrize(("k", "allowed"), [(10, True), (250, True), (9, False), (None, False)])
def test_de_identified_data_is_published_openly_only_with_k_of_at_least_10(k, allowed):
    decision = decide(request(DataClass.DE_IDENTIFIED, FULL, k_anonymity=k))

    assert decision.allowed is allowed
    assert decision.requirement_id == "R-7.5c"
    if not allowed:
        assert decision.reason.startswith("k_anonymity:")


@pytest.mark.parametrize("data_class", [DataClass.LIMITED_DATA_SET, DataClass.INTERNAL])
def test_a_limited_data_set_or_internal_data_is_never_published_openly(data_class):
    decision = decide(request(data_class, FULL, k_anonymity=50))

    assert not decision.allowed
    assert decision.reason.startswith("data_class:")
    assert "controlled-public" in decision.reason


@pytest.mark.parametrize(
    "data_class", [DataClass.PUBLIC, DataClass.INTERNAL, DataClass.LIMITED_DATA_SET]
)
def test_controlled_sharing_under_an_agreement_takes_classes_up_to_a_limited_data_set(data_class):
    decision = decide(request(data_class, CONTROLLED))

    assert decision.allowed
    assert "DUA-2024-017" in decision.reason
    assert "Sun Yat-sen University" in decision.reason


@pytest.mark.parametrize(("k", "allowed"), [(5, True), (4, False), (None, False)])
def test_de_identified_data_under_an_agreement_needs_k_of_at_least_5(k, allowed):
    decision = decide(request(DataClass.DE_IDENTIFIED, CONTROLLED, k_anonymity=k))

    assert decision.allowed is allowed


@pytest.mark.parametrize("agreement_id", ["", "  "])
def test_controlled_sharing_without_an_agreement_is_refused_naming_the_field(agreement_id):
    decision = decide(request(DataClass.LIMITED_DATA_SET, CONTROLLED, agreement_id=agreement_id))

    assert not decision.allowed
    assert decision.reason.startswith("agreement_id:")
    assert decision.requirement_id == "R-7.5a"


def test_controlled_sharing_without_a_named_recipient_is_refused_naming_the_field():
    decision = decide(request(DataClass.LIMITED_DATA_SET, CONTROLLED, recipient=""))

    assert not decision.allowed
    assert decision.reason.startswith("recipient:")


def test_thresholds_of_a_region_replace_the_defaults():
    strict = SharingThresholds(minimum_k_full_public=20, minimum_k_controlled_public=10)

    assert not decide(request(DataClass.DE_IDENTIFIED, FULL, k_anonymity=15), strict).allowed
    assert decide(request(DataClass.DE_IDENTIFIED, FULL, k_anonymity=20), strict).allowed


def test_thresholds_that_make_open_data_easier_than_agreed_data_are_refused():
    with pytest.raises(InvalidArgument) as refused:
        SharingThresholds(minimum_k_full_public=5, minimum_k_controlled_public=10)
    assert refused.value.violations[0].field == "thresholds.minimum_k_full_public"

    with pytest.raises(InvalidArgument) as too_small:
        SharingThresholds(minimum_k_full_public=10, minimum_k_controlled_public=1)
    assert too_small.value.violations[0].field == "thresholds.minimum_k_controlled_public"


def test_a_malformed_request_is_invalid_rather_than_refused():
    with pytest.raises(InvalidArgument) as refused:
        request(DataClass.PUBLIC, FULL, dataset_id=" ", purpose="", k_anonymity=-1)

    assert {v.field for v in refused.value.violations} == {
        "export_request.dataset_id",
        "export_request.purpose",
        "export_request.k_anonymity",
    }
