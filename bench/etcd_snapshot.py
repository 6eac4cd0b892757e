"""Control-plane snapshot figures against a real etcd (mutual TLS, authentication on, as deployed):
an etcd holding 100,000 keys of 1 KiB, written as root in plain etcd transactions of 128 puts
(etcd's default --max-txn-ops), then

- save: the Maintenance.Snapshot stream into the object store (a directory), fsynced, hashed and
  renamed, as the backup service takes it: seconds and MB/s of snapshot file;
- restore: `etcdutl snapshot restore` of that file into a fresh data directory, and the time until
  an etcd started on it answers with every key.

Prints figures; asserts nothing."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import grpc
from aetcd import rpc

from medcloud.backup.adapters.etcd_snapshots import EtcdSnapshotStore, restore_snapshot
from medcloud.devstack.pki import RegionPki
from medcloud.devstack.processes import free_port
from medcloud.devstack.servers import EtcdSecurity, EtcdServer
from medcloud.runtime.etcd_access import prefix_range
from medcloud.runtime.tls import TlsMaterial

KEYS = 100_000
VALUE_BYTES = 1024
PER_TXN = 128
WRITERS = 8
PREFIX = "/medcloud/bench/inventory/"


async def _fill(endpoint: str, root: TlsMaterial) -> float:
    """Writes KEYS keys in transactions of PER_TXN puts from WRITERS concurrent writers; seconds."""
    value = b"v" * VALUE_BYTES
    batches = [range(start, min(start + PER_TXN, KEYS)) for start in range(0, KEYS, PER_TXN)]
    async with grpc.aio.secure_channel(endpoint, root.channel_credentials()) as channel:
        kv = rpc.KVStub(channel)

        async def writer(mine: list[range]) -> None:
            for batch in mine:
                puts = [
                    rpc.RequestOp(
                        request_put=rpc.PutRequest(key=f"{PREFIX}k{n:07d}".encode(), value=value)
                    )
                    for n in batch
                ]
                await kv.Txn(rpc.TxnRequest(success=puts), timeout=30)

        started = time.perf_counter()
        await asyncio.gather(*(writer(batches[w::WRITERS]) for w in range(WRITERS)))
        return time.perf_counter() - started


async def _count(endpoint: str, root: TlsMaterial) -> int:
    key, range_end = prefix_range(PREFIX)
    async with grpc.aio.secure_channel(endpoint, root.channel_credentials()) as channel:
        reply = await rpc.KVStub(channel).Range(
            rpc.RangeRequest(key=key, range_end=range_end, count_only=True), timeout=30
        )
    return reply.count


async def main() -> None:
    with tempfile.TemporaryDirectory() as work_name:
        work = Path(work_name)
        security = EtcdSecurity.issued_by(RegionPki(work / "pki", "bench"))
        root = security.root.material()
        etcd = EtcdServer(work / "etcd", work / "etcd.log", security=security)
        etcd.start()
        try:
            seconds = await _fill(etcd.endpoint, root)
            mib = KEYS * VALUE_BYTES / 2**20
            print(
                f"fill: {KEYS:,} keys of {VALUE_BYTES} B ({mib:.0f} MiB of values) in "
                f"{seconds:.1f} s, transactions of {PER_TXN} puts, {WRITERS} writers"
            )
            store = EtcdSnapshotStore(etcd.endpoint, root, work / "object-store", "bench")
            started = time.perf_counter()
            info = await store.save()
            seconds = time.perf_counter() - started
            size_mb = info.size_bytes / 1e6
            print(
                f"snapshot save: {size_mb:.1f} MB in {seconds:.2f} s = {size_mb / seconds:.0f} MB/s "
                f"(streamed over mutual TLS, fsynced, sha256, revision {info.revision})"
            )
        finally:
            etcd.stop()

        started = time.perf_counter()
        intact = store.verify(info)
        print(f"verify (sha256 of the file): {time.perf_counter() - started:.2f} s (ok: {intact})")

        peer_port = free_port()
        data_dir = work / "restored" / "data"
        started = time.perf_counter()
        restore_snapshot(info, data_dir, peer_url=f"http://127.0.0.1:{peer_port}")
        restore_seconds = time.perf_counter() - started
        print(
            f"snapshot restore (etcdutl, sha256 checked first): {restore_seconds:.2f} s "
            f"= {size_mb / restore_seconds:.0f} MB/s"
        )
        restored = EtcdServer(
            data_dir, work / "restored" / "etcd.log", security=security, peer_port=peer_port
        )
        started = time.perf_counter()
        restored.start()
        try:
            count = await _count(restored.endpoint, root)
            serving_seconds = time.perf_counter() - started
            print(
                f"restored etcd serving: started and counted {count:,} keys in "
                f"{serving_seconds:.2f} s (restore to serving: "
                f"{restore_seconds + serving_seconds:.2f} s)"
            )
        finally:
            restored.stop()


if __name__ == "__main__":
    asyncio.run(main())
