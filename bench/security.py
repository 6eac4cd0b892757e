"""Audit-trail figures against a real etcd (the trail as the security service keeps it, in
process): appends per second with 8 concurrent writers, each append a hash-chained record in a
transaction with the chain's head, and the time to verify what was stored. The pure chain (1,000,000
records verified in memory) is measured by bench/audit_chain.py.

Prints figures; asserts nothing."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from medcloud.devstack.servers import EtcdServer, NatsServer
from medcloud.runtime.bus import EventBus
from medcloud.runtime.config import HostPort
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import EtcdStore
from medcloud.security.adapters.codecs import (
    ProtobufTrailEvents,
)
from medcloud.security.adapters.collections import trail_collections
from medcloud.security.adapters.signing import Ed25519Signer, Ed25519Verifier, generate_key_pair
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import AuditEvent

WRITERS = 8
APPENDS_PER_WRITER = 2_500


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        etcd = EtcdServer(Path(work) / "etcd", Path(work) / "etcd.log")
        nats_server = NatsServer(Path(work) / "nats", Path(work) / "nats.log")
        etcd.start()
        nats_server.start()
        try:
            store = await EtcdStore.connect(HostPort.parse(etcd.endpoint), "bench", "security")
            bus = await EventBus.connect(nats_server.url, "bench", "security")
            private_key, public_key = generate_key_pair()
            trail = AuditTrail(
                store,
                trail_collections(store),
                Ed25519Signer(private_key, "bench"),
                Ed25519Verifier({"bench": public_key}),
                Outbox(store, bus),
                ProtobufTrailEvents(),
            )

            async def writer(number: int) -> None:
                for k in range(APPENDS_PER_WRITER):
                    await trail.append(
                        AuditEvent(
                            f"writer-{number}",
                            "service",
                            "inventory.write",
                            f"host/h-{k}",
                            "allowed",
                            {"method": "UpdateHost"},
                        ),
                        event_id=f"{number}-{k}",
                    )

            started = time.perf_counter()
            await asyncio.gather(*(writer(n) for n in range(WRITERS)))
            seconds = time.perf_counter() - started
            total = WRITERS * APPENDS_PER_WRITER
            print(
                f"audit appends, {WRITERS} concurrent writers: {total} records in {seconds:.1f} s "
                f"= {total / seconds:,.0f} records/s"
            )
            started = time.perf_counter()
            report, checkpoints = await trail.verify()
            seconds = time.perf_counter() - started
            print(
                f"verification of the stored trail: {report.records_checked} records and "
                f"{checkpoints} checkpoints in {seconds:.2f} s (ok: {report.ok})"
            )
            await bus.close()
            await store.close()
        finally:
            nats_server.stop()
            etcd.stop()


if __name__ == "__main__":
    asyncio.run(main())
