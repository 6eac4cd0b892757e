"""The audit trail in etcd: each record appended in one transaction with the chain's head, so two
writers can never fork the chain; checkpoints sealed as they fall due; verification over
everything stored."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction
from medcloud.security.app.ports import TrailEvents
from medcloud.security.domain.audit import (
    CHECKPOINT_EVERY_RECORDS,
    AuditEvent,
    AuditRecord,
    ChainAnchor,
    Checkpoint,
    RetentionPolicy,
    Signer,
    VerificationReport,
    Verifier,
    checkpoint_due,
    make_checkpoint,
    next_record,
    prune_point,
    verify,
)

log = logging.getLogger(__name__)

HEAD = "head"
ANCHOR = "anchor"
_DELETES_PER_TRANSACTION = 60
_PAGE = 1000
# Each record is up to four writes (record, event id, checkpoint, its AuditRecorded event) plus
# the head, and etcd takes at most 128 operations per transaction.
_RECORDS_PER_TRANSACTION = 30
_Waiting = tuple[AuditEvent, str, "asyncio.Future[AuditRecord | None]"]


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
    # The last pruned record, which the kept trail verifies from.
    anchor: Collection[AuditRecord]


class AuditTrail:
    def __init__(
        self,
        store: EtcdStore,
        collections: TrailCollections,
        signer: Signer,
        verifier: Verifier,
        outbox: Outbox,
        events: TrailEvents,
        clock: Callable[[], float] = time.time,
        checkpoint_every: int = CHECKPOINT_EVERY_RECORDS,
    ) -> None:
        self._store = store
        self._c = collections
        self._signer = signer
        self._verifier = verifier
        self._outbox = outbox
        self._events = events
        self._clock = clock
        self._every = checkpoint_every
        # One writer per process; other replicas are kept out by the head's revision guard.
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.last_verification: VerificationReport | None = None

    async def append(self, event: AuditEvent, event_id: str = "") -> AuditRecord | None:
        """Appends `event` and returns its record once stored; with `event_id`, a second append
        of the same id records nothing and returns None (a redelivered entry). Concurrent
        appends are written together, many records to one transaction."""
        future: asyncio.Future[AuditRecord | None] = asyncio.get_running_loop().create_future()
        # Any text a publisher chose ("drill-1/evidence") becomes a safe key, so one odd id cannot
        # fail the appends batched with it.
        guard = hashlib.sha256(event_id.encode()).hexdigest() if event_id else ""
        self._waiting.append((event, guard, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="audit writer")
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:_RECORDS_PER_TRANSACTION]
            del self._waiting[: len(batch)]
            try:
                results = (await self._store.transact(_BatchStep(self, batch))).result
            except Exception as error:
                for _, _, future in batch:
                    future.set_exception(error)
                continue
            self._outbox.notify()
            for (_, _, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    async def write_batch(
        self, transaction: Transaction, batch: list[_Waiting], read_ids: bool
    ) -> list[AuditRecord | None]:
        head = await transaction.get(self._c.head, HEAD)
        previous = head.value if head else None
        results: list[AuditRecord | None] = []
        seen: set[str] = set()
        for event, event_id, _ in batch:
            if event_id in seen or (
                event_id and read_ids and await transaction.get(self._c.appended_events, event_id)
            ):
                results.append(None)
                continue
            if event_id and not read_ids:
                transaction.expect_revision(self._c.appended_events, event_id, 0)
            record = next_record(previous, event, self._clock())
            transaction.put(self._c.records, sequence_key(record.sequence), record)
            if event_id:
                seen.add(event_id)
                transaction.put(self._c.appended_events, event_id, sequence_key(record.sequence))
            last_sealed = (record.sequence - 1) // self._every * self._every
            if checkpoint_due(last_sealed, record.sequence, self._every):
                checkpoint = make_checkpoint(record, self._signer, self._clock())
                transaction.put(self._c.checkpoints, sequence_key(record.sequence), checkpoint)
            self._outbox.add(transaction, self._events.recorded(record), f"audit-{record.sequence}")
            results.append(record)
            previous = record
        if previous is not None:
            transaction.put(self._c.head, HEAD, previous)
        return results

    async def records(
        self, after_sequence: int, limit: int, by: AuditEvent | None = None
    ) -> list[AuditRecord]:
        """Up to `limit` records after `after_sequence`. With `by` (who asked), the read joins the
        trail, naming the range it returned: reading the trail is audited too."""
        page = [
            item.value for item in await self._c.records.page(sequence_key(after_sequence), limit)
        ]
        if by is not None:
            returned = f"{page[0].sequence}-{page[-1].sequence}" if page else "none"
            await self.append(dataclasses.replace(by, detail={"records": returned}))
        return page

    async def _all_records(self, after_sequence: int = 0) -> AsyncIterator[AuditRecord]:
        after = sequence_key(after_sequence) if after_sequence else ""
        while True:
            page = await self._c.records.page(after, _PAGE)
            for item in page:
                yield item.value
            if len(page) < _PAGE:
                return
            after = page[-1].id

    async def _anchor(self) -> ChainAnchor:
        stored = await self._c.anchor.get(ANCHOR)
        return (
            ChainAnchor()
            if stored is None
            else ChainAnchor(stored.value.sequence, stored.value.hash)
        )

    async def prune(self, policy: RetentionPolicy) -> int:
        """Removes records older than the retention, up to the newest one a checkpoint seals,
        and only from a trail that verifies: pruning must never hide a problem. The last pruned
        record becomes the anchor the rest verifies from, and its checkpoint stays as proof.
        Returns how many records went."""
        report, _ = await self.verify()
        if not report.ok:
            return 0
        anchor = await self._anchor()
        checkpoints = [item.value for item in await self._c.checkpoints.list()]
        point = prune_point(
            [record async for record in self._all_records(anchor.sequence)],
            checkpoints,
            policy,
            self._clock(),
        )
        if point is None or point.sequence <= anchor.sequence:
            return 0
        sealing = await self._c.records.require(sequence_key(point.sequence))

        # The anchor first: a crash part-way through leaves records below it, which verification
        # skips, rather than a gap it would report.
        async def move_anchor(transaction: Transaction) -> None:
            transaction.put(self._c.anchor, ANCHOR, sealing.value)

        await self._store.transact(move_anchor)
        doomed = range(anchor.sequence + 1, point.sequence + 1)
        for start in range(0, len(doomed), _DELETES_PER_TRANSACTION):
            chunk = doomed[start : start + _DELETES_PER_TRANSACTION]

            async def delete(transaction: Transaction, chunk: range = chunk) -> None:
                for sequence in chunk:
                    transaction.delete(self._c.records, sequence_key(sequence))
                    if sequence != point.sequence:
                        transaction.delete(self._c.checkpoints, sequence_key(sequence))

            await self._store.transact(delete)
        return len(doomed)

    async def prune_every(self, policy: RetentionPolicy, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                pruned = await self.prune(policy)
            except Exception:
                log.exception("pruning the audit trail failed; trying again next interval")
                continue
            if pruned:
                log.info("audit trail pruned", extra={"records": pruned})

    async def verify(self, by: AuditEvent | None = None) -> tuple[VerificationReport, int]:
        """Every stored record and checkpoint, checked; the head names the last sequence, so a
        truncated tail is found too. Returns the report and how many checkpoints it used. With
        `by` (who asked), the verification joins the trail with its outcome: auditors are
        audited too."""
        anchor = await self._anchor()
        checkpoints = [
            item.value
            for item in await self._c.checkpoints.list()
            if item.value.sequence >= anchor.sequence
        ]
        head = await self._c.head.get(HEAD)
        records = [record async for record in self._all_records(anchor.sequence)]
        report = verify(
            records,
            checkpoints,
            self._verifier,
            anchor=anchor,
            expected_last_sequence=head.value.sequence if head else None,
        )
        self.last_verification = report
        if by is not None:
            outcome = "ok" if report.ok else "problems"
            detail = {"records": str(report.records_checked), "problems": str(len(report.problems))}
            await self.append(dataclasses.replace(by, outcome=outcome, detail=detail))
        return report, len(checkpoints)


class _BatchStep:
    """One batch's transaction step. The first attempt only guards that no event id was appended
    before (no read per record); a lost race, such as a redelivered entry, reads them."""

    def __init__(self, trail: AuditTrail, batch: list[_Waiting]) -> None:
        self._trail = trail
        self._batch = batch
        self._attempts = itertools.count(1)

    async def __call__(self, transaction: Transaction) -> list[AuditRecord | None]:
        read_ids = next(self._attempts) > 1
        return await self._trail.write_batch(transaction, self._batch, read_ids)
