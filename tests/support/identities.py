"""The test session's region CA and the certificates it issues, its NATS users and its etcd users:
every service the tests start speaks mutual TLS, logs in to NATS with permissions for its own
subjects and to etcd as a user confined to its own keys, as in `make run`. Test code itself
connects to NATS without credentials, as the harness user who may do everything, and to etcd as
the service whose keys it reads."""

from __future__ import annotations

import functools
import secrets
import tempfile
from pathlib import Path

import grpc

from medcloud.devstack.kube import KubeApiServer
from medcloud.devstack.pki import RegionPki, TlsFiles
from medcloud.devstack.servers import (
    EtcdSecurity,
    EtcdServer,
    NatsUser,
    service_permissions,
)
from medcloud.devstack.stack import SERVICE, SYSTEM_ADMINISTRATOR, open_aio_channel, open_channel
from medcloud.runtime.config import HostPort
from medcloud.runtime.etcd_access import EtcdAdministration
from medcloud.runtime.store import EtcdStore
from medcloud.runtime.tls import TlsMaterial


@functools.cache
def _pki() -> RegionPki:
    return RegionPki(Path(tempfile.mkdtemp(prefix="medcloud-test-pki-")), "tests")


@functools.cache
def identity(name: str, roles: tuple[str, ...] = (SERVICE,)) -> TlsFiles:
    """A certificate for `name` holding `roles`, issued once per session."""
    return _pki().issue(name, roles)


def material(name: str, roles: tuple[str, ...]) -> TlsMaterial:
    files = identity(name, roles)
    return TlsMaterial.from_files(files.ca, files.cert, files.key)


def client_channel(address: str, roles: tuple[str, ...] = (SYSTEM_ADMINISTRATOR,)) -> grpc.Channel:
    """A blocking client channel as a person holding `roles` (a system administrator by default)."""
    return open_channel(address, identity(f"tester-{'-'.join(roles)}", roles))


def aio_client_channel(
    address: str, roles: tuple[str, ...] = (SYSTEM_ADMINISTRATOR,)
) -> grpc.aio.Channel:
    return open_aio_channel(address, identity(f"tester-{'-'.join(roles)}", roles))


# Every service name a test starts; the test NATS server knows each as a user.
SERVICES = ("inventory", "scheduling", "monitoring", "security", "backup", "echo")
HARNESS = "harness"


@functools.cache
def nats_password(user: str) -> str:
    return secrets.token_urlsafe(24)


def nats_users() -> tuple[NatsUser, ...]:
    services = tuple(
        NatsUser(name, nats_password(name), service_permissions(name)) for name in SERVICES
    )
    return (*services, NatsUser(HARNESS, nats_password(HARNESS)))


def nats_credentials(service: str) -> dict[str, str]:
    path = _pki().directory / f"nats-{service}.password"
    path.write_text(nats_password(service))
    path.chmod(0o600)
    return {"MEDCLOUD_NATS_USER": service, "MEDCLOUD_NATS_PASSWORD_FILE": str(path)}


@functools.cache
def etcd_security() -> EtcdSecurity:
    return EtcdSecurity.issued_by(_pki())


def secured_etcd(work: Path, **options: object) -> EtcdServer:
    """An etcd (not started) that demands the session's certificates and authenticates them."""
    return EtcdServer(work / "data", work / "etcd.log", security=etcd_security(), **options)  # type: ignore[arg-type]


def etcd_administration(endpoint: str) -> EtcdAdministration:
    """User and role management on the session's etcd, as root."""
    return EtcdAdministration(endpoint, etcd_security().root.material())


def grant_etcd(endpoint: str, region: str, service: str, user: str = "") -> None:
    """Lets `user` (the service's own certificate by default) use one service's etcd keys."""
    with etcd_administration(endpoint) as etcd:
        etcd.grant_service(user or service, region, service)


async def connect_store(endpoint: str, region: str, service: str) -> EtcdStore:
    """The store `service` would open, with its certificate and its etcd grant."""
    grant_etcd(endpoint, region, service)
    tls = identity(service).material()
    return await EtcdStore.connect(HostPort.parse(endpoint), region, service, tls)


def kube_apiserver(name: str, etcd_endpoint: str, work: Path, **options: object) -> KubeApiServer:
    """A cluster's API server (not started) logging in to the session's etcd as a user of its
    own, confined to its prefix."""
    user = f"kube-apiserver-{name}"
    cluster = KubeApiServer(name, etcd_endpoint, work, etcd_tls=identity(user, ()), **options)  # type: ignore[arg-type]
    with etcd_administration(etcd_endpoint) as etcd:
        etcd.grant_kube_apiserver(user, cluster.etcd_prefix)
    return cluster
