"""The event bus over NATS JetStream: one stream per service, durable consumers, CloudEvents headers,
de-duplication by event id, trace context across the hop, bounded redelivery and a dead-letter subject."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.client import JetStreamContext
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from medcloud.core.errors import Unavailable
from medcloud.runtime.tracing import incoming_span, outgoing_span

log = logging.getLogger(__name__)


class _EventCounts:
    """Event counters kept as plain integers and read by the metrics SDK when it collects:
    a per-event counter call would cost more than the rest of the bus's own work."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        meter = metrics.get_meter("medcloud.runtime.bus")
        for outcome, description in (
            ("published", "Events published"),
            ("handled", "Events handled and acked"),
            ("failed", "Handler failures (each attempt)"),
            ("dead_lettered", "Events moved to a dead-letter subject"),
        ):
            meter.create_observable_counter(
                f"medcloud.events.{outcome}",
                callbacks=[self._observer(outcome)],
                description=description,
            )

    def _observer(self, outcome: str):
        def observe(options: CallbackOptions) -> list[Observation]:
            return [
                Observation(count, {"event.type": event_type})
                for (kind, event_type), count in list(self.counts.items())
                if kind == outcome
            ]

        return observe

    def add(self, outcome: str, event_type: str) -> None:
        key = (outcome, event_type)
        self.counts[key] = self.counts.get(key, 0) + 1


_counts = _EventCounts()
CONTENT_TYPE = "application/protobuf"
DEAD_LETTER_TOKEN = "dead_letter"


def stream_name(region: str, service: str) -> str:
    """JetStream stream that holds every event a service publishes (one per service)."""
    return f"MEDCLOUD_{region}_{service}".upper().replace("-", "_")


def event_subject(region: str, service: str, event_name: str) -> str:
    return f"medcloud.{region}.{service}.{event_name}"


def dead_letter_subject(region: str, subscriber: str, durable: str) -> str:
    """Dead letters live in the failing subscriber's own stream, under its durable's name."""
    return f"medcloud.{region}.{subscriber}.{DEAD_LETTER_TOKEN}.{durable}"


