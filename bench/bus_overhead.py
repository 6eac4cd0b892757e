"""Event bus overhead: events/s through medcloud's bus (publish with ack -> handled and acked)
divided by events/s of plain nats-py JetStream (publish with ack -> pull-consumed and acked).
Same NATS server, same payload, same run. Prints figures; asserts nothing.

A third column runs plain nats-py with the same CloudEvents headers the bus sends, which separates
the cost of the headers inside nats-py from the bus's own work (tracing, decoding, redelivery)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import nats
from google.protobuf import wrappers_pb2
from nats.js import api as js_api

from medcloud.devstack.servers import NatsServer
from medcloud.runtime.bus import EventBus, ReceivedEvent
from medcloud.runtime.telemetry import configure_telemetry

EVENTS = 3000
ROUNDS = 3
PAYLOAD = wrappers_pb2.StringValue(value="hospital-site-registered " * 4)


async def _publish_all(publish, publishers: int) -> None:
    per_publisher = EVENTS // publishers

    async def one(offset: int) -> None:
        for i in range(per_publisher):
            await publish(offset * per_publisher + i)

    await asyncio.gather(*(one(p) for p in range(publishers)))


CLOUDEVENTS_HEADERS = {
    "ce-specversion": "1.0",
    "ce-type": "google.protobuf.StringValue",
    "ce-source": "medcloud/bench/inventory",
    "ce-time": "2026-11-26T12:00:00.000000+00:00",
    "content-type": "application/protobuf",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
}


async def plain_nats(url: str, tag: str, publishers: int, with_headers: bool = False) -> float:
    # Two connections, as two services have (publisher and consumer), like the bus side.
    nc, consumer_nc = await nats.connect(url), await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name=f"PLAIN_{tag}", subjects=[f"plain.{tag}.>"])
    handled = 0
    done = asyncio.Event()
    target = EVENTS // publishers * publishers
    sub = await consumer_nc.jetstream().pull_subscribe(
        f"plain.{tag}.Event",
        durable=f"plain-{tag}",
        config=js_api.ConsumerConfig(ack_policy=js_api.AckPolicy.EXPLICIT),
    )

    async def consume() -> None:
        nonlocal handled
        while handled < target:
            try:
                messages = await sub.fetch(64, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in messages:
                wrappers_pb2.StringValue.FromString(msg.data)
                await msg.ack()
                handled += 1
        done.set()

    data = PAYLOAD.SerializeToString()
    started = time.perf_counter()
    consumer = asyncio.create_task(consume())
    extra = CLOUDEVENTS_HEADERS if with_headers else {}

    def publish(i: int):
        headers = {"Nats-Msg-Id": f"{tag}-{i}", **extra}
        if with_headers:
            headers["ce-id"] = headers["Nats-Msg-Id"]
        return js.publish(f"plain.{tag}.Event", data, headers=headers)

    await _publish_all(publish, publishers)
    await done.wait()
    elapsed = time.perf_counter() - started
    await consumer
    await nc.close()
    await consumer_nc.close()
    return target / elapsed


async def medcloud_bus(url: str, tag: str, publishers: int) -> float:
    publisher = await EventBus.connect(url, f"bench{tag}", "inventory")
    subscriber = await EventBus.connect(url, f"bench{tag}", "scheduling")
    handled = 0
    done = asyncio.Event()
    target = EVENTS // publishers * publishers

    async def handle(event: ReceivedEvent) -> None:
        nonlocal handled
        handled += 1
        if handled == target:
            done.set()

    await subscriber.subscribe(
        source_service="inventory",
        event_types=[wrappers_pb2.StringValue],
        durable=f"bench-{tag}",
        handler=handle,
    )
    started = time.perf_counter()
    await _publish_all(lambda i: publisher.publish(PAYLOAD, event_id=f"{tag}-{i}"), publishers)
    await done.wait()
    elapsed = time.perf_counter() - started
    await subscriber.close()
    await publisher.close()
    return target / elapsed


async def main() -> None:
    # As in a service without an OTLP endpoint: trace context travels, no span is recorded.
    configure_telemetry("bench", "bench", None)
    with tempfile.TemporaryDirectory() as work:
        server = NatsServer(Path(work) / "store", Path(work) / "nats.log")
        server.start()
        try:
            for publishers in (1, 16):
                plain, plain_ce, ours = [], [], []
                for round_ in range(ROUNDS):  # interleaved so machine noise hits all alike
                    tag = f"p{publishers}r{round_}"
                    plain.append(await plain_nats(server.url, tag, publishers))
                    plain_ce.append(await plain_nats(server.url, f"{tag}ce", publishers, True))
                    ours.append(await medcloud_bus(server.url, tag, publishers))
                print(
                    f"bus, {publishers} concurrent publisher(s), {EVENTS} events, best of {ROUNDS}:\n"
                    f"  plain nats-py                   {max(plain):8.0f} ev/s\n"
                    f"  plain nats-py + CE headers      {max(plain_ce):8.0f} ev/s\n"
                    f"  medcloud bus                    {max(ours):8.0f} ev/s\n"
                    f"  ratio bus / plain               {max(ours) / max(plain):8.2f}  (goal >= 0.8)\n"
                    f"  ratio bus / plain + CE headers  {max(ours) / max(plain_ce):8.2f}",
                    flush=True,
                )
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
