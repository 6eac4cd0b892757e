"""The test session's region CA and the certificates it issues, and its NATS users: every service
the tests start speaks mutual TLS and logs in to NATS with permissions for its own subjects, as in
`make run`. Test code itself connects to NATS without credentials, as the harness user who may
do everything."""

from __future__ import annotations

import functools
import secrets
import tempfile
from pathlib import Path

import grpc

from medcloud.devstack.pki import RegionPki, TlsFiles
from medcloud.devstack.servers import NatsUser, service_permissions
from medcloud.devstack.stack import SERVICE, SYSTEM_ADMINISTRATOR, open_aio_channel, open_channel
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
