"""Domain errors map onto canonical gRPC codes; INVALID_ARGUMENT carries the field violations."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from medcloud.core.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from medcloud.runtime.grpc_server import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("HospitalSite", "h1"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("HospitalSite", "h1"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPrecondition("site is being deleted"), grpc.StatusCode.FAILED_PRECONDITION),
        (ConcurrencyConflict("lost the race"), grpc.StatusCode.ABORTED),
        (Unavailable("etcd away"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_each_domain_error_has_its_canonical_code(error, code):
    status = status_for(error)
    assert status.code == code
    assert status.details == str(error)


def test_invalid_argument_carries_every_field_violation():
    error = InvalidArgument(
        [
            FieldViolation("spec.systems[0].vcpu", "must be at most 64 (R-7.3c)"),
            FieldViolation("spec.systems[0].memoryGib", "must be at most 256 (R-7.3c)"),
        ]
    )
    status = status_for(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    bad_request = error_details_pb2.BadRequest()
    status_pb2.Status.FromString(details).details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("spec.systems[0].vcpu", "must be at most 64 (R-7.3c)"),
        ("spec.systems[0].memoryGib", "must be at most 256 (R-7.3c)"),
    ]


def test_invalid_argument_without_violations_is_a_programming_error():
    with pytest.raises(ValueError):
        InvalidArgument([])
