"""The sharing gate: an export declares how it will be shared, and is allowed only when the data's
class and de-identification fit that mode (GB/T 37964-2019 sharing modes, R-7.5c)."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.security.domain.classification import DataClass


class SharingMode(enum.Enum):
    # Open data: once published it cannot be recalled.
    FULL_PUBLIC = "full-public"
    # Released to named recipients bound by a data-use agreement.
    CONTROLLED_PUBLIC = "controlled-public"
    # Analysed inside the platform's enclave; nothing leaves it.
    ENCLAVE = "enclave"


# Requirement IDs of REQUIREMENTS.md that each rule enforces.
GOVERNANCE = "R-7.5c"  # data-security governance across the lifecycle, sharing included
BOUNDARY_AND_TRACEABILITY = "R-7.5a"  # boundary protection, audit and traceability


@dataclass(frozen=True)
class ExportRequest:
    """A request to share one data set; construction refuses a malformed request, while a
    well-formed one the rules refuse gets a decision (see `decide`)."""

    dataset_id: str
    data_class: DataClass
    mode: SharingMode
    purpose: str
    recipient: str = ""
    agreement_id: str = ""
    # The data set's measured k over its quasi-identifiers; None when nobody measured it.
    k_anonymity: int | None = None

    def __post_init__(self) -> None:
        violations = list(_request_violations(self))
        if violations:
            raise InvalidArgument(violations)


def _request_violations(request: ExportRequest) -> Iterator[FieldViolation]:
    if not request.dataset_id.strip():
        yield FieldViolation("export_request.dataset_id", "must not be empty")
    if not request.purpose.strip():
        yield FieldViolation(
            "export_request.purpose",
            f"must state what the data will be used for: use is governed too ({GOVERNANCE})",
        )
    if not isinstance(request.data_class, DataClass):
        yield FieldViolation("export_request.data_class", "must be a data class")
    if not isinstance(request.mode, SharingMode):
        yield FieldViolation("export_request.mode", "must be a sharing mode")
    k = request.k_anonymity
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
        yield FieldViolation(
            "export_request.k_anonymity", "must be a whole number of 0 or more when given"
        )


@dataclass(frozen=True)
class SharingThresholds:
    """The smallest k a de-identified data set needs per mode; open data needs at least what
    data under an agreement needs, since it can never be recalled."""

    minimum_k_full_public: int = 10
    minimum_k_controlled_public: int = 5

    def __post_init__(self) -> None:
        violations = []
        for name in ("minimum_k_full_public", "minimum_k_controlled_public"):
            value = getattr(self, name)
            # k = 1 lets a record stand alone, which is no anonymity at all.
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                violations.append(
                    FieldViolation(f"thresholds.{name}", "must be a whole number of at least 2")
                )
        if not violations and self.minimum_k_full_public < self.minimum_k_controlled_public:
            violations.append(
                FieldViolation(
                    "thresholds.minimum_k_full_public",
                    "must be at least minimum_k_controlled_public: open data cannot be recalled",
                )
            )
        if violations:
            raise InvalidArgument(violations)


@dataclass(frozen=True)
class SharingDecision:
    """Whether the export may go ahead, why, and the requirement the deciding rule enforces; every
    decision, allowed or not, is meant to be audited."""

    allowed: bool
    reason: str
    requirement_id: str


DEFAULT_THRESHOLDS = SharingThresholds()


def decide(
    request: ExportRequest, thresholds: SharingThresholds = DEFAULT_THRESHOLDS
) -> SharingDecision:
    """Apply the rules in order; the first that refuses decides, else the mode's allowing rule."""
    if request.mode is SharingMode.ENCLAVE:
        return SharingDecision(
            True,
            f"enclave sharing: {request.data_class.value} data is analysed inside the platform "
            "and never leaves it",
            BOUNDARY_AND_TRACEABILITY,
        )
    if request.data_class is DataClass.PERSONAL_HEALTH_DATA:
        return _refuse(
            f"data_class: personal-health-data identifies patients and may be shared only in an "
            f"enclave, never by {request.mode.value} sharing; de-identify it first",
            GOVERNANCE,
        )
    if request.mode is SharingMode.FULL_PUBLIC:
        return _decide_full_public(request, thresholds.minimum_k_full_public)
    return _decide_controlled_public(request, thresholds.minimum_k_controlled_public)


def _decide_full_public(request: ExportRequest, minimum_k: int) -> SharingDecision:
    if request.data_class is DataClass.PUBLIC:
        return SharingDecision(True, "public data may be published openly", GOVERNANCE)
    if request.data_class is not DataClass.DE_IDENTIFIED:
        return _refuse(
            f"data_class: full public sharing takes only public or de-identified data, and "
            f"{request.data_class.value} data must not be published, since publication cannot be "
            "recalled; share it under a data-use agreement (controlled-public) or in an enclave",
            GOVERNANCE,
        )
    refusal = _k_refusal(request, minimum_k, "full public sharing")
    if refusal is not None:
        return refusal
    return SharingDecision(
        True,
        f"de-identified data with k = {request.k_anonymity} (at least {minimum_k}) may be "
        "published openly",
        GOVERNANCE,
    )


def _decide_controlled_public(request: ExportRequest, minimum_k: int) -> SharingDecision:
    if not request.agreement_id.strip():
        return _refuse(
            "agreement_id: controlled public sharing needs the data-use agreement that binds the "
            "recipient",
            BOUNDARY_AND_TRACEABILITY,
        )
    if not request.recipient.strip():
        return _refuse(
            "recipient: controlled public sharing releases data only to a named recipient",
            BOUNDARY_AND_TRACEABILITY,
        )
    if request.data_class is DataClass.DE_IDENTIFIED:
        refusal = _k_refusal(request, minimum_k, "controlled public sharing")
        if refusal is not None:
            return refusal
    return SharingDecision(
        True,
        f"{request.data_class.value} data may go to {request.recipient} under agreement "
        f"{request.agreement_id}",
        GOVERNANCE,
    )


def _k_refusal(request: ExportRequest, minimum_k: int, mode: str) -> SharingDecision | None:
    if request.k_anonymity is None:
        return _refuse(
            f"k_anonymity: {mode} of de-identified data needs its measured k, at least "
            f"{minimum_k}, and none was given",
            GOVERNANCE,
        )
    if request.k_anonymity < minimum_k:
        return _refuse(
            f"k_anonymity: {mode} needs k of at least {minimum_k}, and this data set has "
            f"k = {request.k_anonymity}; generalise further or share it in an enclave",
            GOVERNANCE,
        )
    return None


def _refuse(reason: str, requirement_id: str) -> SharingDecision:
    return SharingDecision(False, reason, requirement_id)
