"""The monitoring service as a real process, agents as real processes, and a listener for the
events monitoring publishes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.stack import AGENT
from medcloud.monitoring.v1 import monitoring_events_pb2 as events_pb
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel, identity
from tests.support.processes import ROOT, start_service

# Fast timers so a test sees in seconds what takes minutes in a machine room.
FAST = {
    # JetStream reserves a stream's byte limit, and every test's region has its own stream.
    "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES": str(16 * 1024**2),
    "MEDCLOUD_MONITORING_SUPERVISE_SECONDS": "0.1",
    "MEDCLOUD_MONITORING_HEARTBEAT_INTERVAL_SECONDS": "0.3",
    "MEDCLOUD_MONITORING_SITE_DOWN_AFTER_SECONDS": "1.5",
    "MEDCLOUD_MONITORING_SITE_UP_AFTER_HEARTBEATS": "3",
    "MEDCLOUD_MONITORING_CRITICAL_ESCALATION_SECONDS": "0,1,2",
    "MEDCLOUD_MONITORING_CRITICAL_WORK_ORDER_SECONDS": "2",
}


class MonitoringProcess:
    """The service on a fixed address, so it can be stopped and started again where agents
    expect it."""

    def __init__(self, etcd, nats_server, region: str, work: Path, env: dict[str, str]) -> None:
        self._args = (etcd.endpoint, nats_server.url, region)
        self.address = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        self._work = work
        self._env = {
            **FAST,
            "MEDCLOUD_MONITORING_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            **env,
        }
        self.process: ManagedProcess | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process, _ = start_service(
            "medcloud.monitoring",
            *self._args,
            self._work / f"monitoring-{self.starts}.log",
            address=self.address,
            extra_env=self._env,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture
def monitoring_factory(
    etcd_server, nats_server, region, tmp_path
) -> Iterator[Callable[..., MonitoringProcess]]:
    started: list[MonitoringProcess] = []

    def start(**env: str) -> MonitoringProcess:
        service = MonitoringProcess(etcd_server, nats_server, region, tmp_path, env)
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def monitoring(monitoring_factory) -> MonitoringProcess:
    return monitoring_factory()


@pytest.fixture
def stub(monitoring) -> Iterator[api_grpc.MonitoringServiceStub]:
    with client_channel(monitoring.address) as channel:
        yield api_grpc.MonitoringServiceStub(channel)


class AgentProcess:
    def __init__(self, node_id: str, centre_id: str, buffer_dir: Path, process: ManagedProcess):
        self.node_id = node_id
        self.centre_id = centre_id
        self.buffer_dir = buffer_dir
        self.process = process

    @property
    def local_alerts(self) -> list[str]:
        path = self.buffer_dir / "local-alerts.jsonl"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def start_agent(region, tmp_path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(node_id: str, centre_id: str, monitoring_address: str, **env: str) -> AgentProcess:
        buffer_dir = tmp_path / f"agent-{node_id}"
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MEDCLOUD_REGION": region,
            "MEDCLOUD_AGENT_NODE_ID": node_id,
            "MEDCLOUD_AGENT_CENTRE_ID": centre_id,
            "MEDCLOUD_MONITORING_ADDRESS": monitoring_address,
            "MEDCLOUD_AGENT_BUFFER_DIR": str(buffer_dir),
            "MEDCLOUD_AGENT_INTERVAL_SECONDS": "0.1",
            "MEDCLOUD_AGENT_HEARTBEAT_SECONDS": "0.3",
            "MEDCLOUD_AGENT_HOST_METRICS": "false",
            **identity(f"agent-{node_id}", (AGENT,)).environment(),
            **env,
        }
        process = ManagedProcess(
            f"agent-{node_id}",
            [sys.executable, "-m", "medcloud.monitoring.agent"],
            tmp_path / f"agent-{node_id}.log",
            environment,
        )
        process.start()
        agent = AgentProcess(node_id, centre_id, buffer_dir, process)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.process.stop()


EVENT_TYPES = {
    f"medcloud.monitoring.v1.{name}": getattr(events_pb, name)
    for name in (
        "AlertRaised",
        "AlertResolved",
        "AlertAcknowledged",
        "AlertEscalated",
        "WorkOrderOpened",
        "SiteDown",
        "SiteUp",
        "LinkDown",
        "LinkUp",
        "InspectionCompleted",
    )
}


class EventListener:
    """Every event monitoring publishes, decoded, with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, object]] = []

    def of(self, name: str) -> list[object]:
        return [payload for _, kind, payload in self.received if kind == name]

    async def wait_for(
        self, name: str, count: int = 1, within_seconds: float = 20.0
    ) -> list[object]:
        deadline = time.monotonic() + within_seconds
        while len(self.of(name)) < count:
            if time.monotonic() > deadline:
                seen = sorted({kind for _, kind, _ in self.received})
                raise AssertionError(
                    f"{count} {name} not received within {within_seconds} s; saw {seen}"
                )
            await asyncio.sleep(0.05)
        return self.of(name)


@pytest.fixture
async def events(nats_server, region):
    connection = await nats.connect(nats_server.url)
    listener = EventListener()

    async def received(message) -> None:
        kind = message.headers["ce-type"]
        listener.received.append(
            (time.monotonic(), kind.rpartition(".")[2], EVENT_TYPES[kind].FromString(message.data))
        )

    await connection.subscribe(f"medcloud.{region}.monitoring.>", cb=received)
    yield listener
    await connection.close()
