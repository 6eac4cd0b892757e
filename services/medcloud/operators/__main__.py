"""`python -m medcloud.operators`: the HospitalSite operator process.

Watches HospitalSites in the management cluster (KUBECONFIG, or in-cluster credentials) and
reconciles each into medcloud's services (their addresses and the operator's certificate from
the environment) and into the member clusters its Secrets name. Of several replicas only the
holder of the Lease `medcloud-operator` in MEDCLOUD_OPERATOR_NAMESPACE acts."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import kopf
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from medcloud.operators.conformance_sources import GrpcConformance
from medcloud.operators.health import HealthEndpoint
from medcloud.operators.kopf_operator import SiteStatusWriter, register
from medcloud.operators.leadership import LeaseElection, LeaseTiming
from medcloud.operators.manifests import validate_manifest
from medcloud.operators.member_work import HOSPITAL_LABEL, KubeconfigSecret, KubernetesMemberWork
from medcloud.operators.reconcile import SiteReconciler, StepFailed
from medcloud.operators.region import read_region
from medcloud.operators.region_services import GrpcRegionServices, ServiceAddresses
from medcloud.operators.site import HospitalSite
from medcloud.runtime.config import ConfigError, HostPort, at_least, load_settings, setting
from medcloud.runtime.logs import configure_logging
from medcloud.runtime.service import EXIT_CONFIG
from medcloud.runtime.telemetry import configure_telemetry
from medcloud.runtime.tls import tls_from_environment

log = logging.getLogger("medcloud.operators")


@dataclass(frozen=True)
class OperatorSettings:
    inventory_address: HostPort = setting("MEDCLOUD_INVENTORY_ADDRESS")
    scheduling_address: HostPort = setting("MEDCLOUD_SCHEDULING_ADDRESS")
    security_address: HostPort = setting("MEDCLOUD_SECURITY_ADDRESS")
    backup_address: HostPort = setting("MEDCLOUD_BACKUP_ADDRESS")
    monitoring_address: HostPort = setting("MEDCLOUD_MONITORING_ADDRESS")
    namespace: str = setting(
        "MEDCLOUD_OPERATOR_NAMESPACE",
        default="",
        help="its own namespace: the leader Lease and the member clusters' kubeconfig Secrets "
        "(default: the pod's namespace in a cluster, else medcloud)",
    )
    identity: str = setting(
        "MEDCLOUD_OPERATOR_IDENTITY",
        default="",
        help="this replica's name in the Lease (default: host name and process id)",
    )
    health_listen: str = setting(
        "MEDCLOUD_OPERATOR_HEALTH_LISTEN",
        default="",
        help="HOST:PORT of /livez and /readyz for the kubelet (off when empty)",
    )
    lease_seconds: float = setting(
        "MEDCLOUD_OPERATOR_LEASE_SECONDS",
        default=15.0,
        check=at_least(1),
        help="a standby takes over this long after the leader stops renewing",
    )
    drift_seconds: float = setting(
        "MEDCLOUD_OPERATOR_DRIFT_SECONDS", default=60.0, check=at_least(1)
    )
    region: str = setting("MEDCLOUD_REGION", help="the region this install serves")
    log_level: str = setting("MEDCLOUD_LOG_LEVEL", default="INFO")
    otlp_endpoint: str = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default="",
        help="OTLP/gRPC collector; spans and metrics are exported only when set",
    )


class ManifestValidator:
    """The CRD's own schema and CEL rules, as `medcloudctl validate` applies them."""

    def problems(self, site: HospitalSite) -> list[str]:
        manifest = {
            "apiVersion": "medcloud.io/v1alpha1",
            "kind": "HospitalSite",
            "metadata": {"name": site.name, "namespace": site.namespace},
            "spec": dict(site.raw_spec),
        }
        return [f"{p.field}: {p.message}" for p in validate_manifest(manifest)]


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(configured: str) -> str:
    if configured:
        return configured
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return "medcloud"


def secret_reader(api: client.ApiClient, namespace: str):  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)

    def read(name: str, key: str) -> KubeconfigSecret | None:
        try:
            secret = core.read_namespaced_secret(name, namespace, _request_timeout=10)
        except ApiException as error:
            if error.status == 404:
                return None
            raise StepFailed(
                "KubeconfigSecretUnreadable",
                f"Secret {namespace}/{name}: HTTP {error.status} {error.reason}: the operator's "
                "Role must allow get on Secrets in its namespace",
            ) from error
        value = (secret.data or {}).get(key)
        hospital = (secret.metadata.labels or {}).get(HOSPITAL_LABEL)
        return KubeconfigSecret(base64.b64decode(value) if value else None, hospital)

    return read


