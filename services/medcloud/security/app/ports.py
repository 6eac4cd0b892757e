"""What security's use cases need from the outside."""

from __future__ import annotations

from typing import Any, Protocol

from medcloud.security.domain.audit import AuditRecord


class TrailEvents(Protocol):
    def recorded(self, record: AuditRecord) -> Any:
        """The AuditRecorded payload for a record just appended (for a SIEM downstream)."""
