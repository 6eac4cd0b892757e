"""Real Kubernetes API servers on loopback (no nodes), one per cluster, all on one etcd.

Like controller-runtime's envtest: kube-apiserver built from Go modules (`make kube-apiserver`),
each cluster under its own `--etcd-prefix`, with its own CA, serving certificate, service-account
signing key, RBAC and Node authorizers, and kubeconfigs for an admin and a restricted user."""

from __future__ import annotations

import base64
import os
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medcloud.devstack.pki import CertificateAuthority, TlsFiles, write_service_account_keys
from medcloud.devstack.processes import (
    LaunchedServer,
    ManagedProcess,
    StackError,
    ensure_port_free,
    free_port,
    require_executable,
)
from medcloud.devstack.servers import LOOPBACK, venv_bin
from medcloud.runtime.etcd_access import etcd_health_answers

# The clusters of a region as `make run` starts them (ARCHITECTURE-BRIEF): where the operator and
# the HospitalSite resources live, a hospital's own private cluster, and the carrier's public one.
REGION_CLUSTERS = ("management", "hospital-private", "carrier-public")
ADMIN_USER = "medcloud-admin"
RESTRICTED_USER = "medcloud-restricted"


def find_kube_apiserver() -> Path:
    override = os.environ.get("MEDCLOUD_KUBE_APISERVER_BIN")
    path = Path(override) if override else venv_bin() / "kube-apiserver"
    return require_executable("kube-apiserver", path, "build it with `make kube-apiserver`")


@dataclass
class KubeApiServer(LaunchedServer):
    """One cluster's API server; its state lives in etcd under `/clusters/<name>`."""

    name: str
    etcd_endpoint: str
    work_dir: Path
    port: int = 0
    startup_timeout_seconds: float = 90.0
    binary: Path = field(default_factory=find_kube_apiserver)
    # Its client certificate for an etcd that demands one (None: a plaintext etcd).
    etcd_tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.component = f"kube-apiserver ({self.name})"

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def etcd_prefix(self) -> str:
        return f"/clusters/{self.name}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def restricted_kubeconfig(self) -> Path:
        """For user `medcloud-restricted`, who holds no RBAC grant until someone binds one."""
        return self.work_dir / "restricted.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.work_dir / "ca.crt"

    def launch(self) -> None:
        """Starts the process without waiting; `wait_ready` waits. Several clusters start faster
        launched together."""
        ensure_port_free(self.component, LOOPBACK, self.port)
        material = self.etcd_tls.material() if self.etcd_tls else None
        if not etcd_health_answers(self.etcd_endpoint, material):
            raise StackError(f"{self.component}: etcd at {self.etcd_endpoint} is unreachable")
        flags = self._write_credentials()
        self._process = ManagedProcess(
            self.component, [str(self.binary), *flags], self.work_dir / "kube-apiserver.log"
        )
        self._process.start()

    def wait_ready(self) -> None:
        assert self._process is not None, "launch() first"
        self._process.wait_until_healthy(self._ready, self.startup_timeout_seconds)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def _write_credentials(self) -> list[str]:
        pki = self.work_dir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(f"medcloud-{self.name}-ca")
        self.ca_path.write_bytes(ca.cert_pem)
        serving = ca.issue_serving(LOOPBACK)
        (pki / "serving.crt").write_bytes(serving.cert_pem)
        (pki / "serving.key").write_bytes(serving.key_pem)
        sa_key, sa_pub = write_service_account_keys(pki)
        for path, user, groups in (
            (self.admin_kubeconfig, ADMIN_USER, ("system:masters",)),
            (self.restricted_kubeconfig, RESTRICTED_USER, ()),
        ):
            client = ca.issue_client(user, groups)
            path.write_text(yaml.safe_dump(self._kubeconfig(user, client.cert_pem, client.key_pem)))
            path.chmod(0o600)
        etcd_flags = [f"--etcd-servers=http://{self.etcd_endpoint}"]
        if self.etcd_tls is not None:
            etcd_flags = [
                f"--etcd-servers=https://{self.etcd_endpoint}",
                f"--etcd-cafile={self.etcd_tls.ca}",
                f"--etcd-certfile={self.etcd_tls.cert}",
                f"--etcd-keyfile={self.etcd_tls.key}",
            ]
        return [
            *etcd_flags,
            f"--etcd-prefix={self.etcd_prefix}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            # No Endpoints object for the loopback address, which the reconciler refuses.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={self.ca_path}",
            f"--service-account-issuer=https://kubernetes.default.svc/{self.name}",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=RBAC,Node",
            # Only configuration: there are no nodes and no service traffic.
            "--service-cluster-ip-range=10.0.0.0/24",
            # No controller manager creates the `default` ServiceAccount these would require.
            "--disable-admission-plugins=ServiceAccount",
            f"--cert-dir={pki}",
        ]

    def _kubeconfig(self, user: str, cert_pem: bytes, key_pem: bytes) -> dict[str, object]:
        def encode(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": encode(self.ca_path.read_bytes()),
                    },
                }
            ],
            "users": [
                {
                    "name": f"{user}@{self.name}",
                    "user": {
                        "client-certificate-data": encode(cert_pem),
                        "client-key-data": encode(key_pem),
                    },
                }
            ],
            "contexts": [
                {
                    "name": self.name,
                    "context": {"cluster": self.name, "user": f"{user}@{self.name}"},
                }
            ],
            "current-context": self.name,
        }

    def _ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2, context=context) as reply:
                return reply.status == 200
        except (OSError, urllib.error.URLError):
            return False


def merge_kubeconfigs(clusters: list[KubeApiServer], path: Path) -> Path:
    """One kubeconfig with an admin context per cluster, the first one current."""
    merged: dict[str, list[object]] = {"clusters": [], "users": [], "contexts": []}
    for cluster in clusters:
        config = yaml.safe_load(cluster.admin_kubeconfig.read_text())
        for section in merged:
            merged[section].extend(config[section])
    document = {"apiVersion": "v1", "kind": "Config", **merged}
    document["current-context"] = clusters[0].name if clusters else ""
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path
