"""The agent's life at one node (R-7.7c): every interval it collects, judges locally and writes to
its disk buffer; a sender streams the buffer to the centre in sequence order and forgets what the
centre acknowledges; a heartbeat says the node is alive. Cut off from the centre, the node keeps
alerting locally and its buffer grows until the link returns and the backlog drains in order."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2

from medcloud.monitoring.adapters.codecs import sample_to_proto
from medcloud.monitoring.agent.buffer import SampleBuffer
from medcloud.monitoring.agent.host_metrics import HostMetrics
from medcloud.monitoring.agent.sources import SensorReading, SensorSource
from medcloud.monitoring.domain.alerts import AlertBook, EscalationPolicy, FlappingPolicy
from medcloud.monitoring.domain.evaluation import RuleEngine
from medcloud.monitoring.domain.events import AlertRaised, AlertResolved
from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.rules import Rule
from medcloud.monitoring.domain.samples import Sample, SeriesKeys
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc

log = logging.getLogger(__name__)

BATCH_SAMPLES = 500
# Samples sent but not yet acknowledged; the sender waits beyond this.
IN_FLIGHT_SAMPLES = 5_000
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class LocalAlerts:
    """The node's own judgement, kept even when the centre cannot hear it: a log line at the
    alert's severity and a line in `local-alerts.jsonl` beside the buffer."""

    def __init__(self, rules: Sequence[Rule], path: Path) -> None:
        self._engine = RuleEngine(rules)
        self._book = AlertBook(EscalationPolicy(), FlappingPolicy())
        self._path = path
        self.raised = 0

    def judge(self, samples: Sequence[Sample]) -> None:
        events = []
        for sample in samples:
            for finding in self._engine.ingest(sample):
                events.extend(self._book.observe(finding, finding.observed_at))
        lines = []
        for event in events:
            if not isinstance(event, AlertRaised | AlertResolved):
                continue
            alert = event.alert
            raised = isinstance(event, AlertRaised)
            self.raised += raised
            level = logging.INFO
            if raised:
                level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
            log.log(
                level,
                "local alert raised" if raised else "local alert resolved",
                extra={
                    "alert_id": alert.id,
                    "requirement_id": alert.requirement_id,
                    "summary": alert.summary,
                },
            )
            lines.append(
                json.dumps(
                    {
                        "event": "raised" if raised else "resolved",
                        "alert_id": alert.id,
                        "rule_id": alert.rule_id,
                        "requirement_id": alert.requirement_id,
                        "severity": alert.severity.value,
                        "summary": alert.summary,
                        "metric": alert.series.metric,
                        "at": alert.last_seen_at,
                    }
                )
            )
        if lines:
            with self._path.open("a", encoding="utf-8") as file:
                file.write("\n".join(lines) + "\n")


