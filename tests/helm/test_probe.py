"""The chart's gRPC probe, run as the kubelet would run it, against a real medcloud gRPC server
with mutual TLS: SERVING passes; a draining server, a certificate from another CA, or a server
whose certificate lacks the Service's DNS name fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medcloud.devstack.pki import CertificateAuthority, RegionPki
from medcloud.devstack.processes import free_port
from medcloud.devstack.servers import venv_bin
from medcloud.runtime.config import HostPort
from medcloud.runtime.grpc_server import GrpcServer
from medcloud.runtime.tls import TlsMaterial
from tests.helm.chart import PANYU, named, render

pytestmark = pytest.mark.integration

SERVICE_HOST = "medcloud-inventory.medcloud.svc"
TLS_DIR_IN_POD = "/etc/medcloud/tls"


def issue(authority: CertificateAuthority, directory: Path, dns_name: str) -> TlsMaterial:
    """A service certificate (CN inventory, role service) as the region's CA issues it."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "inventory"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "service"),
        ]
    )
    issued = authority.issue_certificate(
        subject,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName(dns_name)],
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(authority.cert_pem)
    (directory / "tls.crt").write_bytes(issued.cert_pem)
    (directory / "tls.key").write_bytes(issued.key_pem)
    return TlsMaterial(authority.cert_pem, issued.cert_pem, issued.key_pem)


def probe_command(kind: str, tls_dir: Path, port: int) -> list[str]:
    """The inventory Deployment's probe, with the pod's paths and port mapped onto this test's."""
    deployment = named(render((PANYU,)), "Deployment", "medcloud-inventory")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container[kind]["exec"]["command"]
    assert command[0] == "grpc-health-probe"
    return [
        str(venv_bin() / "grpc-health-probe"),
        *(
            argument.replace(TLS_DIR_IN_POD, str(tls_dir)).replace(":50051", f":{port}")
            for argument in command[1:]
        ),
    ]


async def run_probe(command: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


async def serve(tls: TlsMaterial, drain_delay_seconds: float = 0.1) -> GrpcServer:
    server = GrpcServer([], HostPort("127.0.0.1", free_port()), 0.1, drain_delay_seconds, tls=tls)
    await server.start()
    return server


@pytest.mark.parametrize("kind", ["startupProbe", "livenessProbe", "readinessProbe"])
async def test_the_probe_passes_on_a_serving_service(tmp_path, kind):
    region = RegionPki(tmp_path / "pki", "panyu")
    tls = issue(region.authority, tmp_path / "pod", SERVICE_HOST)
    server = await serve(tls)
    try:
        assert await run_probe(probe_command(kind, tmp_path / "pod", server.port)) == 0
    finally:
        await server.drain_and_stop()


async def test_the_probe_fails_while_the_service_drains(tmp_path):
    region = RegionPki(tmp_path / "pki", "panyu")
    tls = issue(region.authority, tmp_path / "pod", SERVICE_HOST)
    server = await serve(tls, drain_delay_seconds=1.5)
    draining = asyncio.create_task(server.drain_and_stop())
    await asyncio.sleep(0.3)
    try:
        command = probe_command("readinessProbe", tmp_path / "pod", server.port)
        assert await run_probe(command) != 0
    finally:
        await draining


async def test_the_probe_fails_with_a_certificate_from_another_ca(tmp_path):
    region = RegionPki(tmp_path / "pki", "panyu")
    server = await serve(issue(region.authority, tmp_path / "server", SERVICE_HOST))
    issue(CertificateAuthority("another region's CA"), tmp_path / "stranger", SERVICE_HOST)
    try:
        command = probe_command("livenessProbe", tmp_path / "stranger", server.port)
        assert await run_probe(command) != 0
    finally:
        await server.drain_and_stop()


async def test_the_probe_fails_when_the_certificate_lacks_the_service_name(tmp_path):
    region = RegionPki(tmp_path / "pki", "panyu")
    server = await serve(issue(region.authority, tmp_path / "pod", "localhost"))
    try:
        command = probe_command("livenessProbe", tmp_path / "pod", server.port)
        assert await run_probe(command) != 0
    finally:
        await server.drain_and_stop()
