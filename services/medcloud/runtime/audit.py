"""What a service tells the audit trail: entries published on the service's own stream, which the
security service appends to the hash-chained trail (R-7.5a). Publishing is fire-and-forget from
the caller's point of view; a failure is logged, and the outbox is the path for entries that
must not be lost with a crash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from medcloud.common.v1.audit_entry_pb2 import AuditEntry
from medcloud.core.access import AccessRefused, Identity
from medcloud.runtime.bus import EventBus

log = logging.getLogger(__name__)


def audit_entry(
    actor: str,
    roles: list[str],
    action: str,
    target: str,
    outcome: str,
    detail: Mapping[str, str] | None = None,
) -> AuditEntry:
    occurred_at = timestamp_pb2.Timestamp()
    occurred_at.FromDatetime(datetime.now(UTC))
    return AuditEntry(
        actor=actor,
        roles=roles,
        action=action,
        target=target,
        outcome=outcome,
        detail=dict(detail or {}),
        occurred_at=occurred_at,
    )


class AuditPublisher:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._sending: set[asyncio.Task[None]] = set()

    def record(self, entry: AuditEntry) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(entry))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, entry: AuditEntry) -> None:
        try:
            await self._bus.publish(entry)
        except Exception:
            log.exception("audit entry not published", extra={"action": entry.action})

    def refused(self, refused: AccessRefused, method: str) -> None:
        """The gRPC server's listener: a refused call is itself audited."""
        self.record(
            audit_entry(
                refused.identity.subject,
                sorted(role.value for role in refused.identity.roles),
                refused.action,
                method,
                "refused",
                {"reason": refused.reason},
            )
        )

    def performed(self, identity: Identity, action: str, method: str, code: str) -> None:
        """The gRPC server's listener: a call that changes something is audited, with its
        outcome (OK, or the code it failed with)."""
        self.record(
            audit_entry(
                identity.subject,
                sorted(role.value for role in identity.roles),
                action,
                method,
                "done" if code == "OK" else "failed",
                {"code": code},
            )
        )

    async def drain(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
