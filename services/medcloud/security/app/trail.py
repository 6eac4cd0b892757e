"""The audit trail in etcd: each record appended in one transaction with the chain's head, so two
writers can never fork the chain; checkpoints sealed as they fall due; verification over
everything stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from medcloud.runtime.store import Collection, EtcdStore, Transaction
from medcloud.security.domain.audit import (
    CHECKPOINT_EVERY_RECORDS,
    AuditEvent,
    AuditRecord,
    Checkpoint,
    Signer,
    VerificationReport,
    Verifier,
    checkpoint_due,
    make_checkpoint,
    next_record,
    verify,
)

HEAD = "head"
_PAGE = 1000


def sequence_key(sequence: int) -> str:
    """Keys sort as the sequence does, so a range read returns the trail in order."""
    return f"{sequence:020d}"


@dataclass(frozen=True)
class TrailCollections:
    records: Collection[AuditRecord]
    checkpoints: Collection[Checkpoint]
    # The newest record, guarded by its revision: the point every writer races on.
    head: Collection[AuditRecord]
    # Event ids already appended, so a redelivered entry is not recorded twice.
    appended_events: Collection[str]


class AuditTrail:
    def __init__(
        self,
        store: EtcdStore,
        collections: TrailCollections,
        signer: Signer,
        verifier: Verifier,
        clock: Callable[[], float] = time.time,
        checkpoint_every: int = CHECKPOINT_EVERY_RECORDS,
    ) -> None:
        self._store = store
        self._c = collections
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        self._every = checkpoint_every
        # One writer per process; other replicas are kept out by the head's revision guard.
        self._lock = asyncio.Lock()
        self.last_verification: VerificationReport | None = None

    async def append(self, event: AuditEvent, event_id: str = "") -> AuditRecord | None:
        """Appends `event`; with `event_id`, a second append of the same id records nothing and
        returns None (a redelivered entry)."""

        async def write(transaction: Transaction) -> AuditRecord | None:
            if event_id and await transaction.get(self._c.appended_events, event_id):
                return None
            head = await transaction.get(self._c.head, HEAD)
            previous = head.value if head else None
            record = next_record(previous, event, self._clock())
            transaction.put(self._c.records, sequence_key(record.sequence), record)
            transaction.put(self._c.head, HEAD, record)
            if event_id:
                transaction.put(self._c.appended_events, event_id, sequence_key(record.sequence))
            last_sealed = (record.sequence - 1) // self._every * self._every
            if checkpoint_due(last_sealed, record.sequence, self._every):
                checkpoint = make_checkpoint(record, self._signer, self._clock())
                transaction.put(self._c.checkpoints, sequence_key(record.sequence), checkpoint)
            return record

        async with self._lock:
            return (await self._store.transact(write)).result

    async def records(self, after_sequence: int, limit: int) -> list[AuditRecord]:
        page = await self._c.records.page(sequence_key(after_sequence), limit)
        return [item.value for item in page]

    async def _all_records(self) -> AsyncIterator[AuditRecord]:
        after = ""
        while True:
            page = await self._c.records.page(after, _PAGE)
            for item in page:
                yield item.value
            if len(page) < _PAGE:
                return
            after = page[-1].id

    async def verify(self) -> tuple[VerificationReport, int]:
        """Every stored record and checkpoint, checked; the head names the last sequence, so a
        truncated tail is found too. Returns the report and how many checkpoints it used."""
        checkpoints = [item.value for item in await self._c.checkpoints.list()]
        head = await self._c.head.get(HEAD)
        records = [record async for record in self._all_records()]
        report = verify(
            records,
            checkpoints,
            self._verifier,
            expected_last_sequence=head.value.sequence if head else None,
        )
        self.last_verification = report
        return report, len(checkpoints)