@dataclass(frozen=True)
class ReceivedEvent:
    """An event as a handler sees it: CloudEvents attributes plus the decoded protobuf payload."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str
    payload: Message
    delivery_attempt: int


@dataclass(frozen=True)
class PublishedEvent:
    id: str
    subject: str
    stream_sequence: int
    duplicate: bool


EventHandler = Callable[[ReceivedEvent], Awaitable[None]]


@dataclass(frozen=True)
class RedeliveryPolicy:
    """How often a failing event is retried before it is dead-lettered, and how long between tries."""

    max_attempts: int = 5
    backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
    # How long the server waits for an ack before redelivering to another consumer (a crash).
    ack_wait_seconds: float = 30.0

    def delay_after(self, attempt: int) -> float:
        return self.backoff_seconds[min(attempt - 1, len(self.backoff_seconds) - 1)]


class EventBus:
    """Publishes one service's events to its stream and consumes other services' streams."""

    def __init__(
        self,
        nats_client: NatsClient,
        region: str,
        service: str,
        duplicate_window_seconds: float = 600.0,
    ) -> None:
        self._nc = nats_client
        self._js = nats_client.jetstream()
        self.region = region
        self.service = service
        self._duplicate_window = duplicate_window_seconds
        self._subscriptions: list[Subscription] = []
        self.source = f"medcloud/{region}/{service}"

    @property
    def jetstream(self) -> JetStreamContext:
        """The JetStream context, for a service that keeps a stream of its own beside its events
        (monitoring's samples)."""
        return self._js

    @classmethod
    async def connect(
        cls,
        url: str,
        region: str,
        service: str,
        *,
        user: str = "",
        password: str = "",
        tls: ssl.SSLContext | None = None,
        connect_timeout_seconds: float = 5.0,
    ) -> EventBus:
        """Connects to NATS (as `user`, when given) and makes sure the service's own stream
        exists. With `tls`, a server that requires TLS (or a `tls://` URL) is reached with it:
        the server is verified against its CA and the client presents its certificate."""
        try:
            nc = await nats.connect(
                url,
                name=f"medcloud-{service}",
                user=user or None,
                password=password or None,
                tls=tls,
                connect_timeout=connect_timeout_seconds,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
            )
        except (OSError, nats.errors.Error) as error:
            raise Unavailable(f"cannot connect to NATS at {url}: {error}") from error
        bus = cls(nc, region, service)
        await bus.ensure_stream()
        return bus

    async def ensure_stream(self, service: str | None = None) -> None:
        """Declares the stream of `service` (default: this one). Every service declares its own
        stream the same way, so a subscriber that starts first may declare its source's stream
        too: whoever comes second finds it as it would have made it."""
        service = service or self.service
        config = js_api.StreamConfig(
            name=stream_name(self.region, service),
            subjects=[f"medcloud.{self.region}.{service}.>"],
            storage=js_api.StorageType.FILE,
            retention=js_api.RetentionPolicy.LIMITS,
            duplicate_window=self._duplicate_window,
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self._js.update_stream(config)

    async def publish(
        self, payload: Message, *, event_id: str | None = None, time: datetime | None = None
    ) -> PublishedEvent:
        """Publishes `payload` as an event of this service and waits for the stream's ack.
        Publishing the same `event_id` again within the duplicate window stores nothing new."""
        return await self.publish_encoded(
            payload.DESCRIPTOR.full_name, payload.SerializeToString(), event_id=event_id, time=time
        )

    async def publish_encoded(
        self,
        event_type: str,
        data: bytes,
        *,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> PublishedEvent:
        """Publishes an already encoded payload of the protobuf message named `event_type`."""
        event_id = event_id or str(uuid.uuid4())
        subject = event_subject(self.region, self.service, event_type.rpartition(".")[2])
        headers = {
            "Nats-Msg-Id": event_id,
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-type": event_type,
            "ce-source": self.source,
            "ce-time": (time or datetime.now(UTC)).isoformat(),
            "content-type": CONTENT_TYPE,
        }
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "messaging.message.id": event_id,
        }
        with outgoing_span(f"publish {subject}", headers, SpanKind.PRODUCER, attributes):
            try:
                ack = await self._js.publish(subject, data, headers=headers)
            except (nats.errors.Error, TimeoutError) as error:
                raise Unavailable(f"cannot publish {event_type} to {subject}: {error}") from error
        _counts.add("published", event_type)
        return PublishedEvent(event_id, subject, ack.seq, bool(ack.duplicate))

    async def subscribe(
        self,
        *,
        source_service: str,
        event_types: Sequence[type[Message]],
        durable: str,
        handler: EventHandler,
        policy: RedeliveryPolicy | None = None,
        batch_size: int = 64,
    ) -> Subscription:
        """Starts a durable pull consumer on `source_service`'s stream for the given event types.
        The handler's event is acked only after it returns; a raising handler gets the event again
        after a backoff, and after `policy.max_attempts` it goes to the dead-letter subject."""
        policy = policy or RedeliveryPolicy()
        types_by_name = {t.DESCRIPTOR.full_name: t for t in event_types}
        filters = [
            event_subject(self.region, source_service, t.DESCRIPTOR.name) for t in event_types
        ]
        config = js_api.ConsumerConfig(
            durable_name=durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=policy.ack_wait_seconds,
            # Unbounded on the server: the bus dead-letters after max_attempts itself, so an
            # event is never dropped silently even if the process dies during its last attempt.
            max_deliver=-1,
            filter_subjects=filters,
            deliver_policy=js_api.DeliverPolicy.ALL,
        )
        stream = stream_name(self.region, source_service)
        try:
            pull = await self._js.pull_subscribe(
                filters[0], durable=durable, stream=stream, config=config
            )
        except nats.js.errors.NotFoundError:
            # The source service has not started yet: its events will land in this stream.
            await self.ensure_stream(source_service)
            pull = await self._js.pull_subscribe(
                filters[0], durable=durable, stream=stream, config=config
            )
        subscription = Subscription(self, pull, durable, types_by_name, handler, policy, batch_size)
        subscription.start()
        self._subscriptions.append(subscription)
        return subscription

    async def dead_letter(self, msg: Msg, durable: str, reason: str) -> None:
        headers = dict(msg.headers or {})
        headers.pop("Nats-Msg-Id", None)
        headers["medcloud-dead-letter-reason"] = reason[:512]
        headers["medcloud-original-subject"] = msg.subject
        headers["medcloud-deliveries"] = str(msg.metadata.num_delivered)
        subject = dead_letter_subject(self.region, self.service, durable)
        await self._js.publish(subject, msg.data, headers=headers)
        _counts.add("dead_lettered", headers.get("ce-type", "unknown"))

    async def close(self) -> None:
        """Stops every subscription (letting the event in hand finish) and drains the connection."""
        for subscription in self._subscriptions:
            await subscription.stop()
        with contextlib.suppress(nats.errors.Error):
            await self._nc.drain()


class Subscription:
    """One durable consumer's fetch-handle-ack loop."""

    def __init__(
        self,
        bus: EventBus,
        pull: nats.js.JetStreamContext.PullSubscription,
        durable: str,
        types_by_name: dict[str, type[Message]],
        handler: EventHandler,
        policy: RedeliveryPolicy,
        batch_size: int,
    ) -> None:
        self._bus = bus
        self._pull = pull
        self.durable = durable
        self._types = types_by_name
        self._handler = handler
        self._policy = policy
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fetching = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.durable}")

    async def stop(self) -> None:
        """Stops after the event in hand: a handler is never cut off between its work and its ack."""
        self._stopping = True
        if self._task:
            if self._fetching:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(nats.errors.Error):
            await self._pull.unsubscribe()

    async def _run(self) -> None:
        while not self._stopping:
            self._fetching = True
            try:
                messages = await self._pull.fetch(self._batch_size, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as error:
                log.warning(
                    "fetch failed, retrying", extra={"consumer": self.durable, "error": str(error)}
                )
                await asyncio.sleep(1.0)
                continue
            finally:
                self._fetching = False
            for msg in messages:
                if self._stopping:
                    return  # unacked: the server redelivers it to the next consumer
                try:
                    await self._process(msg)
                except (nats.errors.Error, Unavailable) as error:
                    # The ack, nak or dead letter did not reach NATS: the server redelivers the
                    # event after ack_wait, and this consumer keeps going.
                    log.warning(
                        "could not settle an event with NATS; it will be redelivered",
                        extra={"consumer": self.durable, "error": str(error)},
                    )

    async def _process(self, msg: Msg) -> None:
        headers = msg.headers or {}
        attempt = msg.metadata.num_delivered
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.message.id": headers.get("ce-id", ""),
            "messaging.consumer.group.name": self.durable,
        }
        with incoming_span(
            f"process {msg.subject}", headers, SpanKind.CONSUMER, attributes
        ) as span:
            if attempt > self._policy.max_attempts:
                # The previous attempt died before it could ack or dead-letter.
                await self._give_up(msg, f"gave up after {attempt - 1} attempts")
                return
            try:
                event = self._decode(msg, attempt)
            except (KeyError, DecodeError, ValueError) as error:
                await self._give_up(msg, f"undecodable event: {error}")
                return
            try:
                await self._handler(event)
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                _counts.add("failed", event.type)
                if attempt >= self._policy.max_attempts:
                    await self._give_up(msg, f"{type(error).__name__}: {error}")
                else:
                    log.warning(
                        "event handler failed; will retry",
                        extra={
                            "consumer": self.durable,
                            "event_id": event.id,
                            "attempt": attempt,
                            "error_type": type(error).__name__,
                        },
                    )
                    await msg.nak(delay=self._policy.delay_after(attempt))
                return
            await msg.ack()
            _counts.add("handled", event.type)

    def _decode(self, msg: Msg, attempt: int) -> ReceivedEvent:
        headers = msg.headers or {}
        event_type = headers["ce-type"]
        payload = self._types[event_type].FromString(msg.data)
        return ReceivedEvent(
            id=headers["ce-id"],
            type=event_type,
            source=headers["ce-source"],
            time=datetime.fromisoformat(headers["ce-time"]),
            subject=msg.subject,
            payload=payload,
            delivery_attempt=attempt,
        )

    async def _give_up(self, msg: Msg, reason: str) -> None:
        log.error(
            "event dead-lettered",
            extra={
                "consumer": self.durable,
                "event_id": (msg.headers or {}).get("ce-id"),
                "reason": reason,
            },
        )
        await self._bus.dead_letter(msg, self.durable, reason)
        await msg.term()
