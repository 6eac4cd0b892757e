"""A consumer process that receives one event and dies before it can ack (a crash, not a failure).

Usage: crashing_consumer.py NATS_URL REGION SOURCE_SERVICE DURABLE ACK_WAIT_SECONDS"""

from __future__ import annotations

import asyncio
import os
import sys

from google.protobuf import wrappers_pb2

from medcloud.runtime.bus import EventBus, ReceivedEvent, RedeliveryPolicy


async def main(url: str, region: str, source: str, durable: str, ack_wait: float) -> None:
    bus = await EventBus.connect(url, region, "crasher")

    async def die(event: ReceivedEvent) -> None:
        print(f"received {event.id}", flush=True)
        os._exit(17)

    await bus.subscribe(
        source_service=source,
        event_types=[wrappers_pb2.StringValue],
        durable=durable,
        handler=die,
        policy=RedeliveryPolicy(ack_wait_seconds=ack_wait),
    )
    await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], float(sys.argv[5])))
