"""Three-role separation (三员分立, MLPS level 3): who may do what, denied unless a role allows it,
and no identity holding two of the three administrator roles."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from medcloud.core.errors import FieldViolation, InvalidArgument, MedcloudError


class Role(enum.Enum):
    """The three administrators MLPS level 3 separates, and the services themselves. Day-to-day
    operators act as delegates of the system administrator; a finer role is one more row in
    ALLOWED when a hospital needs it."""

    SYSTEM_ADMINISTRATOR = "system-administrator"
    SECURITY_ADMINISTRATOR = "security-administrator"
    AUDIT_ADMINISTRATOR = "audit-administrator"
    # A medcloud service calling another, by its workload certificate.
    SERVICE = "service"
    # A node agent reporting what it measures (R-7.7c), by its node's certificate.
    AGENT = "agent"


ADMINISTRATOR_ROLES = frozenset(
    {Role.SYSTEM_ADMINISTRATOR, Role.SECURITY_ADMINISTRATOR, Role.AUDIT_ADMINISTRATOR}
)

# Actions, as the gRPC edges name them when they authorise a call and record it in the trail.
INVENTORY_READ = "inventory.read"
INVENTORY_WRITE = "inventory.write"
# Claims on host and pool capacity, which scheduling takes and releases.
INVENTORY_CLAIM = "inventory.claim"
SCHEDULING_READ = "scheduling.read"
SCHEDULING_PLACE = "scheduling.place"
MONITORING_READ = "monitoring.read"
# Samples, heartbeats and link reports from node agents.
MONITORING_INGEST = "monitoring.ingest"
MONITORING_ALERT_ACKNOWLEDGE = "monitoring.alert.acknowledge"
MONITORING_WORK_ORDER_CLOSE = "monitoring.work-order.close"
MONITORING_INSPECTION_RUN = "monitoring.inspection.run"
MONITORING_RULES_WRITE = "monitoring.rules.write"
SYSTEM_CONFIGURE = "system.configure"
SECURITY_POLICY_READ = "security.policy.read"
SECURITY_POLICY_WRITE = "security.policy.write"
SECURITY_BASELINE_EVALUATE = "security.baseline.evaluate"
SECURITY_DEIDENTIFICATION_KEY_MANAGE = "security.deidentification-key.manage"
DATA_EXPORT_DECIDE = "data.export.decide"
# Producing a de-identified release of health records.
DATA_DEIDENTIFY = "data.deidentify"
BACKUP_READ = "backup.read"
# Protection policies and the region facts they are checked against.
BACKUP_PROTECT = "backup.protect"
BACKUP_FAILOVER = "backup.failover"
BACKUP_DRILL = "backup.drill"
BACKUP_SNAPSHOT = "backup.snapshot"
AUDIT_READ = "audit.read"
AUDIT_VERIFY = "audit.verify"
AUDIT_APPEND = "audit.append"
# Known so that a refusal can say why, and allowed to nobody: records leave the trail only by
# retention, which the audit service prunes itself (R-7.5c).
AUDIT_ERASE = "audit.erase"
AUDIT_WRITE = "audit.write"

FORBIDDEN_TO_ALL = frozenset({AUDIT_ERASE, AUDIT_WRITE})

ALLOWED: Mapping[Role, frozenset[str]] = MappingProxyType(
    {
        # Runs the systems; neither sets security policy nor reads the trail that audits it.
        Role.SYSTEM_ADMINISTRATOR: frozenset(
            {
                INVENTORY_READ,
                INVENTORY_WRITE,
                # Reserving capacity by hand, beside what scheduling claims.
                INVENTORY_CLAIM,
                SCHEDULING_READ,
                SCHEDULING_PLACE,
                MONITORING_READ,
                MONITORING_ALERT_ACKNOWLEDGE,
                MONITORING_WORK_ORDER_CLOSE,
                MONITORING_INSPECTION_RUN,
                MONITORING_RULES_WRITE,
                SYSTEM_CONFIGURE,
                # Judging a site against the baseline changes nothing; the operator reports it.
                SECURITY_BASELINE_EVALUATE,
                BACKUP_READ,
                BACKUP_PROTECT,
                BACKUP_FAILOVER,
                BACKUP_DRILL,
                BACKUP_SNAPSHOT,
            }
        ),
        # Sets security policy, holds de-identification keys and decides exports; neither
        # configures the systems nor touches the trail.
        Role.SECURITY_ADMINISTRATOR: frozenset(
            {
                SECURITY_POLICY_READ,
                SECURITY_POLICY_WRITE,
                SECURITY_BASELINE_EVALUATE,
                SECURITY_DEIDENTIFICATION_KEY_MANAGE,
                DATA_EXPORT_DECIDE,
                DATA_DEIDENTIFY,
            }
        ),
        # Reads and verifies the trail, and reads the policy and the DR evidence it audits
        # against; changes nothing.
        Role.AUDIT_ADMINISTRATOR: frozenset(
            {AUDIT_READ, AUDIT_VERIFY, SECURITY_POLICY_READ, BACKUP_READ}
        ),
        # What a node may do: report samples, heartbeats and links.
        Role.AGENT: frozenset({MONITORING_INGEST}),
        # What services ask of each other; the trail only grows.
        Role.SERVICE: frozenset(
            {
                INVENTORY_READ,
                INVENTORY_CLAIM,
                SCHEDULING_READ,
                MONITORING_INGEST,
                BACKUP_READ,
                AUDIT_APPEND,
            }
        ),
    }
)

KNOWN_ACTIONS = FORBIDDEN_TO_ALL.union(*ALLOWED.values())

# Calls the audit trail keeps when they are allowed too: everything that changes the systems, the
# policy or the data released. Reads, node ingest and the trail's own appends would drown it.
AUDITED_ACTIONS = KNOWN_ACTIONS - {
    INVENTORY_READ,
    SCHEDULING_READ,
    MONITORING_READ,
    MONITORING_INGEST,
    SECURITY_POLICY_READ,
    BACKUP_READ,
    AUDIT_APPEND,
}


def roles_allowed(action: str) -> frozenset[Role]:
    """The roles that may perform `action`; empty for an unknown or forbidden one."""
    return frozenset(role for role, actions in ALLOWED.items() if action in actions)


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: `subject` names it (a certificate subject), `roles` are what it
    may act as. At most one administrator role, and none for a service, so that no one person
    both acts and audits the acting, and no administrator can append to the trail."""

    subject: str
    roles: frozenset[Role]

    def __post_init__(self) -> None:
        # Roles may arrive as a list or set from a certificate or a directory.
        object.__setattr__(self, "roles", frozenset(self.roles))
        violations = []
        if not self.subject:
            violations.append(FieldViolation("subject", "must not be empty"))
        administrator = self.roles & ADMINISTRATOR_ROLES
        if len(administrator) > 1:
            held = ", ".join(sorted(role.value for role in administrator))
            violations.append(
                FieldViolation(
                    "roles",
                    "an identity may hold only one of the three administrator roles (三员分立), "
                    f"got {held}",
                )
            )
        if administrator and self.roles & {Role.SERVICE, Role.AGENT}:
            violations.append(
                FieldViolation(
                    "roles", "a service or agent identity may not also hold an administrator role"
                )
            )
        if violations:
            raise InvalidArgument(violations)

    @property
    def role_names(self) -> str:
        """The roles as one text, for records: "security-administrator"."""
        return ",".join(sorted(role.value for role in self.roles)) or "none"

    def __str__(self) -> str:
        roles = ", ".join(sorted(role.value for role in self.roles)) or "no role"
        return f"{self.subject} ({roles})"


class AccessRefused(MedcloudError):
    """The caller is who it says, but none of its roles allows the action."""

    def __init__(self, identity: Identity, action: str, reason: str) -> None:
        self.identity = identity
        self.action = action
        self.reason = reason
        super().__init__(f"{identity} may not {action}: {reason}")


def authorise(identity: Identity, action: str) -> None:
    """Returns if one of the identity's roles allows `action`; raises AccessRefused otherwise,
    naming the roles that would be needed. Unknown actions are refused: deny by default."""
    if any(action in ALLOWED[role] for role in identity.roles):
        return
    if action in FORBIDDEN_TO_ALL:
        reason = "no role may do this: audit records are never changed or erased by hand"
    elif action not in KNOWN_ACTIONS:
        reason = "unknown action, refused by default"
    else:
        needed = " or ".join(sorted(role.value for role in roles_allowed(action)))
        reason = f"needs the {needed} role"
    raise AccessRefused(identity, action, reason)
