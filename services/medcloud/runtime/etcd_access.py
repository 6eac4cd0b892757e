"""etcd over mutual TLS with authentication (R-7.2.4: the platform's own state is level-3
protected). etcd reads the caller's user name from its client certificate's common name, so a
medcloud process presents the same certificate to etcd as to its gRPC peers, and no password or
token (which etcd expires and aetcd never renews) is involved.

Each service's user holds one role: read and write on `/medcloud/<region>/<service>/` and
nothing else, so a compromised service cannot read or rewrite another's state (the audit trail
included). Only `root` may manage users or take snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import aetcd
import grpc
from aetcd import rpc, watcher

from medcloud.runtime.tls import TlsMaterial

ROOT_USER = "root"
# etcd's compactor key that every kube-apiserver sharing an etcd reads and writes, unprefixed.
KUBE_COMPACTION_KEY = b"compact_rev_key"


def store_prefix(region: str, service: str) -> str:
    """Where a service keeps its state; the contract between EtcdStore and the roles below."""
    return f"/medcloud/{region}/{service}/"


def service_role(region: str, service: str) -> str:
    return f"medcloud-{region}-{service}"


def prefix_range(prefix: str) -> tuple[bytes, bytes]:
    key = prefix.encode()
    return key, aetcd.utils.prefix_range_end(key)


class TlsEtcdClient(aetcd.Client):
    """aetcd's client on a mutual-TLS channel (aetcd itself dials only plaintext)."""

    def __init__(self, credentials: grpc.ChannelCredentials, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            self.channel = grpc.aio.secure_channel(
                f"{self._host}:{self._port}", self._credentials, options=list(self._options.items())
            )
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout)
            self._connected.set()
        finally:
            self._is_connecting = False


def etcd_client(
    host: str,
    port: int,
    tls: TlsMaterial | None,
    timeout: float,
    options: dict[str, object],
) -> aetcd.Client:
    if tls is None:
        return aetcd.Client(host=host, port=port, timeout=timeout, options=options)
    return TlsEtcdClient(
        tls.channel_credentials(), host=host, port=port, timeout=timeout, options=options
    )


def etcd_health_answers(endpoint: str, tls: TlsMaterial | None) -> bool:
    """etcd's /health over the client URL, presenting `tls` when etcd demands a certificate."""
    scheme = "https" if tls else "http"
    context = None
    if tls is not None:
        context = ssl.create_default_context(cadata=tls.ca_pem.decode())
        with _pem_files(tls) as (cert, key):
            context.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(
            f"{scheme}://{endpoint}/health", timeout=2, context=context
        ) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def _pem_files(tls: TlsMaterial) -> Iterator[tuple[str, str]]:
    import tempfile  # ssl loads a chain only from files

    with tempfile.TemporaryDirectory() as directory:
        cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
        with open(cert, "wb") as file:
            file.write(tls.cert_pem)
        with open(key, "wb") as file:
            file.write(tls.key_pem)
        yield cert, key


@dataclass(frozen=True)
class Grant:
    """Read and write on [key, range_end) for `role`."""

    key: bytes
    range_end: bytes


class EtcdAdministration:
    """User and role management as etcd's `root` (whose certificate this must be once auth is on).
    Every call is idempotent, so an install job or a test harness may run it again."""

    def __init__(self, endpoint: str, root: TlsMaterial, timeout_seconds: float = 10.0) -> None:
        self._channel = grpc.secure_channel(endpoint, root.channel_credentials())
        self._auth = rpc.AuthStub(self._channel)
        self._kv = rpc.KVStub(self._channel)
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> EtcdAdministration:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def enable_authentication(self) -> None:
        """Creates `root` (certificate only, no password) with the root role and turns auth on."""
        self._add_user(ROOT_USER)
        self._add_role("root")
        self._grant_role(ROOT_USER, "root")
        self._call(self._auth.AuthEnable, rpc.AuthEnableRequest())

    def grant_service(self, user: str, region: str, service: str) -> None:
        """`user` (a certificate's common name) may read and write one service's keys."""
        key, end = prefix_range(store_prefix(region, service))
        self.grant(user, service_role(region, service), [Grant(key, end)])

    def grant_kube_apiserver(self, user: str, etcd_prefix: str) -> None:
        """A kube-apiserver keeps its objects under its --etcd-prefix and its compaction mark
        under one shared key."""
        key, end = prefix_range(etcd_prefix.rstrip("/") + "/")
        compaction = Grant(KUBE_COMPACTION_KEY, b"")
        self.grant(user, f"kube-apiserver-{user}", [Grant(key, end), compaction])

    def grant_root(self, user: str) -> None:
        """etcd's root role: every key and snapshots. etcd has no snapshot-only permission, so
        the identity that backs up the control plane holds this; give it to nothing else."""
        self._add_user(user)
        self._grant_role(user, "root")

    def grant(self, user: str, role: str, grants: Iterable[Grant]) -> None:
        self._add_user(user)
        self._add_role(role)
        for grant in grants:
            permission = rpc.Permission(
                permType=rpc.Permission.READWRITE, key=grant.key, range_end=grant.range_end
            )
            self._call(
                self._auth.RoleGrantPermission,
                rpc.AuthRoleGrantPermissionRequest(name=role, perm=permission),
            )
        self._grant_role(user, role)

    def put(self, key: bytes, value: bytes) -> None:
        self._call(self._kv.Put, rpc.PutRequest(key=key, value=value))

    def get(self, key: bytes) -> bytes | None:
        reply = self._call(self._kv.Range, rpc.RangeRequest(key=key))
        return reply.kvs[0].value if reply.kvs else None

    def _add_user(self, user: str) -> None:
        options = rpc.UserAddOptions(no_password=True)
        self._call(self._auth.UserAdd, rpc.AuthUserAddRequest(name=user, options=options), True)

    def _add_role(self, role: str) -> None:
        self._call(self._auth.RoleAdd, rpc.AuthRoleAddRequest(name=role), True)

    def _grant_role(self, user: str, role: str) -> None:
        self._call(self._auth.UserGrantRole, rpc.AuthUserGrantRoleRequest(user=user, role=role))

    def _call(self, method, request, exists_is_fine: bool = False):  # type: ignore[no-untyped-def]
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as error:
            if exists_is_fine and "already exists" in (error.details() or ""):
                return None
            raise
