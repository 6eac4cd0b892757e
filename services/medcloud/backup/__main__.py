"""`python -m medcloud.backup`: the backup and DR service process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medcloud.backup.adapters.codecs import (
    DRILL_CODEC,
    FACTS_CODEC,
    FAILOVER_CODEC,
    SYSTEM_CODEC,
    ProtobufBackupEvents,
)
from medcloud.backup.adapters.etcd_snapshots import EtcdSnapshotStore
from medcloud.backup.adapters.kubernetes_driver import KubernetesDriver
from medcloud.backup.app.recovery import BackupCollections, Recovery, StepRetry
from medcloud.backup.app.snapshots import ControlPlaneBackups
from medcloud.backup.entrypoints.grpc_api import BackupApi, binding
from medcloud.core.errors import Unavailable
from medcloud.monitoring.v1 import monitoring_events_pb2 as monitoring_events
from medcloud.runtime.bus import ReceivedEvent
from medcloud.runtime.config import ConfigError, at_least, load_settings, setting
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.service import EXIT_CONFIG, ServiceContext, run_service
from medcloud.runtime.tls import TlsMaterial


def _clusters(text: str) -> str | None:
    for entry in filter(None, text.split(",")):
        name, _, path = entry.partition("=")
        if not name or not path:
            return f"{entry!r}: each entry is NAME=KUBECONFIG"
        if not Path(path).is_file():
            return f"{entry!r}: no such kubeconfig file"
    return None


def parse_clusters(text: str) -> dict[str, Path]:
    return {
        name: Path(path)
        for name, _, path in (entry.partition("=") for entry in filter(None, text.split(",")))
    }


def _existing_file(path: str) -> str | None:
    return None if not path or Path(path).is_file() else "no such file"


@dataclass(frozen=True)
class BackupSettings:
    snapshot_dir: str = setting(
        "MEDCLOUD_BACKUP_SNAPSHOT_DIR",
        help="the backup centre's object store for control-plane snapshots (a directory)",
    )
    snapshot_cert_file: str = setting(
        "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE",
        default="",
        check=_existing_file,
        help="certificate of the etcd user allowed to snapshot (etcd's root role)",
    )
    snapshot_key_file: str = setting(
        "MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE", default="", check=_existing_file
    )
    snapshot_interval_seconds: float = setting(
        "MEDCLOUD_BACKUP_SNAPSHOT_INTERVAL_SECONDS", default=3600.0, check=at_least(1)
    )
    snapshot_keep: int = setting("MEDCLOUD_BACKUP_SNAPSHOT_KEEP", default=48, check=at_least(1))
    snapshot_max_age_days: float = setting(
        "MEDCLOUD_BACKUP_SNAPSHOT_MAX_AGE_DAYS", default=30.0, check=at_least(1)
    )
    clusters: str = setting(
        "MEDCLOUD_BACKUP_CLUSTERS",
        default="",
        check=_clusters,
        help="member clusters the kubernetes driver moves systems in: NAME=KUBECONFIG,...",
    )
    verify_ready: bool = setting(
        "MEDCLOUD_BACKUP_VERIFY_READY",
        default=True,
        help="VERIFY waits for ready replicas (off only where no nodes run, e.g. make run)",
    )
    verify_timeout_seconds: float = setting(
        "MEDCLOUD_BACKUP_VERIFY_TIMEOUT_SECONDS", default=300.0, check=at_least(1)
    )
    step_attempts: int = setting("MEDCLOUD_BACKUP_STEP_ATTEMPTS", default=3, check=at_least(1))


async def follow_site_down(recovery: Recovery, event: ReceivedEvent) -> None:
    """Monitoring declared a centre down (every node silent, or every link down): Tier 5+ systems
    serving there fail over now (R-7.6b/c). The event's id names each failover, so a second
    delivery finds the first. A single LinkDown does not isolate a centre and triggers nothing:
    when the last link goes, monitoring declares SiteDown with reason "links"."""
    assert isinstance(event.payload, monitoring_events.SiteDown)
    await recovery.on_site_down(event.id, event.payload.centre_id)


def main() -> int:
    try:
        settings = load_settings(BackupSettings)
        if bool(settings.snapshot_cert_file) != bool(settings.snapshot_key_file):
            raise ConfigError(
                [
                    "MEDCLOUD_BACKUP_SNAPSHOT_CERT_FILE and MEDCLOUD_BACKUP_SNAPSHOT_KEY_FILE: "
                    "set both or neither"
                ]
            )
    except ConfigError as error:
        print(f"medcloud-backup: {error}", file=sys.stderr)
        return EXIT_CONFIG
    snapshot_pair = None
    if settings.snapshot_cert_file:
        snapshot_pair = (
            Path(settings.snapshot_cert_file).read_bytes(),
            Path(settings.snapshot_key_file).read_bytes(),
        )

    async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
        store = context.store
        outbox = Outbox(store, context.bus)
        events = ProtobufBackupEvents()
        driver = KubernetesDriver(
            parse_clusters(settings.clusters),
            verify_ready=settings.verify_ready,
            verify_timeout_seconds=settings.verify_timeout_seconds,
        )
        recovery = Recovery(
            store,
            BackupCollections(
                facts=store.collection("region-facts", FACTS_CODEC),
                systems=store.collection("protections", SYSTEM_CODEC),
                failovers=store.collection("failovers", FAILOVER_CODEC),
                drills=store.collection("drills", DRILL_CODEC),
            ),
            outbox,
            events,
            {driver.name: driver},
            StepRetry(attempts=settings.step_attempts),
        )
        snapshot_tls = context.tls
        if snapshot_tls is None:
            raise Unavailable("control-plane snapshots need etcd over TLS: set MEDCLOUD_TLS_*")
        if snapshot_pair is not None:
            snapshot_tls = TlsMaterial(snapshot_tls.ca_pem, *snapshot_pair)
        backups = ControlPlaneBackups(
            EtcdSnapshotStore(
                str(context.settings.etcd_endpoint),
                snapshot_tls,
                Path(settings.snapshot_dir),
                context.settings.region,
            ),
            store,
            outbox,
            events,
            keep=settings.snapshot_keep,
            max_age_seconds=settings.snapshot_max_age_days * 86400,
        )
        context.run_in_background(outbox.relay(), name="outbox relay")
        context.run_in_background(
            backups.run_schedule(settings.snapshot_interval_seconds), name="snapshot schedule"
        )
        await recovery.resume_unfinished()
        await context.bus.subscribe(
            source_service="monitoring",
            event_types=[monitoring_events.SiteDown],
            durable="backup-site-down",
            handler=lambda event: follow_site_down(recovery, event),
        )
        return [binding(BackupApi(recovery, backups))]

    return run_service("backup", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
