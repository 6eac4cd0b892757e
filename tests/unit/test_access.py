"""Three-role separation (三员分立): each administrator does only its own part, nobody erases the
audit trail, unknown actions are refused, and no identity holds two administrator roles."""

from __future__ import annotations

import pytest

from medcloud.core.access import (
    ADMINISTRATOR_ROLES,
    ALLOWED,
    AUDIT_APPEND,
    AUDIT_ERASE,
    AUDIT_READ,
    AUDIT_VERIFY,
    AUDIT_WRITE,
    DATA_EXPORT_DECIDE,
    INVENTORY_WRITE,
    SECURITY_POLICY_WRITE,
    SYSTEM_CONFIGURE,
    AccessRefused,
    Identity,
    Role,
    authorise,
    roles_allowed,
)
from medcloud.core.errors import InvalidArgument

SYSTEM = Identity("CN=sysadmin", frozenset({Role.SYSTEM_ADMINISTRATOR}))
SECURITY = Identity("CN=secadmin", frozenset({Role.SECURITY_ADMINISTRATOR}))
AUDITOR = Identity("CN=auditor", frozenset({Role.AUDIT_ADMINISTRATOR}))
SERVICE = Identity("CN=scheduling.medcloud", frozenset({Role.SERVICE}))


def refusal(identity: Identity, action: str) -> AccessRefused:
    with pytest.raises(AccessRefused) as raised:
        authorise(identity, action)
    return raised.value


def test_the_audit_administrator_reads_the_trail_but_cannot_change_policy():
    authorise(AUDITOR, AUDIT_READ)
    authorise(AUDITOR, AUDIT_VERIFY)
    refused = refusal(AUDITOR, SECURITY_POLICY_WRITE)
    assert refused.identity == AUDITOR
    assert refused.action == SECURITY_POLICY_WRITE
    assert str(refused) == (
        "CN=auditor (audit-administrator) may not security.policy.write: "
        "needs the security-administrator role"
    )


def test_the_audit_administrator_changes_nothing():
    changing = {action for action in ALLOWED[Role.AUDIT_ADMINISTRATOR] if "write" in action}
    assert changing == set()
    for action in (INVENTORY_WRITE, SYSTEM_CONFIGURE, DATA_EXPORT_DECIDE, AUDIT_APPEND):
        refusal(AUDITOR, action)


def test_the_security_administrator_manages_policy_but_cannot_erase_or_read_the_trail():
    authorise(SECURITY, SECURITY_POLICY_WRITE)
    authorise(SECURITY, DATA_EXPORT_DECIDE)
    assert "never changed or erased" in refusal(SECURITY, AUDIT_ERASE).reason
    assert refusal(SECURITY, AUDIT_READ).reason == "needs the audit-administrator role"
    refusal(SECURITY, SYSTEM_CONFIGURE)


def test_the_system_administrator_runs_systems_but_sets_no_security_policy():
    authorise(SYSTEM, INVENTORY_WRITE)
    authorise(SYSTEM, SYSTEM_CONFIGURE)
    assert refusal(SYSTEM, SECURITY_POLICY_WRITE).reason == (
        "needs the security-administrator role"
    )
    refusal(SYSTEM, AUDIT_READ)


@pytest.mark.parametrize("action", [AUDIT_ERASE, AUDIT_WRITE])
def test_nobody_erases_or_rewrites_audit_records(action):
    assert roles_allowed(action) == frozenset()
    for identity in (SYSTEM, SECURITY, AUDITOR, SERVICE):
        refusal(identity, action)


def test_only_services_append_to_the_trail():
    assert roles_allowed(AUDIT_APPEND) == {Role.SERVICE}
    authorise(SERVICE, AUDIT_APPEND)


def test_no_two_administrators_share_an_action():
    administrators = sorted(ADMINISTRATOR_ROLES, key=lambda role: role.value)
    for index, role in enumerate(administrators):
        for other in administrators[index + 1 :]:
            shared = ALLOWED[role] & ALLOWED[other]
            # Auditors read the policy and the DR evidence they audit against, and the system
            # administrator's operator judges sites against the baseline; nothing else is shared.
            allowed_to_share = {"security.policy.read", "backup.read", "security.baseline.evaluate"}
            assert shared <= allowed_to_share, (role, other, shared)


def test_an_unknown_action_is_refused_by_default():
    for identity in (SYSTEM, SECURITY, AUDITOR, SERVICE):
        assert refusal(identity, "inventory.everything").reason == (
            "unknown action, refused by default"
        )


def test_an_identity_without_roles_may_do_nothing():
    nobody = Identity("CN=visitor", frozenset())
    assert str(refusal(nobody, AUDIT_READ)) == (
        "CN=visitor (no role) may not audit.read: needs the audit-administrator role"
    )


def test_an_identity_with_two_administrator_roles_is_refused():
    with pytest.raises(InvalidArgument) as raised:
        Identity("CN=both", frozenset({Role.SECURITY_ADMINISTRATOR, Role.AUDIT_ADMINISTRATOR}))
    (violation,) = raised.value.violations
    assert violation.field == "roles"
    assert violation.description == (
        "an identity may hold only one of the three administrator roles (三员分立), got "
        "audit-administrator, security-administrator"
    )


def test_an_administrator_cannot_also_be_a_service():
    with pytest.raises(InvalidArgument) as raised:
        Identity("CN=sneaky", frozenset({Role.AUDIT_ADMINISTRATOR, Role.SERVICE}))
    assert raised.value.violations[0].field == "roles"


def test_an_identity_needs_a_subject():
    with pytest.raises(InvalidArgument) as raised:
        Identity("", frozenset({Role.SERVICE}))
    assert raised.value.violations[0].field == "subject"
