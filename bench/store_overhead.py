"""Store overhead: transactional writes/s through medcloud's etcd store divided by plain aetcd
puts/s, same etcd, same value size, same run. Prints figures; asserts nothing.

- guarded write: one etcd Txn that writes only if the key is still at the revision read before
  (`Collection.create`, and the commit of every read-modify-write);
- plain aetcd guarded Txn: the same transaction sent through aetcd directly, which separates the
  cost of etcd's transaction path from the store's own work;
- read-modify-write: `Collection.update`, a read then a guarded write (two round trips), retried on a
  lost race."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aetcd
from google.protobuf import wrappers_pb2

from medcloud.devstack.servers import EtcdServer
from medcloud.runtime.config import HostPort
from medcloud.runtime.store import EtcdStore, ProtobufCodec

WRITES = 2000
ROUNDS = 3
VALUE = wrappers_pb2.StringValue(value="x" * 200)


async def _rate(write: Callable[[int], Awaitable[object]], workers: int) -> float:
    per_worker = WRITES // workers

    async def worker(offset: int) -> None:
        for i in range(per_worker):
            await write(offset * per_worker + i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return per_worker * workers / (time.perf_counter() - started)


async def _plain_guarded_put(client: aetcd.Client, prefix: bytes, i: int, data: bytes) -> None:
    """The same etcd Txn the store sends (put if absent), through aetcd directly."""
    key = prefix + b"txn/" + str(i).encode()
    await client.transaction(
        compare=[client.transactions.mod(key) == 0],
        success=[aetcd.transactions.Put(key, data)],
        failure=[],
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        etcd = EtcdServer(Path(work) / "data", Path(work) / "etcd.log")
        etcd.start()
        endpoint = HostPort.parse(etcd.endpoint)
        plain = aetcd.Client(host=endpoint.host, port=endpoint.port)
        store = await EtcdStore.connect(endpoint, "bench", "inventory")
        data = VALUE.SerializeToString()
        try:
            print(f"etcd: {etcd.origin}")
            for workers in (1, 16):
                puts, plain_txns, guarded, updates = [], [], [], []
                for round_ in range(ROUNDS):  # interleaved so machine noise hits all alike
                    things = store.collection(
                        f"w{workers}r{round_}", ProtobufCodec(wrappers_pb2.StringValue)
                    )
                    prefix = f"/plain/w{workers}r{round_}/".encode()
                    puts.append(
                        await _rate(
                            lambda i, p=prefix: plain.put(p + str(i).encode(), data), workers
                        )
                    )
                    plain_txns.append(
                        await _rate(
                            lambda i, p=prefix: _plain_guarded_put(plain, p, i, data), workers
                        )
                    )
                    guarded.append(
                        await _rate(lambda i, c=things: c.create(str(i), VALUE), workers)
                    )
                    updates.append(
                        await _rate(lambda i, c=things: c.update(str(i), lambda v: VALUE), workers)
                    )
                best_put = max(puts)
                print(
                    f"store, {workers} concurrent writer(s), {WRITES} writes, best of {ROUNDS}:\n"
                    f"  plain aetcd put                  {best_put:8.0f} writes/s\n"
                    f"  plain aetcd guarded Txn          {max(plain_txns):8.0f} writes/s\n"
                    f"  medcloud guarded write (Txn)     {max(guarded):8.0f} writes/s"
                    f"   ratio {max(guarded) / best_put:.2f} (goal >= 0.8)\n"
                    f"  medcloud read-modify-write       {max(updates):8.0f} writes/s"
                    f"   ratio {max(updates) / best_put:.2f} (two round trips)",
                    flush=True,
                )
        finally:
            await store.close()
            await plain.close()
            etcd.stop()


if __name__ == "__main__":
    asyncio.run(main())
