"""The test session's region CA and the certificates it issues: every service the tests start,
and every test client, speaks mutual TLS as in `make run`."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import grpc

from medcloud.devstack.pki import RegionPki, TlsFiles
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
