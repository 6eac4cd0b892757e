"""De-identification figures for the security domain, in process:

- de-identified records per second for a 20-field synthetic patient record (6 direct identifiers,
  3 of them pseudonymised with HMAC-SHA256, 3 suppressed; 5 fields generalised) through
  `deidentify_many`, best of 3;
- the time to check k-anonymity of the released records over the 7 quasi-identifiers they keep.

Prints figures; asserts nothing."""

from __future__ import annotations

import platform
import random
import time
from datetime import date, timedelta

from medcloud.security.domain.anonymity import check_k
from medcloud.security.domain.classification import (
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
    deidentify_many,
)

RECORDS = 200_000
ROUNDS = 3
K_REQUIRED = 5
SEED = 20240315

DIRECT, QUASI, SENSITIVE, OTHER = (
    FieldRole.DIRECT_IDENTIFIER,
    FieldRole.QUASI_IDENTIFIER,
    FieldRole.SENSITIVE,
    FieldRole.OTHER,
)
# A discharge summary as an EMR exports it (病案首页): 20 fields.
FIELDS = (
    (FieldLabel("name", DIRECT, FieldKind.TEXT), Suppress()),
    (FieldLabel("id_card_number", DIRECT, FieldKind.CODE), Pseudonymise()),
    (FieldLabel("phone", DIRECT, FieldKind.CODE), Suppress()),
    (FieldLabel("medical_record_number", DIRECT, FieldKind.CODE), Pseudonymise()),
    (FieldLabel("address", DIRECT, FieldKind.ADDRESS), Suppress()),
    (FieldLabel("doctor_name", DIRECT, FieldKind.TEXT), Pseudonymise()),
    (FieldLabel("birth_date", QUASI, FieldKind.DATE), GeneraliseDate(to="year")),
    (FieldLabel("age", QUASI, FieldKind.AGE), GeneraliseAge(band_years=10)),
    (FieldLabel("sex", QUASI, FieldKind.CODE), Keep()),
    (FieldLabel("postcode", QUASI, FieldKind.POSTCODE), GeneralisePostcode(keep_digits=3)),
    (FieldLabel("birthplace", QUASI, FieldKind.ADDRESS), GeneraliseAddress(keep_levels=1)),
    (FieldLabel("admission_date", QUASI, FieldKind.DATE), GeneraliseDate(to="month")),
    (FieldLabel("discharge_date", QUASI, FieldKind.DATE), GeneraliseDate(to="month")),
    (FieldLabel("ethnicity", QUASI, FieldKind.CODE), Suppress()),
    (FieldLabel("diagnosis_code", SENSITIVE, FieldKind.CODE), Keep()),
    (FieldLabel("diagnosis_name", SENSITIVE, FieldKind.TEXT), Keep()),
    (FieldLabel("hba1c_percent", SENSITIVE, FieldKind.NUMBER), Keep()),
    (FieldLabel("department", OTHER, FieldKind.TEXT), Keep()),
    (FieldLabel("length_of_stay_days", OTHER, FieldKind.NUMBER), Keep()),
    (FieldLabel("insurance_type", OTHER, FieldKind.CODE), Keep()),
)
SCHEMA = RecordSchema(tuple(label for label, _ in FIELDS))
POLICY = DeidentificationPolicy(SCHEMA, {label.name: technique for label, technique in FIELDS})
KEYS = KeyRing({"2024q1": bytes(range(32))}, current="2024q1")

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"
PLACES = (
    ("广东省", "广州市", "番禺区", "510"),
    ("广东省", "深圳市", "南山区", "518"),
    ("湖北省", "武汉市", "洪山区", "430"),
    ("四川省", "成都市", "武侯区", "610"),
    ("北京市", "朝阳区", "", "100"),
)
DIAGNOSES = (
    ("E11.9", "2型糖尿病"),
    ("I10", "原发性高血压"),
    ("J18.9", "肺炎"),
    ("K35.8", "急性阑尾炎"),
    ("C34.9", "肺恶性肿瘤"),
)
DEPARTMENTS = ("内分泌科", "心内科", "呼吸科", "普外科", "肿瘤科")


def patient(rng: random.Random, index: int) -> dict[str, object]:
    province, city, district, postal_zone = rng.choice(PLACES)
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 90))
    admission = date(2024, 1, 1) + timedelta(days=rng.randrange(365))
    stay_days = rng.randrange(1, 30)
    code, diagnosis = rng.choice(DIAGNOSES)
    return {
        "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
        "id_card_number": f"440113{birth:%Y%m%d}{index % 10_000:04d}",
        "phone": f"138{rng.randrange(10**8):08d}",
        "medical_record_number": f"MRN{index:09d}",
        "address": f"{province}{city}{district}市桥街道繁华路{rng.randrange(1, 300)}号",
        "doctor_name": rng.choice(SURNAMES) + rng.choice(GIVEN),
        "birth_date": birth.isoformat(),
        "age": (admission - birth).days // 365,
        "sex": rng.choice("MF"),
        "postcode": f"{postal_zone}{rng.randrange(1000):03d}",
        "birthplace": f"{province}{city}{district}",
        "admission_date": admission.isoformat(),
        "discharge_date": (admission + timedelta(days=stay_days)).isoformat(),
        "ethnicity": "汉族",
        "diagnosis_code": code,
        "diagnosis_name": diagnosis,
        "hba1c_percent": round(rng.uniform(4.5, 12.0), 1),
        "department": rng.choice(DEPARTMENTS),
        "length_of_stay_days": stay_days,
        "insurance_type": rng.choice(("城镇职工", "城乡居民", "自费")),
    }


def best_seconds(run, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    rng = random.Random(SEED)
    records = [patient(rng, index) for index in range(RECORDS)]
    print(f"Python {platform.python_version()} on {platform.machine()}")
    print(f"{RECORDS:,} synthetic patient records of {len(SCHEMA.fields)} fields")

    seconds = best_seconds(lambda: deidentify_many(records, POLICY, KEYS))
    print(
        f"deidentify_many: {seconds:.2f} s, {RECORDS / seconds:,.0f} records/s, "
        f"{seconds / RECORDS * 1e6:.2f} us/record (best of {ROUNDS})"
    )

    released = deidentify_many(records, POLICY, KEYS)
    quasi_identifiers = POLICY.released_quasi_identifiers
    seconds = best_seconds(lambda: check_k(released, quasi_identifiers, K_REQUIRED))
    check = check_k(released, quasi_identifiers, K_REQUIRED)
    print(
        f"check_k over {len(quasi_identifiers)} quasi-identifiers: {seconds * 1000:.0f} ms "
        f"(best of {ROUNDS}); k = {check.k}, {len(check.offending_groups):,} group(s) "
        f"below k = {K_REQUIRED}"
    )


if __name__ == "__main__":
    main()
