"""Every service's AuditEntry events, appended to the trail once each (the event id guards a
redelivery)."""

from __future__ import annotations

from medcloud.runtime.bus import ReceivedEvent
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import AuditEvent

# Services whose entries the trail takes, security's own included (its refused calls).
AUDITED_SERVICES = ("inventory", "scheduling", "monitoring", "security", "backup")


async def append_entry(trail: AuditTrail, event: ReceivedEvent) -> None:
    entry = event.payload
    await trail.append(
        AuditEvent(
            actor=entry.actor,
            role=",".join(entry.roles) or "none",
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            detail={**entry.detail, "source": event.source},
        ),
        event_id=event.id,
    )
