"""Monitoring figures through the real service process (etcd, NATS, `python -m medcloud.monitoring`),
with 100 agents played by this process over gRPC streams:

- samples per second ingested and evaluated: each agent streams batches of its 30 series as fast
  as the centre acknowledges them (every sample is made durable in the sample log, then judged by
  the full rule pack);
- end-to-end time from a threshold crossing at an agent (the sample's creation) to AlertRaised
  arriving on NATS, p50 and p99, while the 100 agents report every second. A real agent adds up to
  one collection interval before the crossing is sampled.

Prints figures; asserts nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from pathlib import Path

import nats

from medcloud.devstack.stack import AGENT, LocalStack, open_aio_channel
from medcloud.monitoring.v1 import monitoring_events_pb2 as events_pb
from medcloud.monitoring.v1 import monitoring_pb2 as pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc

AGENTS = 100
CENTRES = 10
SERIES_PER_AGENT = 30
THROUGHPUT_SECONDS = 20.0
CROSSINGS = 200
# The environment series an agent reports, each within the limits.
READINGS = (
    ("room.temperature_celsius", {}, 21.0),
    ("room.relative_humidity_percent", {}, 55.0),
    ("power.mains_frequency_hz", {}, 50.0),
    ("power.mains_voltage_volts", {"supply": "three-phase"}, 380.0),
    ("power.mains_voltage_volts", {"supply": "single-phase"}, 220.0),
    ("room.noise_db", {}, 55.0),
)


def _series(agent: int) -> list[tuple[str, dict[str, str], float]]:
    """30 series: the environment set, then host metrics of a few mounts."""
    series = list(READINGS)
    mount = 0
    while len(series) < SERIES_PER_AGENT:
        series.append(("host.disk_utilisation_percent", {"mount": f"/data{mount}"}, 40.0))
        mount += 1
    return series


class PlayedAgent:
    def __init__(self, stub: api_grpc.MonitoringServiceStub, number: int, phase: str) -> None:
        # A node of its own per phase: the centre keeps each node's sequence mark.
        self.node_id = f"{phase}-node-{number:03d}"
        self.centre_id = f"room-{number % CENTRES:02d}"
        self._stub = stub
        self._series = _series(number)
        self._sequence = 0
        self._rng = random.Random(number)
        self.acknowledged = 0

    def batch(self, rounds: int, now: float) -> api.StreamSamplesRequest:
        samples = []
        for round_number in range(rounds):
            at = now - (rounds - round_number) * 0.001
            for metric, labels, value in self._series:
                self._sequence += 1
                samples.append(
                    pb.Sample(
                        metric=metric,
                        labels=labels,
                        observed_at_unix_seconds=at,
                        value=value + self._rng.uniform(-0.05, 0.05),
                        sequence=self._sequence,
                    )
                )
        return api.StreamSamplesRequest(
            node_id=self.node_id, centre_id=self.centre_id, samples=samples
        )

    def crossing(self, label: str) -> tuple[api.StreamSamplesRequest, float]:
        """One temperature sample far above every season's limit, on a series of its own."""
        self._sequence += 1
        created = time.time()
        request = api.StreamSamplesRequest(
            node_id=self.node_id,
            centre_id=self.centre_id,
            samples=[
                pb.Sample(
                    metric="room.temperature_celsius",
                    labels={"sensor": label},
                    observed_at_unix_seconds=created,
                    value=35.0,
                    sequence=self._sequence,
                )
            ],
        )
        return request, created

    async def stream(self, batches: asyncio.Queue) -> None:
        call = self._stub.StreamSamples()
        while True:
            request = await batches.get()
            if request is None:
                await call.done_writing()
                return
            await call.write(request)
            response = await call.read()
            self.acknowledged = response.acknowledged_sequence


async def throughput(stub: api_grpc.MonitoringServiceStub) -> None:
    agents = [PlayedAgent(stub, n, "ingest") for n in range(AGENTS)]
    queues = [asyncio.Queue(maxsize=1) for _ in agents]
    streams = [asyncio.create_task(a.stream(q)) for a, q in zip(agents, queues, strict=True)]
    stop_at = time.monotonic() + THROUGHPUT_SECONDS
    sent = 0

    async def feed(agent: PlayedAgent, queue: asyncio.Queue) -> None:
        nonlocal sent
        while time.monotonic() < stop_at:
            request = agent.batch(rounds=5, now=time.time())
            await queue.put(request)
            sent += len(request.samples)
        await queue.put(None)

    started = time.monotonic()
    await asyncio.gather(*(feed(a, q) for a, q in zip(agents, queues, strict=True)))
    await asyncio.gather(*streams)
    seconds = time.monotonic() - started
    held = sum(agent.acknowledged for agent in agents)
    print(
        f"  {AGENTS} agents x {SERIES_PER_AGENT} series, batches of {5 * SERIES_PER_AGENT}: "
        f"{held} samples held and judged in {seconds:.1f} s = {held / seconds:,.0f} samples/s"
    )


async def crossing_latency(stub: api_grpc.MonitoringServiceStub, nats_url: str, region: str):
    connection = await nats.connect(nats_url)
    arrived: dict[str, float] = {}
    all_arrived = asyncio.Event()

    async def on_raised(message) -> None:
        raised = events_pb.AlertRaised.FromString(message.data)
        arrived[raised.alert.series.labels["sensor"]] = time.time()
        if len(arrived) == CROSSINGS:
            all_arrived.set()

    await connection.subscribe(f"medcloud.{region}.monitoring.AlertRaised", cb=on_raised)
    agents = [PlayedAgent(stub, n, "alerting") for n in range(AGENTS)]
    queues = [asyncio.Queue(maxsize=2) for _ in agents]
    streams = [asyncio.create_task(a.stream(q)) for a, q in zip(agents, queues, strict=True)]
    running = True

    async def report_every_second(agent: PlayedAgent, queue: asyncio.Queue) -> None:
        await asyncio.sleep(random.random())
        while running:
            await queue.put(agent.batch(rounds=1, now=time.time()))
            await asyncio.sleep(1.0)

    background = [
        asyncio.create_task(report_every_second(a, q)) for a, q in zip(agents, queues, strict=True)
    ]
    await asyncio.sleep(2.0)
    created: dict[str, float] = {}
    for k in range(CROSSINGS):
        agent_number = k % AGENTS
        request, at = agents[agent_number].crossing(f"s{k}")
        created[f"s{k}"] = at
        await queues[agent_number].put(request)
        await asyncio.sleep(0.05)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_arrived.wait(), timeout=30)
    running = False
    for task in background:
        task.cancel()
    for queue in queues:
        while not queue.empty():
            queue.get_nowait()
        await queue.put(None)
    await asyncio.gather(*streams, return_exceptions=True)
    await connection.close()
    latencies = sorted((arrived[k] - created[k]) * 1000 for k in arrived)
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"  threshold crossing -> AlertRaised on NATS, {len(latencies)}/{CROSSINGS} crossings "
        f"while {AGENTS} agents report every second: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        stack = LocalStack(Path(work), region="bench", services=("monitoring",), clusters=())
        stack.start()
        try:
            address = stack.services[0].address
            agents = stack.pki.issue("bench-agents", (AGENT,))
            async with open_aio_channel(address, agents) as channel:
                stub = api_grpc.MonitoringServiceStub(channel)
                print("ingest:")
                await throughput(stub)
                print("alerting:")
                await crossing_latency(stub, stack.nats.url, "bench")
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
