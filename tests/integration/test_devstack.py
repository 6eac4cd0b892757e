"""The local stack runner: real servers start, and failures say which component and why."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcloud.devstack.processes import StackError
from medcloud.devstack.servers import EtcdServer, NatsServer
from medcloud.devstack.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("component", "start"),
    [
        (
            "etcd",
            lambda tmp, port: EtcdServer(tmp / "data", tmp / "etcd.log", client_port=port).start(),
        ),
        (
            "nats",
            lambda tmp, port: NatsServer(tmp / "store", tmp / "nats.log", client_port=port).start(),
        ),
    ],
)
def test_an_occupied_port_is_named_with_its_component(tmp_path, component, start):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(
            StackError, match=rf"^{component}: port {port} on 127.0.0.1 is already in use"
        ):
            start(tmp_path, port)


def test_a_missing_nats_binary_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCLOUD_NATS_SERVER_BIN", str(tmp_path / "no-such-nats-server"))
    with pytest.raises(StackError, match=r"^nats: binary not found at .*no-such-nats-server"):
        NatsServer(tmp_path / "store", tmp_path / "nats.log")


def test_a_missing_etcd_binary_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCLOUD_ETCD_BIN", str(tmp_path / "no-such-etcd"))
    with pytest.raises(StackError, match=r"^etcd: binary not found at .*no-such-etcd"):
        EtcdServer(tmp_path / "data", tmp_path / "etcd.log")


def test_etcd_exiting_during_start_up_is_reported_with_its_log_not_a_hang(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.write_text("a file where etcd wants a directory")
    server = EtcdServer(data_dir, tmp_path / "etcd.log", startup_timeout_seconds=60)
    started = time.monotonic()
    with pytest.raises(
        StackError, match=r"^etcd exited with code \d+ during start-up; last lines of"
    ):
        server.start()
    assert time.monotonic() - started < 30  # fails on exit, not on the start-up timeout


def test_the_stack_starts_etcd_nats_and_the_region_clusters_and_stops_them(tmp_path):
    stack = LocalStack(tmp_path, region="panyu", services=())
    stack.start()
    try:
        assert stack.etcd.running and stack.nats.running
        assert [c.name for c in stack.clusters] == [
            "management",
            "hospital-private",
            "carrier-public",
        ]
        assert stack.environment()["MEDCLOUD_ETCD_ENDPOINT"] == stack.etcd.endpoint
        assert stack.crashed() == []
        contexts = subprocess.run(
            [
                str(Path(sys.executable).parent / "kubectl"),
                "--kubeconfig",
                str(stack.kubeconfig),
                "config",
                "get-contexts",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert contexts == ["carrier-public", "hospital-private", "management"]
    finally:
        stack.stop()
    assert not stack.etcd.running and not stack.nats.running
    assert not any(c.running for c in stack.clusters)


def test_devstack_command_comes_up_and_stops_cleanly_on_ctrl_c(tmp_path):
    command = [str(Path(sys.executable).parent / "medcloud-devstack"), "--work-dir", str(tmp_path)]
    runner = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )
    lines = []
    deadline = time.monotonic() + 300  # the clusters, five services, the operator, the examples
    while time.monotonic() < deadline:
        line = runner.stdout.readline()
        lines.append(line)
        if "Ctrl-C stops everything" in line or not line:
            break
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    text = "".join(lines) + out
    assert runner.returncode == 0, err
    assert "medcloud-devstack: ready" in text
    assert "export MEDCLOUD_ETCD_ENDPOINT=127.0.0.1:" in text
    assert "export KUBECONFIG=" in text
    assert "inventory: registered annex A's reference region" in text
    assert "topology: compliant with clause 7 and annex A" in text
    # The main job: the example hospital applied and reconciled by the operator.
    assert "HospitalSite hospital-central/central is Ready" in text
    assert re.search(r"Ready +True +AllStepsSucceeded", text), text
    assert re.search(r"Placed +True +Placed: 10 systems placed", text), text
    assert re.search(r"placed his +placed +in ", text), text
    assert "medcloud-devstack: stopped" in text
    assert _processes_mentioning(str(tmp_path)) == [], "a child process outlived the runner"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="ignore"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return found