class Agent:
    def __init__(
        self,
        *,
        node_id: str,
        centre_id: str,
        channel: grpc.aio.Channel,
        buffer: SampleBuffer,
        source: SensorSource,
        host_metrics: HostMetrics | None,
        local_alerts: LocalAlerts,
        interval_seconds: float,
        heartbeat_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.centre_id = centre_id
        self._stub = api_grpc.MonitoringServiceStub(channel)
        self._buffer = buffer
        self._source = source
        self._host_metrics = host_metrics
        self._local_alerts = local_alerts
        self._interval_seconds = interval_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._clock = clock
        self._new_samples = asyncio.Event()
        self._acknowledged = asyncio.Event()
        self._series_of = SeriesKeys(centre_id, node_id)
        self.centre_reachable = False

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._collect_forever(), name="collect"),
            asyncio.create_task(self._send_forever(), name="send"),
            asyncio.create_task(self._heartbeat_forever(), name="heartbeat"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # Collecting

    def _sample(self, reading: SensorReading, now: float) -> Sample:
        series = self._series_of(reading.metric, reading.labels)
        observed_at = reading.observed_at if reading.observed_at is not None else now
        return Sample(series, observed_at, reading.value)

    async def collect_once(self) -> list[Sample]:
        now = self._clock()
        readings = list(await self._source.read())
        if self._host_metrics is not None:
            readings.extend(self._host_metrics.collect(now))
        if not readings:
            return []
        samples = self._buffer.append([self._sample(reading, now) for reading in readings])
        self._local_alerts.judge(samples)
        self._new_samples.set()
        return samples

    async def _collect_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.collect_once()
            except Exception:
                log.exception("collection failed; trying again next interval")
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self._interval_seconds - elapsed))

    # Sending

    async def _send_forever(self) -> None:
        attempt = 0
        while True:
            try:
                await self._stream_until_broken()
            except grpc.aio.AioRpcError as error:
                if self.centre_reachable or attempt == 0:
                    log.warning(
                        "centre unreachable; buffering on disk",
                        extra={"code": error.code().name, "pending": self._buffer.pending_count},
                    )
                self.centre_reachable = False
            attempt += 1
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS)) - 1])

    async def _stream_until_broken(self) -> None:
        call = self._stub.StreamSamples()
        reader = asyncio.create_task(self._read_acknowledgements(call))
        try:
            sent_up_to = self._buffer.acknowledged_sequence
            while not reader.done():
                if sent_up_to - self._buffer.acknowledged_sequence >= IN_FLIGHT_SAMPLES:
                    await self._wait(self._acknowledged, reader)
                    continue
                batch = self._buffer.pending_after(sent_up_to, BATCH_SAMPLES)
                if not batch:
                    await self._wait(self._new_samples, reader)
                    continue
                try:
                    await call.write(
                        api.StreamSamplesRequest(
                            node_id=self.node_id,
                            centre_id=self.centre_id,
                            samples=[sample_to_proto(sample) for sample in batch],
                            dropped_samples=self._buffer.dropped_samples,
                        )
                    )
                except asyncio.InvalidStateError:
                    # The call ended between the check above and this write (the centre went
                    # away): the reader holds the reason, raised below.
                    break
                sent_up_to = batch[-1].sequence
            await reader  # raises the stream's error
        finally:
            reader.cancel()
            call.cancel()

    async def _read_acknowledgements(self, call) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.aio.Metadata(),
                    grpc.aio.Metadata(),
                    details="the centre closed the stream",
                )
            if not self.centre_reachable:
                log.info("centre reachable; sending the buffer")
                self.centre_reachable = True
            acknowledged = response.acknowledged_sequence
            if acknowledged > self._buffer.last_sequence:
                dropped = self._buffer.continue_after(acknowledged)
                log.error(
                    "the centre holds sequences this buffer never numbered (a wiped disk?); "
                    "numbering continues above them",
                    extra={"centre_sequence": acknowledged, "dropped_samples": dropped},
                )
                self._acknowledged.set()
            elif acknowledged > self._buffer.acknowledged_sequence:
                self._buffer.acknowledge(acknowledged)
                self._acknowledged.set()

    @staticmethod
    async def _wait(event: asyncio.Event, reader: asyncio.Task[None]) -> None:
        """Waits for `event` or for the stream to break, whichever comes first."""
        waiter = asyncio.create_task(event.wait())
        try:
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        event.clear()

    # Heartbeats

    async def _heartbeat_forever(self) -> None:
        while True:
            sent_at = timestamp_pb2.Timestamp()
            sent_at.FromSeconds(int(self._clock()))
            try:
                await self._stub.Heartbeat(
                    api.HeartbeatRequest(
                        node_id=self.node_id,
                        centre_id=self.centre_id,
                        sent_at=sent_at,
                        pending_samples=self._buffer.pending_count,
                    ),
                    timeout=self._heartbeat_seconds,
                )
            except grpc.aio.AioRpcError as error:
                log.debug("heartbeat not delivered", extra={"code": error.code().name})
            await asyncio.sleep(self._heartbeat_seconds)
