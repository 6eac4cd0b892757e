"""The monitoring API as a user meets it: precise refusals, series and alerts kept across a
restart, inspections, rule settings and the Prometheus endpoint."""

from __future__ import annotations

import math
import time
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from medcloud.devstack.stack import AGENT
from medcloud.monitoring.v1 import monitoring_pb2 as pb
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel


def _violations(error: grpc.RpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                request = error_details_pb2.BadRequest()
                if detail.Unpack(request):
                    return {v.field: v.description for v in request.field_violations}
    return {}


def _stream(address: str, node: str, centre: str, samples: list[pb.Sample]) -> int:
    """Sends one batch as the node's agent would (only agents and services may ingest)."""
    request = api.StreamSamplesRequest(node_id=node, centre_id=centre, samples=samples)
    with client_channel(address, (AGENT,)) as channel:
        agent = api_grpc.MonitoringServiceStub(channel)
        (response,) = list(agent.StreamSamples(iter([request]), timeout=10))
    return response.acknowledged_sequence


def _reading(metric: str, value: float, sequence: int, at: float | None = None, **labels: str):
    return pb.Sample(
        metric=metric,
        labels=labels,
        observed_at_unix_seconds=at or time.time(),
        value=value,
        sequence=sequence,
    )


def test_a_bad_batch_is_refused_whole_naming_each_field(monitoring, stub):
    with pytest.raises(grpc.RpcError) as refused:
        _stream(
            monitoring.address,
            "node-1",
            "room-1",
            [
                _reading("room.temperature_celsius", 22.0, 1),
                _reading("room.temperature_celsius", math.nan, 2),
                _reading("Temperature", 22.0, 2),
            ],
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(refused.value)
    assert set(violations) == {"samples[1].value", "samples[2].metric", "samples[2].sequence"}
    assert stub.ListSeries(api.ListSeriesRequest(node_id="node-1")).series == []

    with pytest.raises(grpc.RpcError) as refused:
        _stream(
            monitoring.address, "Node_1", "room-1", [_reading("room.temperature_celsius", 22.0, 1)]
        )
    assert "node_id" in _violations(refused.value)


def test_a_resent_batch_is_held_once(monitoring, stub):
    samples = [_reading("room.relative_humidity_percent", 55.0, n) for n in (1, 2, 3)]
    assert _stream(monitoring.address, "node-2", "room-1", samples) == 3
    assert _stream(monitoring.address, "node-2", "room-1", samples) == 3
    (key,) = stub.ListSeries(api.ListSeriesRequest(node_id="node-2")).series
    held = stub.QuerySeries(api.QuerySeriesRequest(series=key)).samples
    assert [s.sequence for s in held] == [1, 2, 3]


def test_alerts_and_windows_survive_a_restart(monitoring, stub):
    _stream(monitoring.address, "node-3", "room-2", [_reading("power.mains_frequency_hz", 50.5, 1)])
    (alert,) = stub.ListAlerts(api.ListAlertsRequest(centre_id="room-2")).alerts
    assert alert.requirement_id == "R-7.1-9"
    assert alert.state == pb.ALERT_STATE_FIRING

    monitoring.stop()
    monitoring.start()
    with client_channel(monitoring.address) as channel:
        after = api_grpc.MonitoringServiceStub(channel)
        (kept,) = after.ListAlerts(api.ListAlertsRequest(centre_id="room-2")).alerts
        assert kept.id == alert.id
        (key,) = after.ListSeries(api.ListSeriesRequest(node_id="node-3")).series
        assert [s.value for s in after.QuerySeries(api.QuerySeriesRequest(series=key)).samples] == [
            50.5
        ]
        # The next sample within limits resolves it; the resend of sequence 1 is skipped.
        assert (
            _stream(
                monitoring.address,
                "node-3",
                "room-2",
                [_reading("power.mains_frequency_hz", 50.0, 2)],
            )
            == 2
        )
        (resolved,) = after.ListAlerts(api.ListAlertsRequest(centre_id="room-2")).alerts
        assert resolved.state == pb.ALERT_STATE_RESOLVED


def test_inspection_reports_every_check_with_its_requirement(monitoring, stub):
    _stream(
        monitoring.address,
        "node-4",
        "room-3",
        [
            _reading("room.temperature_celsius", 21.5, 1),  # within summer and winter limits
            _reading("room.relative_humidity_percent", 70.0, 2),
        ],
    )
    report = stub.RunInspection(api.RunInspectionRequest(centre_id="room-3")).report
    assert not report.passed
    by_requirement: dict[str, list[api.InspectionCheck]] = {}
    for check in report.checks:
        by_requirement.setdefault(check.requirement_id, []).append(check)
    assert all(c.passed for c in by_requirement["R-7.1-1"])
    assert not any(c.passed for c in by_requirement["R-7.1-4"])
    assert not any(c.passed for c in by_requirement["R-7.1-9"]), "no mains reading is a failure"
    latest = stub.GetInspectionReport(api.GetInspectionReportRequest(centre_id="room-3")).report
    assert latest == report


def test_rule_settings_are_checked_and_kept(monitoring, stub):
    with pytest.raises(grpc.RpcError) as refused:
        stub.UpdateRuleSettings(
            api.UpdateRuleSettingsRequest(
                settings=pb.RuleSettings(summer_months=[6, 13], disabled_rule_ids=["no-such"])
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(_violations(refused.value)) == {
        "settings.summer_months[1]",
        "settings.disabled_rule_ids[0]",
    }
    rules = stub.ListRules(api.ListRulesRequest()).rules
    noise = next(rule for rule in rules if rule.requirement_id == "R-7.1-12")
    kept = stub.UpdateRuleSettings(
        api.UpdateRuleSettingsRequest(
            settings=pb.RuleSettings(summer_months=[6, 7, 8], disabled_rule_ids=[noise.id])
        )
    ).settings
    assert list(kept.summer_months) == [6, 7, 8]
    listed = {rule.id: rule.enabled for rule in stub.ListRules(api.ListRulesRequest()).rules}
    assert listed[noise.id] is False
    _stream(monitoring.address, "node-5", "room-4", [_reading("room.noise_db", 80.0, 1)])
    assert stub.ListAlerts(api.ListAlertsRequest(centre_id="room-4")).alerts == []


def test_prometheus_scrapes_the_newest_sample_of_every_series(monitoring, stub):
    at = time.time()
    _stream(
        monitoring.address,
        "node-6",
        "room-5",
        [_reading("room.illuminance_lux", 480.0, 1, at, area="machine-room")],
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{monitoring.metrics_port}/metrics") as reply:
        text = reply.read().decode()
    assert (
        'medcloud_room_illuminance_lux{centre="room-5",node="node-6",area="machine-room"} '
        f"480.0 {round(at * 1000)}"
    ) in text
    assert "medcloud_monitoring_samples_accepted_total 1" in text
