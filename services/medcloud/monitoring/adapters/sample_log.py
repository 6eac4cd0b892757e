"""The centre's durable record of accepted samples: a JetStream stream of its own, bounded by age,
from which the service rebuilds its windows after a restart. A sample is acknowledged to its agent
only once this stream holds it, so no sample is lost between the agent's buffer and the centre."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import nats.errors
import nats.js.errors
from nats.js import api as js_api
from nats.js.client import JetStreamContext

from medcloud.core.errors import Unavailable
from medcloud.monitoring.adapters.codecs import sample_from_proto, sample_to_proto
from medcloud.monitoring.domain.samples import Sample, SeriesKeys
from medcloud.monitoring.v1 import monitoring_events_pb2 as events_pb

log = logging.getLogger(__name__)


def samples_stream_name(region: str) -> str:
    return f"MEDCLOUD_{region}_MONITORING_SAMPLES".upper().replace("-", "_")


def samples_subject(region: str, node_id: str) -> str:
    # A centre's own series (capacity) have no node: "_" is no DNS label, so no node's subject.
    return f"medcloud.{region}.monitoring-samples.{node_id or '_'}"


class JetStreamSampleLog:
    """Accepted samples, one message per agent batch, kept for `retention_seconds`."""

    def __init__(
        self,
        jetstream: JetStreamContext,
        region: str,
        *,
        retention_seconds: float,
        max_bytes: int,
    ) -> None:
        self._js = jetstream
        self._region = region
        self._retention_seconds = retention_seconds
        self._max_bytes = max_bytes

    async def ensure_stream(self) -> None:
        config = js_api.StreamConfig(
            name=samples_stream_name(self._region),
            subjects=[f"medcloud.{self._region}.monitoring-samples.>"],
            storage=js_api.StorageType.FILE,
            retention=js_api.RetentionPolicy.LIMITS,
            max_age=self._retention_seconds,
            max_bytes=self._max_bytes,
            duplicate_window=min(600.0, self._retention_seconds),
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self._js.update_stream(config)

    async def append(self, node_id: str, centre_id: str, samples: Sequence[Sample]) -> None:
        """Returns once the stream holds the batch. The message id covers the batch's sequences
        and first instant, so a batch resent after a lost acknowledgement is stored once."""
        message = events_pb.SamplesAccepted(
            node_id=node_id,
            centre_id=centre_id,
            samples=[sample_to_proto(sample) for sample in samples],
        )
        first, last = samples[0], samples[-1]
        msg_id = f"{node_id}@{centre_id}:{first.sequence}-{last.sequence}@{first.observed_at!r}"
        try:
            await self._js.publish(
                samples_subject(self._region, node_id),
                message.SerializeToString(),
                headers={"Nats-Msg-Id": msg_id},
            )
        except (nats.errors.Error, TimeoutError) as error:
            raise Unavailable(f"cannot record samples of node {node_id}: {error}") from error

    async def replay(self) -> AsyncIterator[tuple[str, list[Sample]]]:
        """Every batch the stream still holds, oldest first, as (node id, samples)."""
        stream = samples_stream_name(self._region)
        info = await self._js.stream_info(stream)
        last = info.state.last_seq
        if info.state.messages == 0:
            return
        subscription = await self._js.pull_subscribe(
            f"medcloud.{self._region}.monitoring-samples.>",
            stream=stream,
            config=js_api.ConsumerConfig(
                deliver_policy=js_api.DeliverPolicy.ALL,
                ack_policy=js_api.AckPolicy.NONE,
                inactive_threshold=60.0,
            ),
        )
        try:
            while True:
                try:
                    messages = await subscription.fetch(batch=256, timeout=2.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    return
                for message in messages:
                    batch = events_pb.SamplesAccepted.FromString(message.data)
                    key_of = SeriesKeys(batch.centre_id, batch.node_id)
                    yield (
                        batch.node_id,
                        [sample_from_proto(s, key_of(s.metric, s.labels)) for s in batch.samples],
                    )
                    if message.metadata.sequence.stream >= last:
                        return
                await asyncio.sleep(0)
        finally:
            await subscription.unsubscribe()
