"""`python -m medcloud.monitoring`: the monitoring service process."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from medcloud.monitoring.adapters.codecs import (
    AlertCodec,
    InspectionCodec,
    RuleSettingsCodec,
    WorkOrderCodec,
)
from medcloud.monitoring.adapters.events import ProtobufMonitoringEvents
from medcloud.monitoring.adapters.inventory_capacity import InventoryCapacity
from medcloud.monitoring.adapters.sample_log import JetStreamSampleLog
from medcloud.monitoring.app.monitoring import (
    Monitoring,
    MonitoringCollections,
    MonitoringPolicies,
)
from medcloud.monitoring.domain.alerts import (
    DEFAULT_ESCALATION,
    AlertState,
    EscalationLevel,
    EscalationPolicy,
)
from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.site_health import SiteHealthPolicy, SiteState
from medcloud.monitoring.entrypoints.grpc_api import MonitoringApi, binding
from medcloud.monitoring.entrypoints.prometheus import MetricsEndpoint, exposition
from medcloud.runtime.config import ConfigError, HostPort, at_least, load_settings, setting
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.service import EXIT_CONFIG, ServiceContext, run_service

log = logging.getLogger(__name__)


def _seconds_list(text: str) -> str | None:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        return "expected comma-separated seconds: 0,300,900"
    return None if values == sorted(values) and values[0] >= 0 else "must rise from 0 or more"


@dataclass(frozen=True)
class MonitoringSettings:
    metrics_listen: HostPort = setting(
        "MEDCLOUD_MONITORING_METRICS_LISTEN",
        default=HostPort("0.0.0.0", 9464),
        help="where Prometheus scrapes /metrics",
    )
    retention_seconds: float = setting(
        "MEDCLOUD_MONITORING_RETENTION_SECONDS", default=6 * 3600.0, check=at_least(60)
    )
    sample_log_max_bytes: int = setting(
        "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES",
        default=2 * 1024**3,
        check=at_least(1024**2),
        help="JetStream storage the sample log reserves; the oldest samples go first beyond it",
    )
    supervise_seconds: float = setting(
        "MEDCLOUD_MONITORING_SUPERVISE_SECONDS", default=1.0, check=at_least(0.05)
    )
    inspection_interval_seconds: float = setting(
        "MEDCLOUD_MONITORING_INSPECTION_INTERVAL_SECONDS", default=3600.0, check=at_least(1)
    )
    heartbeat_interval_seconds: float = setting(
        "MEDCLOUD_MONITORING_HEARTBEAT_INTERVAL_SECONDS", default=10.0, check=at_least(0.05)
    )
    site_down_after_seconds: float = setting(
        "MEDCLOUD_MONITORING_SITE_DOWN_AFTER_SECONDS", default=30.0, check=at_least(0.1)
    )
    site_up_after_heartbeats: int = setting(
        "MEDCLOUD_MONITORING_SITE_UP_AFTER_HEARTBEATS", default=3, check=at_least(1)
    )
    inventory_address: str = setting(
        "MEDCLOUD_INVENTORY_ADDRESS",
        default="",
        help="the inventory service's gRPC address, HOST:PORT, for capacity utilisation",
    )
    capacity_seconds: float = setting(
        "MEDCLOUD_MONITORING_CAPACITY_SECONDS", default=300.0, check=at_least(0.1)
    )
    critical_escalation_seconds: str = setting(
        "MEDCLOUD_MONITORING_CRITICAL_ESCALATION_SECONDS",
        default="0,300,900",
        check=_seconds_list,
        help="when the on-duty engineer, shift lead and IT director hear of a critical alert",
    )
    critical_work_order_seconds: float = setting(
        "MEDCLOUD_MONITORING_CRITICAL_WORK_ORDER_SECONDS", default=900.0, check=at_least(0)
    )


def escalation_from(settings: MonitoringSettings) -> EscalationPolicy:
    """The default policy with the region's timers for critical alerts (R-7.7b)."""
    names = [level.notify for level in DEFAULT_ESCALATION.levels_for(Severity.CRITICAL)]
    seconds = [float(part) for part in settings.critical_escalation_seconds.split(",")]
    levels = tuple(
        EscalationLevel(after, names[min(index, len(names) - 1)])
        for index, after in enumerate(seconds)
    )
    return replace(
        DEFAULT_ESCALATION,
        levels={**DEFAULT_ESCALATION.levels, Severity.CRITICAL: levels},
        work_order_after_seconds={
            **DEFAULT_ESCALATION.work_order_after_seconds,
            Severity.CRITICAL: settings.critical_work_order_seconds,
        },
    )


