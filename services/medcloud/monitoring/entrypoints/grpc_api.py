"""The gRPC API `medcloud.monitoring.v1.MonitoringService`: translation only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from medcloud.core import access
from medcloud.core.errors import InvalidArgument
from medcloud.monitoring.adapters.codecs import (
    alert_state_from_proto,
    alert_to_proto,
    inspection_to_proto,
    rule_to_proto,
    sample_from_proto,
    sample_to_proto,
    series_from_proto,
    series_to_proto,
    settings_from_proto,
    settings_to_proto,
    site_to_proto,
    work_order_to_proto,
)
from medcloud.monitoring.app.monitoring import Monitoring
from medcloud.monitoring.domain.intake import check_sender
from medcloud.monitoring.domain.samples import SeriesKeys
from medcloud.monitoring.v1 import monitoring_service_pb2 as api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as api_grpc
from medcloud.runtime.grpc_server import ServiceBinding

SERVICE_NAME = api.DESCRIPTOR.services_by_name["MonitoringService"].full_name


class MonitoringApi(api_grpc.MonitoringServiceServicer):
    def __init__(self, monitoring: Monitoring) -> None:
        self._monitoring = monitoring

    async def StreamSamples(
        self, requests: AsyncIterator[api.StreamSamplesRequest], context: Any
    ) -> AsyncIterator[api.StreamSamplesResponse]:
        sender: tuple[str, str] | None = None
        series_of: SeriesKeys | None = None
        async for request in requests:
            if sender is None:
                check_sender(request.node_id, request.centre_id)
                sender = (request.node_id, request.centre_id)
                series_of = SeriesKeys(request.centre_id, request.node_id)
            elif (request.node_id, request.centre_id) != sender:
                raise InvalidArgument.single(
                    "node_id", f"a stream carries one node's samples; it began as {sender[0]}"
                )
            assert series_of is not None
            samples = [sample_from_proto(s, series_of(s.metric, s.labels)) for s in request.samples]
            acknowledged = await self._monitoring.accept(sender[0], sender[1], samples)
            yield api.StreamSamplesResponse(acknowledged_sequence=acknowledged)

    async def Heartbeat(self, request: api.HeartbeatRequest, context: Any) -> api.HeartbeatResponse:
        self._monitoring.heartbeat(request.node_id, request.centre_id)
        return api.HeartbeatResponse()

    async def ReportLinkStatus(
        self, request: api.ReportLinkStatusRequest, context: Any
    ) -> api.ReportLinkStatusResponse:
        self._monitoring.report_link(
            request.link_id, (request.centre_a_id, request.centre_b_id), request.up
        )
        return api.ReportLinkStatusResponse()

    async def ListSeries(
        self, request: api.ListSeriesRequest, context: Any
    ) -> api.ListSeriesResponse:
        series = self._monitoring.series(request.centre_id, request.node_id)
        return api.ListSeriesResponse(series=[series_to_proto(key) for key in series])

    async def QuerySeries(
        self, request: api.QuerySeriesRequest, context: Any
    ) -> api.QuerySeriesResponse:
        end = (
            request.end_time.ToNanoseconds() / 1e9 if request.HasField("end_time") else float("inf")
        )
        samples = self._monitoring.query(
            series_from_proto(request.series), request.start_time.ToNanoseconds() / 1e9, end
        )
        return api.QuerySeriesResponse(samples=[sample_to_proto(s) for s in samples])

    async def ListAlerts(
        self, request: api.ListAlertsRequest, context: Any
    ) -> api.ListAlertsResponse:
        alerts = self._monitoring.alerts(
            [alert_state_from_proto(state) for state in request.states], request.centre_id
        )
        return api.ListAlertsResponse(alerts=[alert_to_proto(alert) for alert in alerts])

    async def GetAlert(self, request: api.GetAlertRequest, context: Any) -> api.GetAlertResponse:
        return api.GetAlertResponse(alert=alert_to_proto(self._monitoring.alert(request.alert_id)))

    async def AcknowledgeAlert(
        self, request: api.AcknowledgeAlertRequest, context: Any
    ) -> api.AcknowledgeAlertResponse:
        alert = await self._monitoring.acknowledge(request.alert_id, request.acknowledged_by)
        return api.AcknowledgeAlertResponse(alert=alert_to_proto(alert))

    async def ListWorkOrders(
        self, request: api.ListWorkOrdersRequest, context: Any
    ) -> api.ListWorkOrdersResponse:
        orders = await self._monitoring.work_orders(request.open_only)
        return api.ListWorkOrdersResponse(work_orders=[work_order_to_proto(o) for o in orders])

    async def CloseWorkOrder(
        self, request: api.CloseWorkOrderRequest, context: Any
    ) -> api.CloseWorkOrderResponse:
        order = await self._monitoring.close_work_order(request.work_order_id)
        return api.CloseWorkOrderResponse(work_order=work_order_to_proto(order))

    async def ListSiteHealth(
        self, request: api.ListSiteHealthRequest, context: Any
    ) -> api.ListSiteHealthResponse:
        return api.ListSiteHealthResponse(
            sites=[site_to_proto(state) for state in self._monitoring.site_health()]
        )

    async def RunInspection(
        self, request: api.RunInspectionRequest, context: Any
    ) -> api.RunInspectionResponse:
        report = await self._monitoring.inspect(request.centre_id)
        return api.RunInspectionResponse(report=inspection_to_proto(report))

    async def GetInspectionReport(
        self, request: api.GetInspectionReportRequest, context: Any
    ) -> api.GetInspectionReportResponse:
        report = await self._monitoring.latest_inspection(request.centre_id)
        return api.GetInspectionReportResponse(report=inspection_to_proto(report))

    async def ListRules(self, request: api.ListRulesRequest, context: Any) -> api.ListRulesResponse:
        active = self._monitoring.rules()
        enabled = {rule.id for rule in active.enabled}
        return api.ListRulesResponse(
            rules=[rule_to_proto(rule, enabled=rule.id in enabled) for rule in active.every],
            settings=settings_to_proto(active.settings),
        )

    async def GetRuleSettings(
        self, request: api.GetRuleSettingsRequest, context: Any
    ) -> api.GetRuleSettingsResponse:
        return api.GetRuleSettingsResponse(
            settings=settings_to_proto(self._monitoring.rules().settings)
        )

    async def UpdateRuleSettings(
        self, request: api.UpdateRuleSettingsRequest, context: Any
    ) -> api.UpdateRuleSettingsResponse:
        settings = await self._monitoring.update_settings(settings_from_proto(request.settings))
        return api.UpdateRuleSettingsResponse(settings=settings_to_proto(settings))


ACTIONS = {
    "StreamSamples": access.MONITORING_INGEST,
    "Heartbeat": access.MONITORING_INGEST,
    "ReportLinkStatus": access.MONITORING_INGEST,
    "ListSeries": access.MONITORING_READ,
    "QuerySeries": access.MONITORING_READ,
    "ListAlerts": access.MONITORING_READ,
    "GetAlert": access.MONITORING_READ,
    "AcknowledgeAlert": access.MONITORING_ALERT_ACKNOWLEDGE,
    "ListWorkOrders": access.MONITORING_READ,
    "CloseWorkOrder": access.MONITORING_WORK_ORDER_CLOSE,
    "ListSiteHealth": access.MONITORING_READ,
    "RunInspection": access.MONITORING_INSPECTION_RUN,
    "GetInspectionReport": access.MONITORING_READ,
    "ListRules": access.MONITORING_READ,
    "GetRuleSettings": access.MONITORING_READ,
    "UpdateRuleSettings": access.MONITORING_RULES_WRITE,
}


def binding(servicer: MonitoringApi) -> ServiceBinding:
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: api_grpc.add_MonitoringServiceServicer_to_server(servicer, server),
        ACTIONS,
    )
