"""`medcloud-agent`: the node agent process, one per node (R-7.7c)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medcloud.monitoring.agent.buffer import SampleBuffer
from medcloud.monitoring.agent.host_metrics import HostMetrics
from medcloud.monitoring.agent.runner import Agent, LocalAlerts
from medcloud.monitoring.agent.sources import Fault, SensorSource, source_from_spec
from medcloud.monitoring.domain.rule_pack import default_rules
from medcloud.runtime.config import (
    DNS_LABEL,
    ConfigError,
    HostPort,
    at_least,
    load_settings,
    matches,
    setting,
)
from medcloud.runtime.grpc_client import service_channel
from medcloud.runtime.grpc_server import wait_for_shutdown_signal
from medcloud.runtime.logs import configure_logging
from medcloud.runtime.tls import TlsMaterial, tls_from_environment

EXIT_CONFIG = 2
log = logging.getLogger("medcloud.agent")
_DNS_RULE = "must be a DNS label (lower-case letters, digits, '-')"


@dataclass(frozen=True)
class AgentSettings:
    region: str = setting("MEDCLOUD_REGION", check=matches(DNS_LABEL, _DNS_RULE))
    node_id: str = setting(
        "MEDCLOUD_AGENT_NODE_ID",
        check=matches(DNS_LABEL, _DNS_RULE),
        help="this node's id, as in inventory",
    )
    centre_id: str = setting(
        "MEDCLOUD_AGENT_CENTRE_ID",
        check=matches(DNS_LABEL, _DNS_RULE),
        help="the centre (machine room) this node stands in",
    )
    monitoring_address: HostPort = setting(
        "MEDCLOUD_MONITORING_ADDRESS", help="the monitoring service's gRPC address, HOST:PORT"
    )
    buffer_dir: str = setting(
        "MEDCLOUD_AGENT_BUFFER_DIR", help="where samples wait on disk while the centre is away"
    )
    source: str = setting(
        "MEDCLOUD_AGENT_SOURCE",
        default="simulator",
        help="machine-room sensors: simulator, file:PATH, stdin or an http(s) URL",
    )
    faults: str = setting(
        "MEDCLOUD_AGENT_FAULTS",
        default="",
        help="simulator only: faults to inject, ';'-separated METRIC[{LABEL=VALUE}]=VALUE@+START..+END",
    )
    interval_seconds: float = setting(
        "MEDCLOUD_AGENT_INTERVAL_SECONDS", default=10.0, check=at_least(0.05)
    )
    heartbeat_seconds: float = setting(
        "MEDCLOUD_AGENT_HEARTBEAT_SECONDS", default=10.0, check=at_least(0.05)
    )
    host_metrics: bool = setting("MEDCLOUD_AGENT_HOST_METRICS", default=True)
    log_level: str = setting("MEDCLOUD_LOG_LEVEL", default="INFO")


async def _run(
    settings: AgentSettings, source: SensorSource, directory: Path, tls: TlsMaterial | None
) -> None:
    channel = service_channel(str(settings.monitoring_address), tls)
    agent = Agent(
        node_id=settings.node_id,
        centre_id=settings.centre_id,
        channel=channel,
        buffer=SampleBuffer(directory / "samples"),
        source=source,
        host_metrics=HostMetrics() if settings.host_metrics else None,
        local_alerts=LocalAlerts(default_rules(), directory / "local-alerts.jsonl"),
        interval_seconds=settings.interval_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    running = asyncio.create_task(agent.run())
    log.info("agent started", extra={"node_id": settings.node_id, "centre_id": settings.centre_id})
    stop = asyncio.create_task(wait_for_shutdown_signal())
    try:
        done, _ = await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            running.result()  # the agent failed: let the process say so
    finally:
        stop.cancel()
        running.cancel()
        await asyncio.gather(running, stop, return_exceptions=True)
        await source.close()
        await channel.close()


def main() -> int:
    try:
        settings = load_settings(AgentSettings)
        now = time.time()
        faults = [
            Fault.parse(text.strip(), now) for text in settings.faults.split(";") if text.strip()
        ]
        source = source_from_spec(settings.source, faults)
        tls = tls_from_environment()
    except (ConfigError, ValueError) as error:
        print(f"medcloud-agent: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging("agent", settings.region, settings.log_level)
    directory = Path(settings.buffer_dir)
    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(_run(settings, source, directory, tls))
    log.info("agent stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
