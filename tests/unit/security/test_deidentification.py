"""De-identification leaves no direct identifier in what it releases, keeps pseudonyms stable under
one key and changes them after rotation, generalises each kind of value as documented, and refuses
a policy or a value that breaks a rule, naming the field."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.security.domain.classification import (
    DataClass,
    FieldKind,
    FieldLabel,
    FieldRole,
    RecordSchema,
)
from medcloud.security.domain.deidentification import (
    DeidentificationPolicy,
    GeneraliseAddress,
    GeneraliseAge,
    GeneraliseDate,
    GeneralisePostcode,
    Keep,
    KeyRing,
    Pseudonymise,
    Suppress,
    deidentify,
    deidentify_many,
    prepare_release,
)

D, Q, S = FieldRole.DIRECT_IDENTIFIER, FieldRole.QUASI_IDENTIFIER, FieldRole.SENSITIVE

SCHEMA = RecordSchema(
    (
        FieldLabel("name", D, FieldKind.TEXT),
        FieldLabel("id_card_number", D, FieldKind.CODE),
        FieldLabel("phone", D, FieldKind.CODE),
        FieldLabel("medical_record_number", D, FieldKind.CODE),
        FieldLabel("address", D, FieldKind.ADDRESS),
        FieldLabel("age", Q, FieldKind.AGE),
        FieldLabel("sex", Q, FieldKind.CODE),
        FieldLabel("postcode", Q, FieldKind.POSTCODE),
        FieldLabel("birthplace", Q, FieldKind.ADDRESS),
        FieldLabel("admission_date", Q, FieldKind.DATE),
        FieldLabel("diagnosis_code", S, FieldKind.CODE),
    )
)
POLICY = DeidentificationPolicy(
    SCHEMA,
    {
        "name": Suppress(),
        "id_card_number": Pseudonymise(),
        "phone": Suppress(),
        "medical_record_number": Pseudonymise(),
        "address": Suppress(),
        "age": GeneraliseAge(band_years=10),
        "sex": Keep(),
        "postcode": GeneralisePostcode(keep_digits=3),
        "birthplace": GeneraliseAddress(keep_levels=2),
        "admission_date": GeneraliseDate(to="month"),
        "diagnosis_code": Keep(),
    },
)
KEY_1 = b"k" * 32
KEY_2 = b"q" * 32
KEYS = KeyRing({"k1": KEY_1}, current="k1")


def patient(index: int, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "name": f"张伟{index}",
        "id_card_number": f"44011319800101{index:04d}",
        "phone": f"1380013{index:04d}",
        "medical_record_number": f"MRN-{index:06d}",
        "address": f"广东省广州市番禺区市桥街道繁华路{index}号",
        "age": 40 + index % 5,
        "sex": "F" if index % 2 else "M",
        "postcode": "511400",
        "birthplace": "广东省广州市番禺区",
        "admission_date": "2024-03-15",
        "diagnosis_code": "E11.9",
    }
    record.update(changes)
    return record


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in error.value.violations}


def test_released_records_carry_no_direct_identifier_value():
    records = [patient(index) for index in range(50)]

    released = deidentify_many(records, POLICY, KEYS)

    text = json.dumps(released, ensure_ascii=False)
    for record in records:
        for name in SCHEMA.names_with_role(D):
            assert str(record[name]) not in text
    assert {"name", "phone", "address"}.isdisjoint(released[0])
    assert released[0]["id_card_number"].startswith("p_k1_")


def test_a_record_is_released_with_the_policy_fields_in_schema_order_and_nothing_else():
    released = deidentify(patient(3, ward_bed="7-12"), POLICY, KEYS)

    assert list(released) == [
        "id_card_number",
        "medical_record_number",
        "age",
        "sex",
        "postcode",
        "birthplace",
        "admission_date",
        "diagnosis_code",
    ]
    assert released["age"] == "40-49"
    assert released["postcode"] == "511***"
    assert released["birthplace"] == "广东省广州市"
    assert released["admission_date"] == "2024-03"
    assert released["sex"] == "F"
    assert released["diagnosis_code"] == "E11.9"


def test_missing_values_stay_missing_and_are_not_pseudonymised():
    released = deidentify({"id_card_number": None, "age": None}, POLICY, KEYS)

    assert released["id_card_number"] is None
    assert released["age"] is None
    assert released["admission_date"] is None


def test_pseudonyms_are_stable_under_one_key_and_change_after_rotation():
    first = deidentify(patient(1), POLICY, KEYS)["id_card_number"]
    again = deidentify(patient(1), POLICY, KEYS)["id_card_number"]
    other = deidentify(patient(2), POLICY, KEYS)["id_card_number"]
    rotated_keys = KEYS.rotate("k2", KEY_2)
    after = deidentify(patient(1), POLICY, rotated_keys)["id_card_number"]

    assert first == again
    assert first != other
    assert after != first
    assert first.startswith("p_k1_") and after.startswith("p_k2_")


def test_a_pseudonym_is_the_key_id_and_the_first_80_bits_of_hmac_sha256_of_the_value():
    value = patient(1)["id_card_number"]
    mac = hmac.new(KEY_1, str(value).encode(), hashlib.sha256).hexdigest()

    assert KEYS.pseudonymiser()(value) == f"p_k1_{mac[:20]}"
    assert KEYS.pseudonymiser()(12345) == KEYS.pseudonymiser()("12345")


def test_an_old_pseudonym_is_re_derived_only_with_the_old_key():
    old = deidentify(patient(1), POLICY, KEYS)["id_card_number"]
    rotated_keys = KEYS.rotate("k2", KEY_2)

    assert rotated_keys.pseudonymiser("k1")(patient(1)["id_card_number"]) == old
    assert rotated_keys.pseudonymiser()(patient(1)["id_card_number"]) != old
    impostor = KeyRing({"k1": b"x" * 32}, current="k1")
    assert impostor.pseudonymiser()(patient(1)["id_card_number"]) != old


def test_a_key_ring_refuses_short_keys_unknown_current_keys_and_reused_ids():
    with pytest.raises(InvalidArgument) as short:
        KeyRing({"k1": b"short"}, current="k1")
    assert "at least 32 bytes" in violations(short)["key_ring.keys['k1']"]

    with pytest.raises(InvalidArgument) as unknown:
        KeyRing({"k1": KEY_1}, current="k9")
    assert "key_ring.current" in violations(unknown)

    with pytest.raises(InvalidArgument) as bad_id:
        KeyRing({"K_1": KEY_1}, current="K_1")
    assert "key_ring.keys['K_1']" in violations(bad_id)

    with pytest.raises(InvalidArgument) as reused:
        KEYS.rotate("k1", KEY_2)
    assert "never reused" in violations(reused)["key_ring.rotate.new_key_id"]


def test_a_key_ring_never_shows_its_secrets():
    assert KEY_1.decode() not in repr(KEYS)
    assert "k1" in repr(KEYS)


@pytest.mark.parametrize("technique", [Keep(), GeneraliseAddress(keep_levels=1)])
def test_a_policy_that_would_release_a_direct_identifier_is_refused(technique):
    techniques = dict(POLICY.techniques, address=technique)

    with pytest.raises(InvalidArgument) as refused:
        DeidentificationPolicy(SCHEMA, techniques)

    assert violations(refused) == {
        "policy.techniques.address": (
            "a direct identifier must be suppressed or pseudonymised (GB/T 37964)"
        )
    }


def test_a_policy_must_decide_every_field_and_only_fields_of_the_schema():
    techniques = {name: t for name, t in POLICY.techniques.items() if name != "sex"}
    techniques["ward_bed"] = Keep()

    with pytest.raises(InvalidArgument) as refused:
        DeidentificationPolicy(SCHEMA, techniques)

    assert set(violations(refused)) == {"policy.techniques.sex", "policy.techniques.ward_bed"}


def test_a_generaliser_is_refused_on_a_field_of_another_kind():
    with pytest.raises(InvalidArgument) as refused:
        DeidentificationPolicy(SCHEMA, dict(POLICY.techniques, admission_date=GeneraliseAge()))

    assert violations(refused) == {
        "policy.techniques.admission_date": (
            "GeneraliseAge applies to a field of kind age, and admission_date is date"
        )
    }


@pytest.mark.parametrize(
    ("field_name", "technique", "parameter"),
    [
        ("age", GeneraliseAge(band_years=7), "band_years"),
        ("age", GeneraliseAge(band_years=10, top_code_years=85), "top_code_years"),
        ("admission_date", GeneraliseDate(to="day"), "to"),
        ("birthplace", GeneraliseAddress(keep_levels=3), "keep_levels"),
        ("postcode", GeneralisePostcode(keep_digits=5), "keep_digits"),
        ("postcode", GeneralisePostcode(keep_digits=0), "keep_digits"),
    ],
)
def test_a_generaliser_with_a_parameter_out_of_range_is_refused(field_name, technique, parameter):
    with pytest.raises(InvalidArgument) as refused:
        DeidentificationPolicy(SCHEMA, dict(POLICY.techniques, **{field_name: technique}))

    assert list(violations(refused)) == [f"policy.techniques.{field_name}.{parameter}"]


def test_a_schema_with_a_repeated_field_name_is_refused_naming_the_position():
    with pytest.raises(InvalidArgument) as refused:
        RecordSchema((*SCHEMA.fields[:3], FieldLabel("name", D, FieldKind.TEXT)))

    assert "appears twice" in violations(refused)["schema.fields[3].name"]


def test_a_schema_with_an_unusable_field_name_or_no_field_is_refused():
    with pytest.raises(InvalidArgument) as bad_name:
        RecordSchema((FieldLabel("age years", Q, FieldKind.AGE),))
    assert "schema.fields[0].name" in violations(bad_name)

    with pytest.raises(InvalidArgument) as empty:
        RecordSchema(())
    assert "schema.fields" in violations(empty)


@pytest.mark.parametrize(
    ("age_years", "band_years", "expected"),
    [
        (0, 5, "0-4"),
        (4, 5, "0-4"),
        (5, 5, "5-9"),
        (44, 5, "40-44"),
        (44, 10, "40-49"),
        ("44", 10, "40-49"),
        (89, 5, "85-89"),
        (90, 5, "90+"),
        (120, 10, "90+"),
        (150, 5, "90+"),
        (None, 5, None),
    ],
)
def test_ages_fall_into_bands_and_the_oldest_into_one_open_band(age_years, band_years, expected):
    assert GeneraliseAge(band_years=band_years).generalise(age_years) == expected


@pytest.mark.parametrize("age_years", [-1, 151, "forty", 44.5, True])
def test_an_age_that_is_not_a_plausible_whole_number_is_a_data_error(age_years):
    with pytest.raises(ValueError, match="whole number of years from 0 to 150"):
        GeneraliseAge().generalise(age_years)


@pytest.mark.parametrize(
    ("value", "to", "expected"),
    [
        ("2024-03-15", "month", "2024-03"),
        ("2024-03-15T08:30:00+08:00", "month", "2024-03"),
        (date(2024, 3, 15), "month", "2024-03"),
        (datetime(1931, 12, 31, 23, 59), "year", "1931"),
        ("2024-03-15", "year", "2024"),
        (None, "year", None),
    ],
)
def test_dates_are_cut_to_their_month_or_year(value, to, expected):
    assert GeneraliseDate(to=to).generalise(value) == expected


@pytest.mark.parametrize("value", ["2024-13-01", "15/03/2024", 20240315])
def test_a_value_that_is_not_a_date_is_a_data_error(value):
    with pytest.raises(ValueError, match="ISO 8601"):
        GeneraliseDate().generalise(value)


@pytest.mark.parametrize(
    ("address", "keep_levels", "expected"),
    [
        ("广东省广州市番禺区市桥街道繁华路1号", 2, "广东省广州市"),
        ("广东省广州市番禺区市桥街道繁华路1号", 1, "广东省"),
        ("中国 广东省 深圳市 南山区", 2, "广东省深圳市"),
        ("北京市朝阳区建国路88号", 2, "北京市朝阳区"),
        ("吉林省延边朝鲜族自治州延吉市", 2, "吉林省延边朝鲜族自治州"),
        ("内蒙古自治区锡林郭勒盟锡林浩特市", 2, "内蒙古自治区锡林郭勒盟"),
        ("香港特别行政区九龙", 2, "香港特别行政区"),
        # The prefecture is missing: its district must not be released in its place.
        ("广东省番禺区市桥街道", 2, "广东省"),
        # No prefecture at all, a street instead: only the province is kept.
        ("广东省天河路123号华南小区", 2, "广东省"),
        # No recognisable province: nothing of it is kept.
        ("番禺区市桥街道繁华路1号", 1, None),
        ("Flat 3, 12 High Street", 1, None),
        (None, 2, None),
    ],
)
def test_addresses_keep_their_first_administrative_levels_and_nothing_unrecognised(
    address, keep_levels, expected
):
    assert GeneraliseAddress(keep_levels=keep_levels).generalise(address) == expected


@pytest.mark.parametrize(
    ("postcode", "keep_digits", "expected"),
    [("511400", 3, "511***"), ("010000", 2, "01****"), (" 511400 ", 4, "5114**"), (None, 3, None)],
)
def test_postcodes_keep_their_leading_digits(postcode, keep_digits, expected):
    assert GeneralisePostcode(keep_digits=keep_digits).generalise(postcode) == expected


@pytest.mark.parametrize("postcode", ["51140", "5114000", "51140A", 511400])
def test_a_value_that_is_not_a_six_digit_postcode_is_a_data_error(postcode):
    with pytest.raises(ValueError, match="6 digits"):
        GeneralisePostcode().generalise(postcode)


def test_a_bad_value_refuses_the_whole_batch_naming_record_and_field_but_not_the_value():
    records = [patient(0), patient(1, age=-7), patient(2)]

    with pytest.raises(InvalidArgument) as refused:
        deidentify_many(records, POLICY, KEYS)

    assert violations(refused) == {
        "records[1].age": "must be a whole number of years from 0 to 150",
    }
    assert "-7" not in str(refused.value)


def test_a_bad_value_in_one_record_names_the_field():
    with pytest.raises(InvalidArgument) as refused:
        deidentify(patient(0, admission_date="yesterday"), POLICY, KEYS)

    assert list(violations(refused)) == ["record.admission_date"]


def test_a_release_that_is_k_anonymous_is_de_identified():
    records = [patient(index, age=42, sex="F") for index in range(10)]

    release = prepare_release(records, POLICY, KEYS, k_required=10)

    assert release.data_class is DataClass.DE_IDENTIFIED
    assert release.anonymity.k == 10
    assert len(release.records) == 10


def test_a_release_below_k_stays_a_limited_data_set_with_its_rare_groups_named():
    records = [patient(index, age=42, sex="F") for index in range(9)]
    records.append(patient(9, age=97, sex="M"))

    release = prepare_release(records, POLICY, KEYS, k_required=5)

    assert release.data_class is DataClass.LIMITED_DATA_SET
    assert release.anonymity.k == 1
    (rare,) = release.anonymity.offending_groups
    assert dict(zip(rare.quasi_identifiers, rare.values, strict=True)) == {
        "age": "90+",
        "sex": "M",
        "postcode": "511***",
        "birthplace": "广东省广州市",
        "admission_date": "2024-03",
    }
    assert rare.size == 1
