"""The event bus against a real NATS JetStream server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from google.protobuf import wrappers_pb2
from opentelemetry import trace

from medcloud.runtime.bus import (
    EventBus,
    ReceivedEvent,
    RedeliveryPolicy,
    dead_letter_subject,
    stream_name,
)
from tests.conftest import SPANS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def buses(nats_server, region) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """A publishing service ('inventory') and a subscribing one ('scheduling') in one region."""
    publisher = await EventBus.connect(nats_server.url, region, "inventory")
    subscriber = await EventBus.connect(nats_server.url, region, "scheduling")
    yield publisher, subscriber
    await subscriber.close()
    await publisher.close()


async def _follow_inventory(
    subscriber: EventBus, durable: str, handler, policy: RedeliveryPolicy | None = None
) -> None:
    """Subscribes `subscriber` to inventory's StringValue events."""
    await subscriber.subscribe(
        source_service="inventory",
        event_types=[wrappers_pb2.StringValue],
        durable=durable,
        handler=handler,
        policy=policy,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[ReceivedEvent] = []
        self.arrived = asyncio.Event()

    async def __call__(self, event: ReceivedEvent) -> None:
        self.events.append(event)
        self.arrived.set()


async def _eventually(condition, within_seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_an_event_published_twice_with_one_id_is_handled_once(buses):
    publisher, subscriber = buses
    recorder = Recorder()
    await _follow_inventory(subscriber, "scheduling-sites", recorder)
    first = await publisher.publish(wrappers_pb2.StringValue(value="site-a"), event_id="evt-1")
    again = await publisher.publish(wrappers_pb2.StringValue(value="site-a"), event_id="evt-1")
    other = await publisher.publish(wrappers_pb2.StringValue(value="site-b"), event_id="evt-2")

    await _eventually(lambda: len(recorder.events) >= 2)
    await asyncio.sleep(1.0)  # room for a wrong second delivery to show up
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert [(e.id, e.payload.value) for e in recorder.events] == [
        ("evt-1", "site-a"),
        ("evt-2", "site-b"),
    ]
    received = recorder.events[0]
    assert received.type == "google.protobuf.StringValue"
    assert received.source == f"medcloud/{publisher.region}/inventory"
    assert received.subject == f"medcloud.{publisher.region}.inventory.StringValue"


async def test_cloudevents_attributes_travel_in_headers(buses, nats_server):
    publisher, _ = buses
    published = await publisher.publish(wrappers_pb2.StringValue(value="x"), event_id="evt-h")
    connection = await nats.connect(nats_server.url)
    try:
        stored = await connection.jetstream().get_msg(
            stream_name(publisher.region, "inventory"), published.stream_sequence
        )
    finally:
        await connection.close()
    headers = stored.headers or {}
    assert headers["ce-id"] == headers["Nats-Msg-Id"] == "evt-h"
    assert headers["ce-type"] == "google.protobuf.StringValue"
    assert headers["ce-source"] == f"medcloud/{publisher.region}/inventory"
    assert headers["ce-time"].endswith("+00:00")
    assert headers["traceparent"].startswith("00-")
    assert wrappers_pb2.StringValue.FromString(stored.data).value == "x"


async def test_a_consumer_that_crashes_before_ack_gets_the_event_again_after_restart(
    buses, nats_server
):
    publisher, subscriber = buses
    # The durable consumer is created by the crashing process, with a short ack wait.
    crasher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.crashing_consumer",
            nats_server.url,
            publisher.region,
            "inventory",
            "scheduling-crash",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    await asyncio.sleep(1.5)  # let it subscribe before publishing
    await publisher.publish(wrappers_pb2.StringValue(value="site-c"), event_id="evt-crash")
    output, _ = await asyncio.to_thread(crasher.communicate, timeout=30)
    assert crasher.returncode == 17 and "received evt-crash" in output

    recorder = Recorder()
    await _follow_inventory(
        subscriber, "scheduling-crash", recorder, RedeliveryPolicy(ack_wait_seconds=2)
    )
    await asyncio.wait_for(recorder.arrived.wait(), 15)
    assert [(e.id, e.delivery_attempt) for e in recorder.events] == [("evt-crash", 2)]


async def test_a_handler_that_always_fails_ends_in_the_dead_letter_subject(buses, nats_server):
    publisher, subscriber = buses
    attempts: list[int] = []

    async def always_fails(event: ReceivedEvent) -> None:
        attempts.append(event.delivery_attempt)
        raise RuntimeError("inventory unreachable")

    await _follow_inventory(
        subscriber,
        "scheduling-doomed",
        always_fails,
        RedeliveryPolicy(max_attempts=3, backoff_seconds=(0.1,)),
    )
    connection = await nats.connect(nats_server.url)
    dead = await connection.jetstream().subscribe(
        dead_letter_subject(subscriber.region, "scheduling", "scheduling-doomed"),
        stream=stream_name(subscriber.region, "scheduling"),
    )
    try:
        await publisher.publish(wrappers_pb2.StringValue(value="site-d"), event_id="evt-dead")
        letter = await dead.next_msg(timeout=15)
        await asyncio.sleep(1.0)  # no further attempt may follow the dead letter
    finally:
        await connection.close()
    assert attempts == [1, 2, 3]
    assert letter.headers["ce-id"] == "evt-dead"
    assert letter.headers["medcloud-deliveries"] == "3"
    assert "RuntimeError: inventory unreachable" in letter.headers["medcloud-dead-letter-reason"]
    assert wrappers_pb2.StringValue.FromString(letter.data).value == "site-d"


async def test_a_handler_that_fails_once_succeeds_on_redelivery(buses):
    publisher, subscriber = buses
    attempts: list[int] = []

    async def flaky(event: ReceivedEvent) -> None:
        attempts.append(event.delivery_attempt)
        if event.delivery_attempt == 1:
            raise ConnectionError("etcd briefly away")

    await _follow_inventory(
        subscriber, "scheduling-flaky", flaky, RedeliveryPolicy(backoff_seconds=(0.1,))
    )
    await publisher.publish(wrappers_pb2.StringValue(value="site-e"))
    await _eventually(lambda: attempts == [1, 2])
    await asyncio.sleep(1.0)
    assert attempts == [1, 2]


async def test_the_trace_id_survives_the_hop(buses):
    publisher, subscriber = buses
    seen: list[int] = []

    async def record_trace(event: ReceivedEvent) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    await _follow_inventory(subscriber, "scheduling-traced", record_trace)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("apply HospitalSite") as root:
        await publisher.publish(wrappers_pb2.StringValue(value="site-f"), event_id="evt-trace")
        trace_id = root.get_span_context().trace_id
    await _eventually(lambda: seen)
    assert seen == [trace_id]
    consumer_spans = [
        s
        for s in SPANS.get_finished_spans()
        if s.name.startswith("process ") and s.context.trace_id == trace_id
    ]
    assert consumer_spans and consumer_spans[0].parent is not None


async def test_a_subscriber_that_starts_before_its_source_still_gets_every_event(
    nats_server, region
):
    subscriber = await EventBus.connect(nats_server.url, region, "scheduling")
    recorder = Recorder()
    try:
        await subscriber.subscribe(
            source_service="monitoring",
            event_types=[wrappers_pb2.StringValue],
            durable="early",
            handler=recorder,
        )
        publisher = await EventBus.connect(nats_server.url, region, "monitoring")
        try:
            await publisher.publish(wrappers_pb2.StringValue(value="room-1 down"))
            await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
        finally:
            await publisher.close()
    finally:
        await subscriber.close()
    assert [event.payload.value for event in recorder.events] == ["room-1 down"]
