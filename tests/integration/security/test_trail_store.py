"""The audit trail against a real etcd: concurrent appends make one unbroken chain, and a
redelivered entry is recorded once."""

from __future__ import annotations

import asyncio

import pytest

from medcloud.runtime.bus import EventBus
from medcloud.runtime.outbox import Outbox
from medcloud.security.adapters.codecs import (
    ProtobufTrailEvents,
)
from medcloud.security.adapters.collections import trail_collections
from medcloud.security.adapters.signing import Ed25519Signer, Ed25519Verifier, generate_key_pair
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import AuditEvent, RetentionPolicy
from tests.support.identities import connect_store


@pytest.fixture
async def make_trail(etcd_server, nats_server, region):
    """Builds trails on the test's own etcd prefix and NATS stream, as the service wires one."""
    store = await connect_store(etcd_server.endpoint, region, "security")
    bus = await EventBus.connect(nats_server.url, region, "security")
    private_key, public_key = generate_key_pair()

    def make(**options) -> tuple[AuditTrail, Outbox]:
        outbox = Outbox(store, bus)
        trail = AuditTrail(
            store,
            trail_collections(store),
            Ed25519Signer(private_key, "k1"),
            Ed25519Verifier({"k1": public_key}),
            outbox,
            ProtobufTrailEvents(),
            **options,
        )
        return trail, outbox

    yield make
    await bus.close()
    await store.close()


async def test_concurrent_appends_form_one_chain_and_a_redelivery_is_recorded_once(make_trail):
    trail, outbox = make_trail(checkpoint_every=25)

    def event(number: int) -> AuditEvent:
        return AuditEvent(
            f"writer-{number % 8}", "service", "inventory.write", f"h-{number}", "allowed"
        )

    records = await asyncio.gather(*(trail.append(event(n), f"e-{n}") for n in range(120)))
    again = await trail.append(event(7), "e-7")

    assert again is None
    assert sorted(r.sequence for r in records) == list(range(1, 121))
    report, checkpoints = await trail.verify()
    assert report.ok and report.records_checked == 120
    assert checkpoints == 4
    # Each record is announced once, through the outbox.
    assert await outbox.flush() == 120


async def test_pruning_removes_only_records_past_retention_and_the_rest_still_verifies(
    make_trail,
):
    now = 1_800_000_000.0
    clock = [now - 200 * 86_400]  # the first records are 200 days old
    trail, _ = make_trail(clock=lambda: clock[0], checkpoint_every=10)
    for number in range(25):
        await trail.append(AuditEvent("ops", "service", "inventory.write", f"h-{number}", "ok"))
    clock[0] = now
    for number in range(5):
        await trail.append(AuditEvent("ops", "service", "inventory.write", f"n-{number}", "ok"))

    pruned = await trail.prune(RetentionPolicy(180))

    # Records 1-20 go (20 is the newest old record a checkpoint seals); 21-25 are old but
    # unsealed, so they stay with the recent ones.
    assert pruned == 20
    kept = await trail.records(0, 100)
    assert [r.sequence for r in kept] == list(range(21, 31))
    report, _ = await trail.verify()
    assert report.ok and report.records_checked == 10
    assert await trail.prune(RetentionPolicy(180)) == 0
