"""The life of a service process: settings, logging, telemetry, etcd, NATS, gRPC, then drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medcloud.core.errors import Unavailable
from medcloud.runtime.audit import AuditPublisher
from medcloud.runtime.bus import EventBus
from medcloud.runtime.config import ConfigError, ServiceSettings, load_settings
from medcloud.runtime.grpc_server import GrpcServer, ServiceBinding, wait_for_shutdown_signal
from medcloud.runtime.logs import configure_logging
from medcloud.runtime.store import EtcdStore
from medcloud.runtime.telemetry import configure_telemetry
from medcloud.runtime.tls import TlsMaterial, tls_from_environment

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


@dataclass
class ServiceContext:
    """The adapters a service's bootstrap wires into its use cases."""

    name: str
    settings: ServiceSettings
    store: EtcdStore
    bus: EventBus
    # This process's certificate, for calls to other services (None: plaintext).
    tls: TlsMaterial | None = None
    audit: AuditPublisher | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def run_in_background(self, work: Coroutine[object, object, None], name: str) -> None:
        """Runs `work` (an outbox relay, a cache kept by a watch) until the service stops."""
        self.background.append(asyncio.create_task(work, name=name))


Bootstrap = Callable[[ServiceContext], Awaitable[Sequence[ServiceBinding]]]


async def _serve(
    name: str,
    settings: ServiceSettings,
    tls: TlsMaterial | None,
    nats_password: str,
    bootstrap: Bootstrap,
) -> None:
    store = await EtcdStore.connect(settings.etcd_endpoint, settings.region, name, tls)
    try:
        bus = await EventBus.connect(
            settings.nats_url,
            settings.region,
            name,
            user=settings.nats_user,
            password=nats_password,
            tls=tls.client_ssl_context() if tls else None,
        )
        try:
            audit = AuditPublisher(bus)
            bindings = await bootstrap(ServiceContext(name, settings, store, bus, tls, audit))
            server = GrpcServer(
                bindings,
                settings.grpc_listen,
                settings.shutdown_grace_seconds,
                tls=tls,
                audit=audit,
            )
            port = await server.start()
            log.info(
                "serving", extra={"grpc_port": port, "services": [b.full_name for b in bindings]}
            )
            received = await wait_for_shutdown_signal()
            log.info("shutting down", extra={"signal": received.name})
            await server.drain_and_stop()
            await audit.drain()
        finally:
            await bus.close()
    finally:
        await store.close()


def _nats_password(settings: ServiceSettings) -> str:
    if not settings.nats_password_file:
        return ""
    try:
        return Path(settings.nats_password_file).read_text().strip()
    except OSError as error:
        problem = f"MEDCLOUD_NATS_PASSWORD_FILE={settings.nats_password_file!r}: {error}"
        raise ConfigError([problem]) from error


def run_service(name: str, bootstrap: Bootstrap) -> int:
    """Runs one service until SIGTERM/SIGINT; returns the process exit code.
    A bad environment or an unreachable dependency stops start-up with a message naming it."""
    try:
        settings = load_settings(ServiceSettings)
        tls = tls_from_environment()
        nats_password = _nats_password(settings)
    except ConfigError as error:
        print(f"medcloud-{name}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(name, settings.region, settings.log_level)
    configure_telemetry(name, settings.region, settings.otlp_endpoint)
    try:
        asyncio.run(_serve(name, settings, tls, nats_password, bootstrap))
    except Unavailable as error:
        log.error("dependency unavailable", extra={"error": str(error)})
        print(f"medcloud-{name}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    log.info("stopped")
    return 0
