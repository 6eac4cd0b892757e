"""Control-plane snapshots against a real etcd (TLS and authentication on): what is saved restores
into a fresh etcd with every key, and a damaged or partial snapshot is never restored."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aetcd import rpc
from aetcd.rpc import rpc_pb2_grpc

from medcloud.backup.adapters.etcd_snapshots import EtcdSnapshotStore, restore_snapshot
from medcloud.core.errors import FailedPrecondition, Unavailable
from medcloud.devstack.processes import StackError, free_port
from medcloud.devstack.servers import EtcdServer
from medcloud.runtime.etcd_access import prefix_range, store_prefix
from medcloud.runtime.store import EtcdStore
from tests.support.identities import connect_store, etcd_security, identity

pytestmark = pytest.mark.integration


class RawBytes:
    """Stores values as they are, so binary values travel untouched."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        return data


# What each service keeps, by kind: how many keys, and whether their values are binary.
LAYOUT = {
    "inventory": {"hosts": (220, False), "blobs": (40, True)},
    "security": {"records": (160, True), "keys": (30, False)},
}


def value_of(service: str, kind: str, number: int, binary: bool) -> bytes:
    if binary:  # every byte value, NULs and invalid UTF-8 included
        return bytes((number + k) % 256 for k in range(64 + number % 300)) + os.urandom(16)
    return f"{service}/{kind}/{number}: {'x' * (number % 50)}".encode()


def snapshot_store(endpoint: str, directory: Path, prefix: str = "tests") -> EtcdSnapshotStore:
    return EtcdSnapshotStore(endpoint, etcd_security().root.material(), directory, prefix)


def flip_a_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x01]))


async def keys_under(endpoint: str, prefix: str) -> dict[bytes, bytes]:
    """Every key under `prefix` and its value, read as root (so nothing is hidden by a role)."""
    key, range_end = prefix_range(prefix)
    credentials = etcd_security().root.material().channel_credentials()
    async with grpc.aio.secure_channel(endpoint, credentials) as channel:
        reply = await rpc.KVStub(channel).Range(
            rpc.RangeRequest(key=key, range_end=range_end), timeout=10
        )
    return {kv.key: kv.value for kv in reply.kvs}


async def fill(store: EtcdStore, service: str) -> tuple[dict[str, dict[str, bytes]], int]:
    """Writes the service's keys, rewrites some and deletes one; returns what is left and the
    revision of the last write."""
    expected: dict[str, dict[str, bytes]] = {}
    last_revision = 0
    for kind, (count, binary) in LAYOUT[service].items():
        collection = store.collection(kind, RawBytes())
        values = {f"{kind}-{n}": value_of(service, kind, n, binary) for n in range(count)}
        written = await asyncio.gather(*(collection.create(i, v) for i, v in values.items()))
        last_revision = max(last_revision, *(w.mod_revision for w in written))
        rewritten = await collection.update(f"{kind}-1", lambda old: old + b"\x00rewritten")
        values[f"{kind}-1"] = rewritten.value
        last_revision = max(last_revision, rewritten.mod_revision)
        expected[kind] = values
    gone = store.collection("hosts" if service == "inventory" else "records", RawBytes())
    await gone.create("gone", b"deleted before the snapshot")
    assert await gone.delete("gone")
    return expected, last_revision


@pytest.fixture
async def restored_servers() -> AsyncIterator[list[EtcdServer]]:
    servers: list[EtcdServer] = []
    yield servers
    for server in servers:
        server.stop()


async def test_the_control_planes_etcd_snapshot_restores_into_a_fresh_etcd_with_every_key_intact(
    etcd_server, region, tmp_path, restored_servers
):
    expected: dict[str, dict[str, dict[str, bytes]]] = {}
    raw_before: dict[str, dict[bytes, bytes]] = {}
    last_revision = 0
    for service in LAYOUT:
        store = await connect_store(etcd_server.endpoint, region, service)
        expected[service], revision = await fill(store, service)
        last_revision = max(last_revision, revision)
        await store.close()
        raw_before[service] = await keys_under(etcd_server.endpoint, store_prefix(region, service))
    assert sum(len(keys) for keys in raw_before.values()) == sum(
        count for kinds in LAYOUT.values() for count, _ in kinds.values()
    )

    snapshots = snapshot_store(etcd_server.endpoint, tmp_path / "object-store", region)
    info = await snapshots.save()

    assert info.revision >= last_revision
    assert info.path == tmp_path / "object-store" / f"{info.name}.db"
    assert info.name.startswith(f"{region}-") and info.name.endswith(f"-rev{info.revision}")
    assert info.size_bytes == info.path.stat().st_size > 0
    assert snapshots.list() == [info]
    assert snapshots.verify(info)

    peer_port = free_port()
    data_dir = tmp_path / "restored" / "data"
    restore_snapshot(info.path, data_dir, peer_url=f"http://127.0.0.1:{peer_port}")
    restored = EtcdServer(
        data_dir,
        tmp_path / "restored" / "etcd.log",
        security=etcd_security(),
        peer_port=peer_port,
    )
    restored_servers.append(restored)
    restored.start()  # users and roles came back with the data: authentication is already on

    for service, kinds in expected.items():
        store = await connect_store(restored.endpoint, region, service)
        try:
            for kind, values in kinds.items():
                items = await store.collection(kind, RawBytes()).list()
                assert {item.id: item.value for item in items} == values, (service, kind)
            gone = store.collection("hosts" if service == "inventory" else "records", RawBytes())
            assert await gone.get("gone") is None
        finally:
            await store.close()
        assert (
            await keys_under(restored.endpoint, store_prefix(region, service))
            == raw_before[service]
        )


