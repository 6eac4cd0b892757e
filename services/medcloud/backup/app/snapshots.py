"""The control plane's own state, saved on a schedule to the backup centre (R-7.2.5): every
snapshot announced, BackupCompleted or BackupFailed, through the outbox."""

from __future__ import annotations

import asyncio
import logging
import uuid

from medcloud.backup.app.ports import BackupEvents, SnapshotInfo, SnapshotStore
from medcloud.core.errors import MedcloudError
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import EtcdStore, Transaction

log = logging.getLogger(__name__)


class ControlPlaneBackups:
    def __init__(
        self,
        snapshots: SnapshotStore,
        store: EtcdStore,
        outbox: Outbox,
        events: BackupEvents,
        keep: int,
        max_age_seconds: float,
    ) -> None:
        self._snapshots = snapshots
        self._store = store
        self._outbox = outbox
        self._events = events
        self._keep = keep
        self._max_age_seconds = max_age_seconds
        self._lock = asyncio.Lock()

    async def snapshot_now(self) -> SnapshotInfo:
        """Takes one snapshot (one at a time), prunes beyond the retention, announces the
        outcome; a failure is announced and raised."""
        async with self._lock:
            try:
                info = await self._snapshots.save()
            except MedcloudError as error:
                await self._announce(self._events.backup_failed(str(error)))
                raise
            await self._announce(self._events.backup_completed(info), f"snapshot/{info.name}")
            for pruned in self._snapshots.prune(self._keep, self._max_age_seconds):
                log.info("snapshot pruned", extra={"snapshot": pruned.name})
            return info

    def snapshots(self) -> list[SnapshotInfo]:
        return self._snapshots.list()

    async def run_schedule(self, interval_seconds: float) -> None:
        """Snapshots every `interval_seconds` until cancelled; a failed one is retried at the
        next tick (and was announced as BackupFailed)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.snapshot_now()
            except MedcloudError:
                log.exception("scheduled control-plane snapshot failed")

    async def _announce(self, payload: object, event_id: str | None = None) -> None:
        async def step(transaction: Transaction) -> None:
            self._outbox.add(transaction, payload, event_id=event_id or str(uuid.uuid4()))  # type: ignore[arg-type]

        await self._store.transact(step)
        self._outbox.notify()
