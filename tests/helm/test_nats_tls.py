"""The bundled NATS's nats.conf as the chart renders it, run by nats-server (the release of the
chart's image tag): each server's configuration passes `nats-server -t`; three servers form a
JetStream cluster over mutual-TLS routes; clients and routes must present a certificate from the
region's CA while the monitoring port answers plain HTTP (the kubelet's probes); a service with
its own certificate, checking the server by the name in its MEDCLOUD_NATS_URL, publishes to a
stream replicated on all three servers; a client without a certificate, or with another CA's, is
refused.

Pod paths and ports are mapped onto this test's: the certificate Secret's mount, the data
directory, the listen ports, and the route hosts (`localhost`: the test cannot resolve the
headless Service's names, which `test_chart.py` checks the certificate's wildcard covers)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from cryptography import x509
from nats.js.api import StreamConfig

from medcloud.devstack.pki import RegionPki
from medcloud.devstack.processes import ManagedProcess, free_port
from medcloud.devstack.servers import find_nats_server
from medcloud.devstack.stack import SERVICE
from tests.helm.chart import CONGHUA, SERVICES, environment, named, nats_certificate, render

pytestmark = pytest.mark.integration

REPLICAS = 3
NAME = "medcloud-nats"  # release medcloud, namespace medcloud, as render() names them
TLS_DIR_IN_POD = "/etc/nats-tls"


@dataclass(frozen=True)
class Server:
    name: str
    client_port: int
    route_port: int
    monitor_port: int
    conf: Path
    log: Path
    env: dict[str, str]

    def monitor(self, endpoint: str) -> dict:
        """The monitoring port, over plain HTTP as the kubelet asks it."""
        url = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())


def rendered_conf() -> str:
    return named(render((CONGHUA,)), "ConfigMap", NAME)["data"]["nats.conf"]


def services_nats_url() -> str:
    deployment = named(render((CONGHUA,)), "Deployment", "medcloud-inventory")
    return environment(deployment["spec"]["template"]["spec"]["containers"][0])["MEDCLOUD_NATS_URL"]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the rendered nats.conf no longer has {old!r} once"
    return text.replace(old, new)


def local_conf(conf: str, index: int, ports: list[tuple[int, int, int]], tls: Path, data: Path):
    """Server `index`'s nats.conf with the pod's paths, ports and route hosts made local."""
    client, route, monitor = ports[index]
    conf = conf.replace(f"{TLS_DIR_IN_POD}/", f"{tls}/")
    conf = replace_once(conf, "store_dir: /data/jetstream", f"store_dir: {data}")
    conf = replace_once(conf, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{client}")
    conf = replace_once(conf, "listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route}")
    conf = replace_once(conf, "http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor}")
    for peer, (_, peer_route, _) in enumerate(ports):
        host = f"{NAME}-{peer}.{NAME}-headless.medcloud.svc"
        conf = replace_once(conf, f"nats://{host}:6222", f"nats://localhost:{peer_route}")
    return conf


def password(service: str) -> str:
    return f"password-of-{service}"


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> RegionPki:
    return RegionPki(tmp_path_factory.mktemp("pki"), "conghua")


@pytest.fixture(scope="module")
def servers(region, tmp_path_factory) -> list[Server]:
    """Three servers' configurations and environments, as the StatefulSet would give them."""
    work = tmp_path_factory.mktemp("nats")
    tls = work / "tls"
    tls.mkdir()
    # The Secret docs/helm.md describes, plus localhost for the routes this test dials.
    files = nats_certificate(region.authority, "medcloud", "medcloud", [x509.DNSName("localhost")])
    for key, content in files.items():
        (tls / key).write_bytes(content)
    (tls / "tls.key").chmod(0o600)
    conf = rendered_conf()
    ports = [(free_port(), free_port(), free_port()) for _ in range(REPLICAS)]
    servers = []
    for index, (client, route, monitor) in enumerate(ports):
        path = work / f"nats-{index}.conf"
        path.write_text(local_conf(conf, index, ports, tls, work / f"data-{index}"))
        env = {
            **os.environ,
            "POD_NAME": f"{NAME}-{index}",
            "CLUSTER_ADVERTISE": f"localhost:{route}",
            **{f"PASSWORD_{service.upper()}": password(service) for service in SERVICES},
        }
        log = work / f"nats-{index}.log"
        servers.append(Server(f"{NAME}-{index}", client, route, monitor, path, log, env))
    return servers