async def test_a_corrupted_snapshot_is_refused_by_restore_naming_the_sha256_mismatch(
    etcd_server, tmp_path
):
    snapshots = snapshot_store(etcd_server.endpoint, tmp_path / "object-store")
    info = await snapshots.save()
    flip_a_byte(info.path, info.size_bytes // 2)

    assert not snapshots.verify(info)
    data_dir = tmp_path / "restored"
    with pytest.raises(FailedPrecondition, match="sha256 mismatch") as refused:
        restore_snapshot(info, data_dir)
    assert info.sha256 in str(refused.value)
    with pytest.raises(FailedPrecondition, match="sha256 mismatch"):
        restore_snapshot(info.path, data_dir)  # by path: checked against its sidecar
    assert not data_dir.exists()


async def test_prune_keeps_the_newest_snapshots(etcd_server, tmp_path):
    snapshots = snapshot_store(etcd_server.endpoint, tmp_path)
    saved = [await snapshots.save() for _ in range(4)]
    newest_first = saved[::-1]
    assert snapshots.list() == newest_first

    assert snapshots.prune(keep=2, max_age_seconds=3600) == []  # all too young to go
    assert snapshots.list() == newest_first

    deleted = snapshots.prune(keep=2, max_age_seconds=0)

    assert deleted == newest_first[2:]
    assert snapshots.list() == newest_first[:2]
    for info in deleted:
        assert not info.path.exists() and not info.path.with_suffix(".json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        name for info in newest_first[:2] for name in (info.path.name, f"{info.name}.json")
    )
    assert snapshots.prune(keep=1, max_age_seconds=0) == newest_first[1:2]
    assert snapshots.list() == newest_first[:1]


async def test_only_a_snapshot_with_its_sidecar_and_its_recorded_size_is_listed(
    etcd_server, tmp_path
):
    snapshots = snapshot_store(etcd_server.endpoint, tmp_path)
    whole, truncated, orphaned = [await snapshots.save() for _ in range(3)]
    os.truncate(truncated.path, truncated.size_bytes - 1)
    orphaned.path.with_suffix(".json").unlink()
    other_region = snapshot_store(etcd_server.endpoint, tmp_path, prefix="tests-other")
    await other_region.save()

    assert snapshots.list() == [whole]


async def test_a_save_from_an_unreachable_etcd_raises_unavailable_and_leaves_no_file(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    snapshots = snapshot_store(endpoint, tmp_path)

    with pytest.raises(Unavailable, match=re.escape(endpoint)):
        await snapshots.save()
    assert list(tmp_path.iterdir()) == []
    assert snapshots.list() == []


async def test_a_save_by_a_user_without_etcds_root_role_is_refused_and_leaves_no_file(
    etcd_server, tmp_path
):
    snapshots = EtcdSnapshotStore(
        etcd_server.endpoint, identity("inventory").material(), tmp_path, "tests"
    )

    with pytest.raises(FailedPrecondition, match=r"PERMISSION_DENIED .*root role"):
        await snapshots.save()
    assert list(tmp_path.iterdir()) == []


async def test_restore_names_a_missing_etcdutl(etcd_server, tmp_path, monkeypatch):
    info = await snapshot_store(etcd_server.endpoint, tmp_path / "object-store").save()
    monkeypatch.setenv("MEDCLOUD_ETCDUTL_BIN", str(tmp_path / "no-such-etcdutl"))

    with pytest.raises(StackError, match=r"^etcdutl: binary not found at .*no-such-etcdutl"):
        restore_snapshot(info, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


class CutShortEtcd(rpc_pb2_grpc.MaintenanceServicer):
    """An etcd whose snapshot stream breaks after a few chunks: with an error, or silently."""

    def __init__(self, with_error: bool) -> None:
        self.with_error = with_error

    async def Status(self, request, context):  # type: ignore[no-untyped-def]
        return rpc.StatusResponse(header=rpc.ResponseHeader(revision=42))

    async def Snapshot(self, request, context):  # type: ignore[no-untyped-def]
        for sent in range(1, 4):
            yield rpc.SnapshotResponse(remaining_bytes=(10 - sent) * 4096, blob=b"b" * 4096)
        if self.with_error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "etcd went away mid-stream")


@pytest.mark.parametrize(
    ("with_error", "cause"),
    [(True, "etcd went away mid-stream"), (False, "stream ended early")],
)
async def test_a_snapshot_cut_short_raises_unavailable_and_leaves_no_file(
    tmp_path, with_error, cause
):
    server = grpc.aio.server()
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(CutShortEtcd(with_error), server)
    port = server.add_secure_port(
        "127.0.0.1:0", identity("etcd-cut-short", ()).material().server_credentials()
    )
    await server.start()
    try:
        endpoint = f"127.0.0.1:{port}"
        snapshots = snapshot_store(endpoint, tmp_path)
        with pytest.raises(Unavailable, match=cause) as failed:
            await snapshots.save()
        assert endpoint in str(failed.value)
    finally:
        await server.stop(None)
    assert list(tmp_path.iterdir()) == []
    assert snapshots.list() == []
