"""Object ids across medcloud are DNS labels, so that one id serves as a Kubernetes name, a NATS
subject token and an etcd key segment alike."""

from __future__ import annotations

import re
from collections.abc import Iterator

from medcloud.core.errors import FieldViolation

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_LABEL_RULE = (
    "must be a DNS label: 1-63 lower-case letters, digits or '-', starting and ending alphanumeric"
)


def dns_label_violations(field: str, value: str) -> Iterator[FieldViolation]:
    if not DNS_LABEL.match(value):
        yield FieldViolation(field, DNS_LABEL_RULE)
