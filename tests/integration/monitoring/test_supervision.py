"""Site health with hysteresis and the escalation of unacknowledged alerts, through the service
(R-7.7b, R-7.7c). Timers are shortened by the fixture's settings (heartbeats every 0.3 s, a centre
down after 1.5 s of silence, critical levels at 0, 1 and 2 s, a work order at 2 s)."""

from __future__ import annotations

import asyncio
import time

import pytest

from medcloud.devstack.stack import AGENT
from medcloud.monitoring.v1 import monitoring_pb2 as pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from tests.support.identities import aio_client_channel

HEARTBEAT_SECONDS = 0.3
DOWN_AFTER_SECONDS = 1.5


async def _beat(stub, nodes: list[str], centre: str, beats: int, skip: set[int] = frozenset()):
    for beat in range(beats):
        if beat not in skip:
            for node in nodes:
                await stub.Heartbeat(api.HeartbeatRequest(node_id=node, centre_id=centre))
        await asyncio.sleep(HEARTBEAT_SECONDS)


@pytest.fixture
async def aio_stub(monitoring):
    """An on-call engineer's view (system administrator)."""
    async with aio_client_channel(monitoring.address) as channel:
        yield api_grpc.MonitoringServiceStub(channel)


@pytest.fixture
async def agent_stub(monitoring):
    """What node agents send: samples and heartbeats."""
    async with aio_client_channel(monitoring.address, (AGENT,)) as channel:
        yield api_grpc.MonitoringServiceStub(channel)


async def test_site_down_fires_when_every_node_of_a_centre_stops(aio_stub, agent_stub, events):
    await _beat(agent_stub, ["n1", "n2"], "room-a", beats=4)
    stopped = time.monotonic()
    (down,) = await events.wait_for("SiteDown", within_seconds=DOWN_AFTER_SECONDS + 5)
    arrived = next(at for at, kind, _ in events.received if kind == "SiteDown")
    assert down.centre_id == "room-a"
    assert down.reason == "heartbeats"
    assert sorted(down.nodes_missing) == ["n1", "n2"]
    # Not before the window: one or two lost heartbeats must not move a hospital.
    assert arrived - stopped >= DOWN_AFTER_SECONDS - HEARTBEAT_SECONDS
    sites = (await aio_stub.ListSiteHealth(api.ListSiteHealthRequest())).sites
    assert [s.state for s in sites if s.centre_id == "room-a"] == [pb.SITE_STATE_DOWN]

    await _beat(agent_stub, ["n1"], "room-a", beats=5)
    (up,) = await events.wait_for("SiteUp")
    assert up.centre_id == "room-a"


async def test_one_missed_heartbeat_or_one_silent_node_does_not_take_a_centre_down(
    aio_stub, agent_stub, events
):
    beating = asyncio.gather(
        _beat(agent_stub, ["n1"], "room-b", beats=12, skip={4}),
        _beat(agent_stub, ["n2"], "room-b", beats=2),  # n2 falls silent, n1 goes on
    )
    await beating
    await asyncio.sleep(0.5)
    assert events.of("SiteDown") == []


def _hot_samples(node: str, first_sequence: int, count: int, celsius: float):
    now = time.time()
    return api.StreamSamplesRequest(
        node_id=node,
        centre_id="room-c",
        samples=[
            pb.Sample(
                metric="room.temperature_celsius",
                observed_at_unix_seconds=now - (count - i) * 0.01,
                value=celsius,
                sequence=first_sequence + i,
            )
            for i in range(count)
        ],
    )


async def _send(stub, request) -> int:
    call = stub.StreamSamples()
    await call.write(request)
    response = await call.read()
    await call.done_writing()
    return response.acknowledged_sequence


async def test_unacknowledged_critical_alert_escalates_on_schedule_and_opens_a_work_order(
    aio_stub, agent_stub, events
):
    assert await _send(agent_stub, _hot_samples("n1", 1, 3, celsius=31.0)) == 3
    (raised,) = await events.wait_for("AlertRaised")
    assert raised.alert.requirement_id == "R-7.1-1"
    assert raised.alert.severity == pb.SEVERITY_CRITICAL

    escalations = await events.wait_for("AlertEscalated", count=3, within_seconds=10)
    assert [(e.level, e.notify) for e in escalations] == [
        (1, "on-duty engineer"),
        (2, "shift lead"),
        (3, "IT director"),
    ]
    (opened,) = await events.wait_for("WorkOrderOpened")
    assert opened.work_order.alert_id == raised.alert.id
    assert opened.work_order.requirement_id == "R-7.1-1"
    await asyncio.sleep(1.0)
    orders = (await aio_stub.ListWorkOrders(api.ListWorkOrdersRequest(open_only=True))).work_orders
    assert [o.alert_id for o in orders] == [raised.alert.id]


async def test_an_acknowledged_alert_stops_escalating_and_opens_no_work_order(
    aio_stub, agent_stub, events
):
    await _send(agent_stub, _hot_samples("n2", 1, 3, celsius=31.0))
    (raised,) = await events.wait_for("AlertRaised")
    acknowledged = await aio_stub.AcknowledgeAlert(
        api.AcknowledgeAlertRequest(alert_id=raised.alert.id, acknowledged_by="on-duty-2")
    )
    assert acknowledged.alert.state == pb.ALERT_STATE_ACKNOWLEDGED
    await asyncio.sleep(3.0)
    assert [e.level for e in events.of("AlertEscalated")] == [1]
    assert events.of("WorkOrderOpened") == []
    orders = (await aio_stub.ListWorkOrders(api.ListWorkOrdersRequest())).work_orders
    assert list(orders) == []
