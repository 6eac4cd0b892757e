"""De-identification of structured records with the GB/T 37964-2019 techniques that fit them:
suppression, keyed pseudonymisation, and generalisation of ages, dates, addresses and postcodes."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import ClassVar, Literal

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.security.domain.anonymity import KAnonymityCheck, check_k
from medcloud.security.domain.classification import (
    DataClass,
    FieldKind,
    FieldRole,
    RecordSchema,
)

# Every technique that releases a field leaves a missing value (None) as None: there is nothing
# to hide in it, and a pseudonym of "nothing" would make every record without the value look like
# one person.


@dataclass(frozen=True)
class Suppress:
    """Remove the field from the released record."""

    applies_to: ClassVar[FieldKind | None] = None


@dataclass(frozen=True)
class Keep:
    """Release the value as it is; never allowed on a direct identifier."""

    applies_to: ClassVar[FieldKind | None] = None


@dataclass(frozen=True)
class Pseudonymise:
    """Replace the value with a keyed HMAC-SHA256 pseudonym under the key ring's current key (see
    `KeyRing.pseudonymiser`): the same value gives the same pseudonym under one key, so records
    of one patient still link, and nobody without the key can compute or reverse it."""

    applies_to: ClassVar[FieldKind | None] = None
    value_rule: ClassVar[str] = "must be text that encodes as UTF-8"


MIN_AGE_YEARS = 0
# The oldest verified person reached 122; a larger age is a data error that banding would hide.
MAX_AGE_YEARS = 150
_AGE_RULE = f"must be a whole number of years from {MIN_AGE_YEARS} to {MAX_AGE_YEARS}"


@dataclass(frozen=True)
class GeneraliseAge:
    """Replace an age with its band, "40-44"; ages from `top_code_years` up become one open band,
    "90+", because the very old are few enough to be recognised by their age alone (top coding,
    GB/T 37964-2019)."""

    band_years: Literal[5, 10] = 5
    top_code_years: int = 90

    applies_to: ClassVar[FieldKind | None] = FieldKind.AGE
    value_rule: ClassVar[str] = _AGE_RULE

    def violations(self, at: str) -> Iterator[FieldViolation]:
        if self.band_years not in (5, 10):
            yield FieldViolation(f"{at}.band_years", "must be 5 or 10")
        elif (
            isinstance(self.top_code_years, bool)
            or not isinstance(self.top_code_years, int)
            or not self.band_years <= self.top_code_years <= MAX_AGE_YEARS
            or self.top_code_years % self.band_years
        ):
            yield FieldViolation(
                f"{at}.top_code_years",
                f"must be a multiple of band_years ({self.band_years}) up to {MAX_AGE_YEARS}, so "
                "that no band is cut short",
            )

    def generalise(self, value: object) -> str | None:
        if value is None:
            return None
        age_years = _whole_years(value)
        if age_years >= self.top_code_years:
            return f"{self.top_code_years}+"
        lowest = age_years - age_years % self.band_years
        return f"{lowest}-{lowest + self.band_years - 1}"


def _whole_years(value: object) -> int:
    # HIS exports carry ages as integers or as digit strings; anything else is a data error.
    if isinstance(value, int) and not isinstance(value, bool):
        age_years = value
    elif isinstance(value, str) and value.strip().isdecimal():
        age_years = int(value)
    else:
        raise ValueError(_AGE_RULE)
    if not MIN_AGE_YEARS <= age_years <= MAX_AGE_YEARS:
        raise ValueError(_AGE_RULE)
    return age_years


_DATE_RULE = "must be a date, a datetime or an ISO 8601 date string (YYYY-MM-DD)"


@dataclass(frozen=True)
class GeneraliseDate:
    """Replace a date with its month, "2024-03", or its year, "2024"."""

    to: Literal["month", "year"] = "month"

    applies_to: ClassVar[FieldKind | None] = FieldKind.DATE
    value_rule: ClassVar[str] = _DATE_RULE

    def violations(self, at: str) -> Iterator[FieldViolation]:
        if self.to not in ("month", "year"):
            yield FieldViolation(f"{at}.to", "must be 'month' or 'year'")

    def generalise(self, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, date):  # a datetime is a date too
            day = value
        elif isinstance(value, str):
            try:
                day = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(_DATE_RULE) from None
        else:
            raise ValueError(_DATE_RULE)
        return f"{day.year:04d}" if self.to == "year" else f"{day.year:04d}-{day.month:02d}"


# The 34 province-level divisions by their full names. An address that does not start with one
# is not split at all: without a recognised province, the splitter cannot tell a city from a
# street, and withholding is the only answer that keeps nothing identifiable.
_MUNICIPALITIES = ("北京市", "天津市", "上海市", "重庆市")
_SPECIAL_ADMINISTRATIVE_REGIONS = ("香港特别行政区", "澳门特别行政区")
_PROVINCES = (
    *("河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省", "浙江省", "安徽省", "福建省"),
    *("江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省", "四川省", "贵州省"),
    *("云南省", "陕西省", "甘肃省", "青海省", "台湾省"),
    *("内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区"),
)
_PROVINCE = re.compile(
    "^(?:中华人民共和国|中国)?("
    + "|".join(_MUNICIPALITIES + _SPECIAL_ADMINISTRATIVE_REGIONS + _PROVINCES)
    + ")"
)
# The second level is a prefecture (city, autonomous prefecture, area, league) in a province and
# a district or county in a municipality. Its name is 1-10 Chinese characters without the marks
# of a street (路, 街, 号 …); in a province it must not hold 区 or 县 either, so that an address
# that skips the prefecture ("广东省番禺区…") does not release a district in its place.
_STREET_MARKS = "路街巷号弄楼栋室村镇乡"
_PREFECTURE = re.compile(
    f"(?:(?![{_STREET_MARKS}区县市])[\u4e00-\u9fff]){{1,10}}?(?:自治州|地区|盟|市)"
)
_MUNICIPAL_DISTRICT = re.compile(f"(?:(?![{_STREET_MARKS}])[\u4e00-\u9fff]){{1,10}}?(?:区|县)")


@dataclass(frozen=True)
class GeneraliseAddress:
    """Keep the first `keep_levels` administrative levels of a Chinese address: 1 keeps the
    province, 2 the province and the prefecture ("广东省广州市番禺区市桥街道…" → "广东省广州市"). An
    address whose province is not recognised becomes None; when the second level is not
    recognised, the province alone is kept."""

    keep_levels: Literal[1, 2] = 1

    applies_to: ClassVar[FieldKind | None] = FieldKind.ADDRESS
    value_rule: ClassVar[str] = "must be text"

    def violations(self, at: str) -> Iterator[FieldViolation]:
        if self.keep_levels not in (1, 2):
            yield FieldViolation(
                f"{at}.keep_levels",
                "must be 1 (province) or 2 (prefecture): a district or finer narrows a patient "
                "down too far",
            )

    def generalise(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(self.value_rule)
        address = "".join(value.split())
        province = _PROVINCE.match(address)
        if province is None:
            return None
        if self.keep_levels == 1 or province[1] in _SPECIAL_ADMINISTRATIVE_REGIONS:
            return province[1]
        second = _MUNICIPAL_DISTRICT if province[1] in _MUNICIPALITIES else _PREFECTURE
        level_2 = second.match(address, province.end())
        return province[1] if level_2 is None else province[1] + level_2[0]


_POSTCODE_DIGITS = 6
_POSTCODE_RULE = f"must be a postcode of {_POSTCODE_DIGITS} digits"


@dataclass(frozen=True)
class GeneralisePostcode:
    """Keep the first `keep_digits` digits of a Chinese postcode and mask the rest: "510623" →
    "510***". The first two digits name the province, the third the postal zone, the fourth the
    county; the last two, a single delivery office, are never kept."""

    keep_digits: int = 3

    applies_to: ClassVar[FieldKind | None] = FieldKind.POSTCODE
    value_rule: ClassVar[str] = _POSTCODE_RULE

    def violations(self, at: str) -> Iterator[FieldViolation]:
        if (
            isinstance(self.keep_digits, bool)
            or not isinstance(self.keep_digits, int)
            or not 1 <= self.keep_digits <= 4
        ):
            yield FieldViolation(
                f"{at}.keep_digits", "must be 1 to 4: five or more digits name a delivery office"
            )

    def generalise(self, value: object) -> str | None:
        if value is None:
            return None
        # An integer postcode has lost its leading zero (010000 is Hohhot), so only text is taken.
        if not isinstance(value, str):
            raise ValueError(_POSTCODE_RULE)
        postcode = value.strip()
        if len(postcode) != _POSTCODE_DIGITS or not (postcode.isascii() and postcode.isdigit()):
            raise ValueError(_POSTCODE_RULE)
        return postcode[: self.keep_digits] + "*" * (_POSTCODE_DIGITS - self.keep_digits)


Technique = (
    Suppress
    | Keep
    | Pseudonymise
    | GeneraliseAge
    | GeneraliseDate
    | GeneraliseAddress
    | GeneralisePostcode
)
_GENERALISERS = (GeneraliseAge, GeneraliseDate, GeneraliseAddress, GeneralisePostcode)
_DIRECT_IDENTIFIER_RULE = "a direct identifier must be suppressed or pseudonymised (GB/T 37964)"


MIN_KEY_BYTES = 32
# The key id is part of every pseudonym, so it is short and cannot contain the '_' separator.
_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
_KEY_ID_RULE = "must be 1-16 lower-case letters, digits or '-', starting with a letter or digit"
# 20 hex characters carry 80 bits of the HMAC: among a billion distinct values the chance that
# two share a pseudonym is below one in a million (birthday bound n^2 / 2^81).
PSEUDONYM_DIGEST_CHARS = 20


@dataclass(frozen=True)
class KeyRing:
    """Pseudonymisation keys by id, and the one new pseudonyms use.

    A pseudonym reads "p_<key id>_<20 hex characters>", so a release shows which key made it.
    Rotation adds a key and makes it current; the old keys stay so that a steward holding them
    can re-derive old pseudonyms to link releases, and only such a holder can."""

    keys: Mapping[str, bytes] = field(repr=False)
    current: str

    def __post_init__(self) -> None:
        violations = []
        for key_id, secret in self.keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                violations.append(FieldViolation(f"key_ring.keys[{key_id!r}]", _KEY_ID_RULE))
            if not isinstance(secret, bytes) or len(secret) < MIN_KEY_BYTES:
                violations.append(
                    FieldViolation(
                        f"key_ring.keys[{key_id!r}]",
                        f"must be at least {MIN_KEY_BYTES} bytes, the strength of HMAC-SHA256",
                    )
                )
        if self.current not in self.keys:
            violations.append(FieldViolation("key_ring.current", "must name a key of the ring"))
        if violations:
            raise InvalidArgument(violations)
        # A caller's dict must not change the ring behind its back.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def rotate(self, new_key_id: str, secret: bytes) -> KeyRing:
        """A ring whose current key is the new one, keeping the old ones for linkage."""
        if new_key_id in self.keys:
            raise InvalidArgument.single(
                "key_ring.rotate.new_key_id",
                f"{new_key_id!r} is taken: a key id is never reused, or one pseudonym prefix "
                "would stand for two keys",
            )
        return KeyRing({**self.keys, new_key_id: secret}, current=new_key_id)

    def pseudonymiser(self, key_id: str | None = None) -> Callable[[object], str | None]:
        """The pseudonym function of one key, the current one unless named; the text of a value
        is what is keyed, so 42 and "42" share a pseudonym."""
        key_id = self.current if key_id is None else key_id
        if key_id not in self.keys:
            raise InvalidArgument.single("key_id", "must name a key of the ring")
        # Copying a keyed HMAC skips the key schedule that a fresh one would redo for every value.
        keyed = hmac.new(self.keys[key_id], digestmod=hashlib.sha256)
        prefix = f"p_{key_id}_"

        def pseudonym(value: object) -> str | None:
            if value is None:
                return None
            mac = keyed.copy()
            mac.update(str(value).encode())
            return prefix + mac.hexdigest()[:PSEUDONYM_DIGEST_CHARS]

        return pseudonym


@dataclass(frozen=True)
class DeidentificationPolicy:
    """A technique for every field of a schema; construction refuses a policy that breaks a rule,
    above all one that would release a direct identifier."""

    schema: RecordSchema
    techniques: Mapping[str, Technique]

    def __post_init__(self) -> None:
        violations = list(_policy_violations(self.schema, self.techniques))
        if violations:
            raise InvalidArgument(violations)
        object.__setattr__(self, "techniques", MappingProxyType(dict(self.techniques)))

    @property
    def released_fields(self) -> tuple[str, ...]:
        return tuple(
            label.name
            for label in self.schema.fields
            if not isinstance(self.techniques[label.name], Suppress)
        )

    @property
    def released_quasi_identifiers(self) -> tuple[str, ...]:
        return tuple(
            name
            for name in self.schema.names_with_role(FieldRole.QUASI_IDENTIFIER)
            if not isinstance(self.techniques[name], Suppress)
        )


def _policy_violations(
    schema: RecordSchema, techniques: Mapping[str, Technique]
) -> Iterator[FieldViolation]:
    for name in techniques:
        if schema.label(name) is None:
            yield FieldViolation(f"policy.techniques.{name}", "is not a field of the schema")
    for label in schema.fields:
        at = f"policy.techniques.{label.name}"
        technique = techniques.get(label.name)
        # Every field is decided on purpose: a field nobody looked at must not leave by default.
        if technique is None:
            yield FieldViolation(at, "needs a technique: every field of the schema is decided")
            continue
        if not isinstance(technique, Technique):
            yield FieldViolation(at, f"{technique!r} is not a de-identification technique")
            continue
        if label.role is FieldRole.DIRECT_IDENTIFIER and not isinstance(
            technique, Suppress | Pseudonymise
        ):
            yield FieldViolation(at, _DIRECT_IDENTIFIER_RULE)
        if technique.applies_to is not None and technique.applies_to is not label.kind:
            yield FieldViolation(
                at,
                f"{type(technique).__name__} applies to a field of kind "
                f"{technique.applies_to.value}, and {label.name} is {label.kind.value}",
            )
        if isinstance(technique, _GENERALISERS):
            yield from technique.violations(at)


@dataclass(frozen=True)
class Release:
    """De-identified records with the class they may be shared as (see `prepare_release`)."""

    records: tuple[dict[str, object], ...]
    data_class: DataClass
    anonymity: KAnonymityCheck


def deidentify(
    record: Mapping[str, object], policy: DeidentificationPolicy, keys: KeyRing
) -> dict[str, object]:
    """The released form of one record: the policy's fields in schema order, suppressed ones left
    out. Fields the schema does not label are dropped: what nobody classified must not leave."""
    apply = _compile(policy, keys)
    try:
        return apply(record)
    except _BadValue as bad:
        raise InvalidArgument.single(f"record.{bad.field_name}", bad.rule) from None


def deidentify_many(
    records: Iterable[Mapping[str, object]], policy: DeidentificationPolicy, keys: KeyRing
) -> list[dict[str, object]]:
    """`deidentify` for many records, with the policy compiled once; one bad value refuses all of
    them, naming the record and the field, so no half-released data set exists."""
    apply = _compile(policy, keys)
    released = []
    append = released.append
    for index, record in enumerate(records):
        try:
            append(apply(record))
        except _BadValue as bad:
            raise InvalidArgument.single(f"records[{index}].{bad.field_name}", bad.rule) from None
    return released


def prepare_release(
    records: Iterable[Mapping[str, object]],
    policy: DeidentificationPolicy,
    keys: KeyRing,
    k_required: int,
) -> Release:
    """De-identify the records and classify the result: DE_IDENTIFIED when it is k-anonymous for
    `k_required` over the quasi-identifiers it still carries, else LIMITED_DATA_SET, which stays
    re-identifiable and protected."""
    released = deidentify_many(records, policy, keys)
    anonymity = check_k(released, policy.released_quasi_identifiers, k_required)
    data_class = DataClass.DE_IDENTIFIED if anonymity.passed else DataClass.LIMITED_DATA_SET
    return Release(tuple(released), data_class, anonymity)


class _BadValue(Exception):
    """A value its technique cannot take; carries the field and the rule, never the value, which
    would otherwise end up in logs and audit records."""

    def __init__(self, field_name: str, rule: str) -> None:
        super().__init__(f"{field_name}: {rule}")
        self.field_name = field_name
        self.rule = rule


def _compile(
    policy: DeidentificationPolicy, keys: KeyRing
) -> Callable[[Mapping[str, object]], dict[str, object]]:
    # One (name, step) per released field, step None for Keep: the per-record work is then a
    # single dict comprehension with no technique dispatch in it.
    steps: list[tuple[str, Callable[[object], object] | None]] = []
    rules: dict[str, str] = {}
    for name in policy.released_fields:
        technique = policy.techniques[name]
        if isinstance(technique, Keep):
            steps.append((name, None))
            continue
        if isinstance(technique, Pseudonymise):
            steps.append((name, keys.pseudonymiser()))
        else:
            steps.append((name, technique.generalise))
        rules[name] = technique.value_rule
    compiled = tuple(steps)

    def apply(record: Mapping[str, object]) -> dict[str, object]:
        get = record.get
        try:
            return {name: get(name) if step is None else step(get(name)) for name, step in compiled}
        except ValueError:
            # Rare path: find the field again rather than slow down every record to track it.
            for name, step in compiled:
                if step is not None:
                    try:
                        step(get(name))
                    except ValueError:
                        raise _BadValue(name, rules[name]) from None
            raise

    return apply
