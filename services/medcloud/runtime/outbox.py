"""The transactional outbox: an event is written to etcd in the same transaction as the change it
reports and published to NATS afterwards, so a crash between the two never loses the event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from medcloud.common.v1.pending_event_pb2 import PendingEvent
from medcloud.core.errors import Unavailable
from medcloud.runtime.bus import EventBus
from medcloud.runtime.store import EtcdStore, ProtobufCodec, Transaction

log = logging.getLogger(__name__)


class Outbox:
    """Pending events under the service's `outbox/` keys, relayed in commit order."""

    def __init__(self, store: EtcdStore, bus: EventBus, sweep_seconds: float = 5.0) -> None:
        self._pending = store.collection("outbox", ProtobufCodec(PendingEvent))
        self._bus = bus
        self._sweep_seconds = sweep_seconds
        self._wake = asyncio.Event()

    def add(self, transaction: Transaction, payload: Message, event_id: str | None = None) -> str:
        """Adds `payload` to the transaction's writes; it is published once the transaction commits.
        Give a deterministic `event_id` where the same change may be written twice."""
        event_id = event_id or str(uuid.uuid4())
        time = timestamp_pb2.Timestamp()
        time.FromDatetime(datetime.now(UTC))
        event = PendingEvent(
            id=event_id,
            type=payload.DESCRIPTOR.full_name,
            payload=payload.SerializeToString(),
            time=time,
        )
        transaction.put(self._pending, event_id.replace("/", "_"), event)
        return event_id

    def notify(self) -> None:
        """Asks the relay to publish now (after a commit) rather than at the next sweep."""
        self._wake.set()

    async def flush(self) -> int:
        """Publishes every pending event in commit order; returns how many it published."""
        pending = sorted(await self._pending.list(), key=lambda item: item.create_revision)
        for item in pending:
            event = item.value
            await self._bus.publish_encoded(
                event.type,
                event.payload,
                event_id=event.id,
                time=event.time.ToDatetime(UTC),
            )
            await self._pending.delete(item.id)
        return len(pending)

    async def relay(self) -> None:
        """Runs until cancelled: publishes on notify() and sweeps every `sweep_seconds`, so events
        left by a crashed process (or a NATS outage) go out when this one runs."""
        while True:
            self._wake.clear()
            try:
                await self.flush()
            except Unavailable as error:
                log.warning(
                    "outbox relay could not publish; will retry", extra={"error": str(error)}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sweep_seconds)