def observe_monitoring(monitoring: Monitoring) -> None:
    """Monitoring's own figures for the OpenTelemetry metrics pipeline."""
    meter = metrics.get_meter("medcloud.monitoring")

    def accepted(options: CallbackOptions) -> list[Observation]:
        return [Observation(monitoring.samples_accepted)]

    def open_alerts(options: CallbackOptions) -> list[Observation]:
        counts: dict[str, int] = {}
        for alert in monitoring.alerts([AlertState.FIRING, AlertState.ACKNOWLEDGED]):
            counts[alert.severity.value] = counts.get(alert.severity.value, 0) + 1
        return [Observation(n, {"severity": severity}) for severity, n in counts.items()]

    meter.create_observable_counter(
        "medcloud.monitoring.samples_accepted", callbacks=[accepted], description="Samples held"
    )
    meter.create_observable_gauge(
        "medcloud.monitoring.open_alerts", callbacks=[open_alerts], description="Open alerts"
    )


def own_figures(monitoring: Monitoring) -> list[tuple[str, str, dict[str, str], float]]:
    figures: list[tuple[str, str, dict[str, str], float]] = [
        ("medcloud_monitoring_samples_accepted_total", "counter", {}, monitoring.samples_accepted)
    ]
    for alert in monitoring.alerts([AlertState.FIRING, AlertState.ACKNOWLEDGED]):
        figures.append(
            (
                "medcloud_monitoring_alert_open",
                "gauge",
                {
                    "alert_id": alert.id,
                    "rule": alert.rule_id,
                    "requirement": alert.requirement_id,
                    "severity": alert.severity.value,
                    "centre": alert.series.centre_id,
                },
                1.0,
            )
        )
    for site in monitoring.site_health():
        figures.append(
            (
                "medcloud_monitoring_site_up",
                "gauge",
                {"centre": site.centre_id},
                float(site.state is SiteState.UP),
            )
        )
    return figures


def main() -> int:
    try:
        settings = load_settings(MonitoringSettings)
        escalation = escalation_from(settings)
        site_policy = SiteHealthPolicy(
            heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
            down_after_seconds=settings.site_down_after_seconds,
            up_after_heartbeats=settings.site_up_after_heartbeats,
        )
    except ConfigError as error:
        print(f"medcloud-monitoring: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as error:  # a policy that breaks its own rules (InvalidArgument)
        print(f"medcloud-monitoring: invalid configuration: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
        store = context.store
        outbox = Outbox(store, context.bus)
        sample_log = JetStreamSampleLog(
            context.bus.jetstream,
            context.settings.region,
            retention_seconds=settings.retention_seconds,
            max_bytes=settings.sample_log_max_bytes,
        )
        await sample_log.ensure_stream()
        monitoring = Monitoring(
            store,
            MonitoringCollections(
                alerts=store.collection("alerts", AlertCodec()),
                work_orders=store.collection("work-orders", WorkOrderCodec()),
                inspections=store.collection("inspections", InspectionCodec()),
                settings=store.collection("settings", RuleSettingsCodec()),
            ),
            sample_log,
            outbox,
            ProtobufMonitoringEvents(),
            MonitoringPolicies(
                retention_seconds=settings.retention_seconds,
                escalation=escalation,
                site_health=site_policy,
            ),
        )
        await monitoring.start()
        endpoint = MetricsEndpoint(
            lambda: exposition(monitoring.latest_samples(), own_figures(monitoring)),
            settings.metrics_listen.host,
            settings.metrics_listen.port,
        )
        port = await endpoint.start()
        log.info("metrics endpoint", extra={"metrics_port": port})
        observe_monitoring(monitoring)
        context.run_in_background(outbox.relay(), name="outbox relay")
        context.run_in_background(
            monitoring.supervise(settings.supervise_seconds), name="supervision"
        )
        context.run_in_background(
            monitoring.inspect_every(settings.inspection_interval_seconds), name="inspections"
        )
        if settings.inventory_address:
            context.run_in_background(
                monitoring.record_capacity_every(
                    InventoryCapacity(settings.inventory_address, context.tls),
                    settings.capacity_seconds,
                ),
                name="capacity",
            )
        return [binding(MonitoringApi(monitoring))]

    return run_service("monitoring", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
