"""Velero (`velero.io/v1`) manifests for a Kubernetes-hosted system: a Schedule that backs up the
primary's namespace as often as its protection policy asks, one-off Backups, and Restores into the
standby's namespace. Pure functions building dicts; `kubernetes_driver.apply_velero` sends them."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from medcloud.backup.app.ports import SystemCopies
from medcloud.backup.domain.plans import ProtectionPolicy
from medcloud.core.identifiers import DNS_LABEL

VELERO_API_VERSION = "velero.io/v1"
VELERO_GROUP = "velero.io"
VELERO_VERSION = "v1"
DEFAULT_VELERO_NAMESPACE = "velero"
# The resource (plural) of each kind medcloud writes, for the custom-objects API.
VELERO_PLURALS = {"Schedule": "schedules", "Backup": "backups", "Restore": "restores"}

HOSPITAL_LABEL = "medcloud.io/hospital"
SYSTEM_LABEL = "medcloud.io/system"

MAX_NAME = 63
# Velero names each Backup a Schedule creates `<schedule>-<YYYYMMDDhhmmss>` and puts that name in a
# label value, which may not exceed 63 characters: a Schedule's name leaves room for the suffix.
SCHEDULE_NAME_MAX = MAX_NAME - len("-20060102150405")

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
# Step values that divide the cron field's range evenly: `*/7` in the minute field fires at :56 and
# again at :00, four minutes later, so only divisors give a constant interval.
_MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)


def cron_for(interval_seconds: int) -> str:
    """The five-field cron expression closest to `interval_seconds` that backs up at least as often.

    Cron can only repeat evenly at steps that divide its field (minutes of the hour, hours of the
    day), so the interval is rounded *down* to the nearest such step: 7 minutes becomes every 6,
    45 minutes every 30, 5 hours every 4, 30 hours daily, 10 days weekly. Rounding down never
    lets more time pass between copies than the policy allows, at the price of a few extra
    backups. Below one minute nothing finer exists than every minute, which is the answer there
    (less often than asked: cron's floor)."""
    if interval_seconds <= 0:
        raise ValueError(f"a backup interval must be greater than 0 s, got {interval_seconds}")
    if interval_seconds < _HOUR:
        minutes = max(interval_seconds // _MINUTE, 1)
        step = max(s for s in _MINUTE_STEPS if s <= minutes)
        return "* * * * *" if step == 1 else f"*/{step} * * * *"
    if interval_seconds < _DAY:
        hours = interval_seconds // _HOUR
        step = max(s for s in _HOUR_STEPS if s <= hours)
        return "0 * * * *" if step == 1 else f"0 */{step} * * *"
    # Every N days is not even either (`*/N` in the day-of-month field restarts each month); a week
    # is the one longer interval cron repeats evenly.
    if interval_seconds < _WEEK:
        return "0 0 * * *"
    return "0 0 * * 0"


def ttl_for(retention_days: int) -> str:
    """Velero's TTL (a Go duration) for keeping each backup `retention_days` days."""
    if retention_days <= 0:
        raise ValueError(f"retention must be at least 1 day, got {retention_days}")
    return f"{retention_days * 24}h0m0s"


def velero_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """A DNS-1123 label from `parts`: lower-cased, other characters turned into '-', and when too
    long cut and ended with a hash of the whole, so two long names stay apart."""
    joined = "-".join(parts).lower()
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", joined)).strip("-") or "system"
    if len(name) > max_length:
        digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
        name = f"{name[: max_length - len(digest) - 1].rstrip('-')}-{digest}"
    return name


def _require_name(kind: str, name: str) -> None:
    if not DNS_LABEL.match(name):
        raise ValueError(
            f"a Velero {kind} name must be a DNS label (1-63 lower-case letters, digits or '-', "
            f"starting and ending alphanumeric), got {name!r}"
        )


def _require_namespaces(system: SystemCopies) -> None:
    for role, endpoint in (("primary", system.primary), ("standby", system.standby)):
        if not endpoint.namespace:
            raise ValueError(
                f"system {system.hospital_id}/{system.system_id}: the {role} endpoint names no "
                "namespace, so Velero has nothing to back up or restore into"
            )


def _labels(system: SystemCopies) -> dict[str, str]:
    return {HOSPITAL_LABEL: system.hospital_id, SYSTEM_LABEL: system.system_id}


def _metadata(system: SystemCopies, name: str, velero_namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": velero_namespace, "labels": _labels(system)}


def _backup_spec(system: SystemCopies, policy: ProtectionPolicy) -> dict[str, Any]:
    return {
        "includedNamespaces": [system.primary.namespace],
        "ttl": ttl_for(policy.retention_days),
        # Backups carry the labels too, so the system's restore points can be listed by label.
        "metadata": {"labels": _labels(system)},
    }


def schedule_name(system: SystemCopies) -> str:
    return velero_name(system.hospital_id, system.system_id, max_length=SCHEDULE_NAME_MAX)


def schedule_for(
    system: SystemCopies,
    policy: ProtectionPolicy,
    velero_namespace: str = DEFAULT_VELERO_NAMESPACE,
) -> dict[str, Any]:
    """A Schedule backing up the primary's namespace every `policy.backup_schedule_seconds`
    (rounded as `cron_for` explains), each backup kept `policy.retention_days`."""
    _require_namespaces(system)
    return {
        "apiVersion": VELERO_API_VERSION,
        "kind": "Schedule",
        "metadata": _metadata(system, schedule_name(system), velero_namespace),
        "spec": {
            "schedule": cron_for(policy.backup_schedule_seconds),
            "template": _backup_spec(system, policy),
            # Deleting the Schedule must not delete the restore points it made.
            "useOwnerReferencesInBackup": False,
        },
    }


def backup_for(
    system: SystemCopies,
    policy: ProtectionPolicy,
    name: str,
    velero_namespace: str = DEFAULT_VELERO_NAMESPACE,
) -> dict[str, Any]:
    """A one-off Backup `name` of the primary's namespace, kept `policy.retention_days`."""
    _require_name("Backup", name)
    _require_namespaces(system)
    return {
        "apiVersion": VELERO_API_VERSION,
        "kind": "Backup",
        "metadata": _metadata(system, name, velero_namespace),
        "spec": _backup_spec(system, policy),
    }


def restore_for(
    system: SystemCopies,
    backup_name: str,
    velero_namespace: str = DEFAULT_VELERO_NAMESPACE,
    name: str = "",
) -> dict[str, Any]:
    """A Restore of `backup_name` into the standby's namespace (the primary's namespace mapped onto
    it when they differ); named `restore-<backup>` unless `name` is given."""
    _require_name("Backup", backup_name)
    _require_namespaces(system)
    name = name or velero_name("restore", backup_name)
    _require_name("Restore", name)
    spec: dict[str, Any] = {
        "backupName": backup_name,
        "includedNamespaces": [system.primary.namespace],
    }
    if system.primary.namespace != system.standby.namespace:
        spec["namespaceMapping"] = {system.primary.namespace: system.standby.namespace}
    return {
        "apiVersion": VELERO_API_VERSION,
        "kind": "Restore",
        "metadata": _metadata(system, name, velero_namespace),
        "spec": spec,
    }
