"""Starting medcloud service modules as real processes for the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.stack import grpc_serving
from tests.support.identities import grant_etcd, identity, nats_credentials

ROOT = Path(__file__).resolve().parents[2]


def start_service(
    module: str,
    etcd_endpoint: str,
    nats_url: str,
    region: str,
    log_path: Path,
    address: str = "",
    extra_env: dict[str, str] | None = None,
) -> tuple[ManagedProcess, str]:
    """Runs `python -m module` against the given etcd and NATS, with a certificate of its own,
    until its health check says SERVING; returns the process and its gRPC address."""
    address = address or f"127.0.0.1:{free_port()}"
    user = module.removeprefix("medcloud.").replace(".", "-")
    tls = identity(user)
    # The name run_service gives the process, which its NATS user, subjects and keys carry.
    service = "echo" if module == "tests.support.echo_service" else module.rpartition(".")[2]
    grant_etcd(etcd_endpoint, region, service, user)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEDCLOUD_REGION": region,
        "MEDCLOUD_ETCD_ENDPOINT": etcd_endpoint,
        "MEDCLOUD_NATS_URL": nats_url,
        "MEDCLOUD_GRPC_LISTEN": address,
        "MEDCLOUD_SHUTDOWN_GRACE_SECONDS": "10",
        **tls.environment(),
        **nats_credentials(service),
        **(extra_env or {}),
    }
    process = ManagedProcess(module, [sys.executable, "-m", module], log_path, env)
    process.start()
    process.wait_until_healthy(lambda: grpc_serving(address, tls), 60)
    return process, address
