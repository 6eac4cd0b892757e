"""Domain errors that every edge maps onto one canonical outcome (gRPC code, CRD condition, CLI exit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One broken rule on one field: `field` is a dotted path, `description` names the rule."""

    field: str
    description: str


class MedcloudError(Exception):
    """Base of the errors a use case may raise on purpose."""


class InvalidArgument(MedcloudError):
    """The request breaks one or more rules; nothing was written."""

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = tuple(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(MedcloudError):
    """The named object does not exist."""

    def __init__(self, kind: str, object_id: str) -> None:
        self.kind = kind
        self.object_id = object_id
        super().__init__(f"{kind} {object_id!r} not found")


class AlreadyExists(MedcloudError):
    """An object with that identity exists already."""

    def __init__(self, kind: str, object_id: str) -> None:
        self.kind = kind
        self.object_id = object_id
        super().__init__(f"{kind} {object_id!r} already exists")


class FailedPrecondition(MedcloudError):
    """The system is not in a state that allows the operation; retrying as-is will not help."""


class ConcurrencyConflict(MedcloudError):
    """An optimistic-concurrency race was lost, even after retries; the caller may retry."""


class Unavailable(MedcloudError):
    """A dependency (etcd, NATS, another service) cannot be reached now; retry later."""