@pytest.fixture(scope="module")
def running(servers) -> Iterator[list[Server]]:
    """The three servers, each healthy (JetStream has a meta leader, so the routes are up)."""
    processes = [
        ManagedProcess(
            server.name, [str(find_nats_server()), "-c", str(server.conf)], server.log, server.env
        )
        for server in servers
    ]
    try:
        for process in processes:
            process.start()
        for server, process in zip(servers, processes, strict=True):
            process.wait_until_healthy(lambda s=server: healthy(s), 60)
        yield servers
    finally:
        for process in processes:
            process.stop()


def healthy(server: Server) -> bool:
    try:
        return server.monitor("healthz").get("status") == "ok"
    except (OSError, ValueError):
        return False


def test_every_servers_configuration_is_valid(servers):
    for server in servers:
        result = subprocess.run(
            [str(find_nats_server()), "-t", "-c", str(server.conf)],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert "is valid" in result.stdout + result.stderr


def test_clients_and_routes_must_present_a_certificate(running):
    for server in running:
        varz = server.monitor("varz")  # plain HTTP: the probes need no certificate
        assert varz["tls_required"] is True
        assert varz["tls_verify"] is True
        assert varz["cluster"]["tls_required"] is True
        assert varz["cluster"]["tls_verify"] is True
        # Clients are told of no pod addresses, which their certificate check would refuse.
        assert varz.get("connect_urls", []) == []


def test_the_servers_route_to_each_other_over_tls(running):
    names = {server.name for server in running}
    for server in running:
        routez = server.monitor("routez")
        assert {route["remote_name"] for route in routez["routes"]} == names - {server.name}


def service_tls(region: RegionPki, service: str) -> ssl.SSLContext:
    """What runtime.service hands the NATS client: the region's CA, the service's certificate."""
    return region.issue(service, (SERVICE,)).material().client_ssl_context()


async def test_a_service_publishes_to_a_stream_replicated_on_every_server(running, region):
    url = urlsplit(services_nats_url())
    assert url.scheme == "tls"
    client = await nats.connect(
        f"tls://127.0.0.1:{running[0].client_port}",
        tls=service_tls(region, "inventory"),
        tls_hostname=url.hostname,  # the Service name the certificate must carry
        user="inventory",
        password=password("inventory"),
        allow_reconnect=False,
        connect_timeout=5,
    )
    try:
        stream = client.jetstream()
        config = StreamConfig(
            name="CHART_TLS_CHECK", subjects=["medcloud.conghua.inventory.>"], num_replicas=3
        )
        await stream.add_stream(config)
        ack = await stream.publish("medcloud.conghua.inventory.checked", b"over tls")
        assert ack.seq == 1
        info = await stream.stream_info("CHART_TLS_CHECK")
        assert info.cluster is not None
        placed = {info.cluster.leader, *(peer.name for peer in info.cluster.replicas or [])}
        assert placed == {server.name for server in running}
    finally:
        await client.close()


@pytest.mark.parametrize("who", ["no certificate", "another region's certificate"])
async def test_a_client_without_the_regions_certificate_is_refused(running, region, who, tmp_path):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(region.ca_path))
    if who != "no certificate":
        stranger = RegionPki(tmp_path, "elsewhere").issue("inventory", (SERVICE,))
        context.load_cert_chain(stranger.cert, stranger.key)
    server = running[0]
    before = server.log.read_text().count("TLS handshake error")
    # The server ends the handshake (an alert, or a broken pipe): the client sees an OSError.
    with pytest.raises(OSError):
        client = await nats.connect(
            f"tls://127.0.0.1:{server.client_port}",
            tls=context,
            tls_hostname=urlsplit(services_nats_url()).hostname,
            user="inventory",
            password=password("inventory"),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )
        await client.close()
    assert server.log.read_text().count("TLS handshake error") > before
