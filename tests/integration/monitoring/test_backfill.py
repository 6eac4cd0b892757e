"""An agent cut off from the centre keeps alerting locally, and once the centre is back it holds
every sample of the outage, in order, none twice (R-7.7c)."""

from __future__ import annotations

import json
import time

from medcloud.monitoring.agent.buffer import SampleBuffer
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel


def _wait(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _held(address: str, node_id: str) -> list[tuple[object, list]]:
    with client_channel(address) as channel:
        stub = api_grpc.MonitoringServiceStub(channel)
        series = stub.ListSeries(api.ListSeriesRequest(node_id=node_id), timeout=5).series
        return [
            (key, list(stub.QuerySeries(api.QuerySeriesRequest(series=key), timeout=5).samples))
            for key in series
        ]


def _sequences(address: str, node_id: str) -> list[int]:
    return sorted(s.sequence for _, samples in _held(address, node_id) for s in samples)


def test_outage_is_alerted_locally_and_backfilled_in_order_without_duplicates(
    monitoring, start_agent
):
    # The machine room overheats 1.5 s into the agent's life, while the centre is away.
    agent = start_agent(
        "node-a",
        "room-1",
        monitoring.address,
        MEDCLOUD_AGENT_SOURCE="simulator:seed=3",
        MEDCLOUD_AGENT_FAULTS="room.temperature_celsius=29@+1.5s..+600s",
    )
    _wait(lambda: len(_sequences(monitoring.address, "node-a")) >= 20, what="first samples held")

    monitoring.stop()
    outage_began = time.time()
    _wait(lambda: agent.local_alerts, what="a local alert while cut off")
    raised = [json.loads(line) for line in agent.local_alerts]
    assert raised[0]["event"] == "raised"
    assert raised[0]["requirement_id"] == "R-7.1-1"
    time.sleep(1.0)  # more of the outage
    outage_ended = time.time()
    monitoring.start()

    def caught_up() -> bool:
        held = _held(monitoring.address, "node-a")
        return any(s.observed_at_unix_seconds > outage_ended + 1 for _, ss in held for s in ss)

    _wait(caught_up, what="the backlog sent and the agent live again")
    agent.process.stop()
    with SampleBuffer(agent.buffer_dir / "samples") as buffer:
        acknowledged = buffer.acknowledged_sequence

    held = _held(monitoring.address, "node-a")
    sequences = sorted(s.sequence for _, samples in held for s in samples)
    # The centre may hold a little more than the agent heard acknowledged before it stopped.
    assert sequences == list(range(1, len(sequences) + 1)), "every sample once, none missing"
    assert len(sequences) >= acknowledged
    during_outage = [
        s
        for _, samples in held
        for s in samples
        if outage_began + 0.5 < s.observed_at_unix_seconds < outage_ended
    ]
    assert len(during_outage) >= 10, "the outage's samples reached the centre"
    for key, samples in held:
        times = [s.observed_at_unix_seconds for s in samples]
        assert times == sorted(times) and len(set(times)) == len(times), key.metric