def declared_by_regions(api: client.ApiClient) -> frozenset[str]:
    """The ids of every centre, node and link the Region resources declare."""
    regions = client.CustomObjectsApi(api).list_cluster_custom_object(
        "medcloud.io", "v1alpha1", "regions", _request_timeout=10
    )
    ids: set[str] = set()
    for item in regions.get("items", []):
        region = read_region(item)
        ids |= {c.id for c in region.centres}
        ids |= {node_id for node_id, _, _ in region.nodes}
        ids |= {link.id for link in region.links}
    return frozenset(ids)


def _health_listen(text: str) -> HostPort | None:
    try:
        return HostPort.parse(text) if text else None
    except ValueError as error:
        raise ConfigError([f"MEDCLOUD_OPERATOR_HEALTH_LISTEN={text!r}: {error}"]) from None


def _drop_kopf_settings(record: logging.LogRecord) -> bool:
    record.__dict__.pop("settings", None)
    return True


def main() -> int:
    try:
        settings = load_settings(OperatorSettings)
        tls = tls_from_environment()
        health_listen = _health_listen(settings.health_listen)
    except ConfigError as error:
        print(f"medcloud-operator: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging("operator", settings.region, settings.log_level)
    configure_telemetry("operator", settings.region, settings.otlp_endpoint or None)
    # kopf attaches its whole settings object to every record; the JSON lines need none of it.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_kopf_settings)
    try:
        config.load_kube_config()
    except config.ConfigException:
        config.load_incluster_config()
    api = client.ApiClient()
    namespace = own_namespace(settings.namespace)
    addresses = ServiceAddresses(
        inventory=str(settings.inventory_address),
        scheduling=str(settings.scheduling_address),
        security=str(settings.security_address),
        backup=str(settings.backup_address),
        monitoring=str(settings.monitoring_address),
    )
    services: dict[str, GrpcRegionServices] = {}

    def region_services() -> GrpcRegionServices:
        # Made on first use, inside kopf's event loop (gRPC aio channels belong to one loop).
        if "grpc" not in services:
            services["grpc"] = GrpcRegionServices(addresses, tls)
        return services["grpc"]

    register(
        lambda: SiteReconciler(
            region_services(),
            KubernetesMemberWork(secret_reader(api, namespace), namespace),
            ManifestValidator(),
            GrpcConformance(addresses, tls),
        ),
        lambda: SiteStatusWriter(api),
        lambda region: region_services().apply_region(region),
        lambda: declared_by_regions(api),
        drift_interval_seconds=settings.drift_seconds,
    )

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        # The Lease decides who acts; kopf's peering (its own CRD, priorities) is not used.
        settings.peering.standalone = True
        settings.posting.level = logging.INFO
        settings.persistence.finalizer = "medcloud.io/hospitalsite"

    election = LeaseElection(
        api,
        namespace,
        LEASE_NAME,
        settings.identity or f"{socket.gethostname()}-{os.getpid()}",
        LeaseTiming(settings.lease_seconds),
    )
    health = HealthEndpoint(election, health_listen) if health_listen else None
    return asyncio.run(run_while_leading(election, health))


LEASE_NAME = "medcloud-operator"
EXIT_LOST_LEADERSHIP = 4


async def run_while_leading(election: LeaseElection, health: HealthEndpoint | None = None) -> int:
    """Stands by until this replica holds the Lease, then runs kopf until a signal (0) or until
    the Lease is lost (EXIT_LOST_LEADERSHIP: the process ends so that it cannot act alongside
    the new leader; its Deployment starts it again as a standby)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if health is not None:
        await health.start()
    try:
        if not await election.acquire(stop):
            return 0
        # kopf stops first and the Lease is released after, so a standby never overlaps with it.
        release = asyncio.Event()
        holding = asyncio.create_task(election.hold(release))
        holding.add_done_callback(lambda _: stop.set())
        await kopf.operator(clusterwide=True, stop_flag=stop)
        release.set()
        released = await holding
        return 0 if released else EXIT_LOST_LEADERSHIP
    finally:
        if health is not None:
            await health.stop()


if __name__ == "__main__":
    sys.exit(main())
