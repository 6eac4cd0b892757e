"""Audit-trail figures for the security domain, in process:

- appends per second to the pure hash chain (`AuditChain.append`, event validation included),
  from one thread and from 8 concurrent writers;
- signing a checkpoint every 1,000 records (Ed25519);
- verifying 1,000,000 records with those checkpoints, from a list in memory and streamed from a
  generator (constant memory).

The etcd-backed trail adds a round trip per append; these are the ceilings the chain itself sets.
Prints figures; asserts nothing."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator

from medcloud.security.adapters.signing import Ed25519Signer, Ed25519Verifier, generate_key_pair
from medcloud.security.domain.audit import (
    AuditChain,
    AuditEvent,
    AuditRecord,
    make_checkpoint,
    next_record,
    verify,
)

RECORDS = 1_000_000
CHECKPOINT_EVERY = 1_000
WRITERS = 8
CONCURRENT_APPENDS = 200_000
START = 1_750_000_000.0

ACTIONS = ("policy.update", "data.export.decide", "audit.read", "inventory.write")


def event(index: int) -> AuditEvent:
    return AuditEvent(
        actor=f"CN=admin-{index % 7},OU=it,O=Regional Hospital {index % 13}",
        role="security-administrator",
        action=ACTIONS[index % len(ACTIONS)],
        target=f"policy/egress-{index % 101}",
        outcome="allowed" if index % 10 else "refused",
        detail={"request_id": f"req-{index:08d}", "reason": "scheduled review"},
    )


# The streamed trail cycles through these, so that its time goes on chaining, not on events.
STREAMED_EVENTS = [event(index) for index in range(1000)]


def stream() -> Iterator[AuditRecord]:
    """The trail made one record at a time and never held, as reading etcd page by page looks to
    the verifier."""
    previous: AuditRecord | None = None
    for index in range(RECORDS):
        cycled = STREAMED_EVENTS[index % len(STREAMED_EVENTS)]
        previous = next_record(previous, cycled, START + index * 0.01)
        yield previous


def concurrent_appends() -> float:
    chain = AuditChain()
    per_writer = CONCURRENT_APPENDS // WRITERS

    def write(writer: int) -> None:
        for index in range(per_writer):
            chain.append(event(writer * per_writer + index), START)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    private_key, public_key = generate_key_pair()
    signer = Ed25519Signer(private_key, "bench")
    verifier = Ed25519Verifier({"bench": public_key})
    print(f"{RECORDS:,} records, one checkpoint every {CHECKPOINT_EVERY:,}")

    # Streamed first, so that the peak memory it shows is its own.
    started = time.perf_counter()
    checkpoints = [
        make_checkpoint(record, signer, record.recorded_at)
        for record in stream()
        if record.sequence % CHECKPOINT_EVERY == 0
    ]
    seconds = time.perf_counter() - started
    print(f"  make and seal, streamed:     {seconds:6.2f} s, {len(checkpoints):,} checkpoints")
    started = time.perf_counter()
    report = verify(stream(), checkpoints, verifier)
    seconds = time.perf_counter() - started
    print(
        f"  make and verify, streamed:   {seconds:6.2f} s, ok={report.ok}; "
        f"peak RSS so far {peak_rss_mib():,.0f} MiB"
    )

    chain = AuditChain()
    records: list[AuditRecord] = []
    started = time.perf_counter()
    for index in range(RECORDS):
        records.append(chain.append(event(index), START + index * 0.01))
    seconds = time.perf_counter() - started
    print(
        f"  append, 1 writer:            {RECORDS / seconds:>9,.0f} records/s "
        f"({seconds * 1e6 / RECORDS:.1f} µs each, event validation included)"
    )
    seconds = concurrent_appends()
    print(
        f"  append, {WRITERS} writers:           {CONCURRENT_APPENDS / seconds:>9,.0f} records/s "
        f"({CONCURRENT_APPENDS:,} appends in all)"
    )
    started = time.perf_counter()
    sealed = [
        make_checkpoint(record, signer, record.recorded_at)
        for record in records[CHECKPOINT_EVERY - 1 :: CHECKPOINT_EVERY]
    ]
    seconds = time.perf_counter() - started
    print(f"  seal:                        {seconds * 1e6 / len(sealed):6.0f} µs a checkpoint")

    started = time.perf_counter()
    report = verify(records, sealed, verifier)
    seconds = time.perf_counter() - started
    print(
        f"  verify from memory:          {seconds:6.2f} s ({RECORDS / seconds:,.0f} records/s), "
        f"ok={report.ok}, {report.records_checked:,} checked; peak RSS {peak_rss_mib():,.0f} MiB"
    )


if __name__ == "__main__":
    main()
