"""Labels for business-system data: how sensitive a data set is, and what each field of a record
tells someone trying to re-identify a patient (GB/T 39725-2020, GB/T 37964-2019)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from medcloud.core.errors import FieldViolation, InvalidArgument


class DataClass(enum.Enum):
    """How sensitive a data set is; the values are scheduling's DataClassification values, so one
    word means one thing across services."""

    PUBLIC = "public"
    INTERNAL = "internal"
    # De-identified and shown k-anonymous for the release's k.
    DE_IDENTIFIED = "de-identified"
    # Partly de-identified but still re-identifiable, so it stays protected (GB/T 39725-2020).
    LIMITED_DATA_SET = "limited-data-set"
    PERSONAL_HEALTH_DATA = "personal-health-data"


class FieldRole(enum.Enum):
    """What a field is to a re-identifier (GB/T 37964-2019, identifiers and attributes)."""

    # Names one person on its own: name, ID card number, phone, medical record number, address
    # line, e-mail.
    DIRECT_IDENTIFIER = "direct-identifier"
    # Names a person only in combination: birth date or age, sex, postcode or region, admission date.
    QUASI_IDENTIFIER = "quasi-identifier"
    # What the data is for, and what must not be tied to a person: diagnosis, results.
    SENSITIVE = "sensitive"
    OTHER = "other"


class FieldKind(enum.Enum):
    """What a value is, so that a generaliser is only ever given values it understands."""

    AGE = "age"
    DATE = "date"
    ADDRESS = "address"
    POSTCODE = "postcode"
    TEXT = "text"
    CODE = "code"
    NUMBER = "number"


@dataclass(frozen=True)
class FieldLabel:
    name: str
    role: FieldRole
    kind: FieldKind


# Names appear in field paths (`records[3].age`) and in released records, so they stay identifiers.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NAME_RULE = "must be 1-64 letters, digits or '_', not starting with a digit"


@dataclass(frozen=True)
class RecordSchema:
    """The labelled fields of one kind of record; construction refuses a schema that breaks a rule."""

    fields: tuple[FieldLabel, ...]

    def __post_init__(self) -> None:
        violations = list(_schema_violations(self.fields))
        if violations:
            raise InvalidArgument(violations)

    def label(self, name: str) -> FieldLabel | None:
        return next((label for label in self.fields if label.name == name), None)

    def names_with_role(self, role: FieldRole) -> tuple[str, ...]:
        return tuple(label.name for label in self.fields if label.role is role)


def _schema_violations(fields: tuple[FieldLabel, ...]) -> Iterator[FieldViolation]:
    if not fields:
        yield FieldViolation("schema.fields", "must label at least one field")
    seen: set[str] = set()
    for index, label in enumerate(fields):
        if not _NAME.match(label.name):
            yield FieldViolation(f"schema.fields[{index}].name", _NAME_RULE)
        elif label.name in seen:
            yield FieldViolation(
                f"schema.fields[{index}].name",
                f"{label.name!r} appears twice: labels must be unique",
            )
        seen.add(label.name)
