"""State in etcd v3: typed collections under the service's key prefix, optimistic multi-key
transactions on mod_revision, ordered watches that survive reconnects, and leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import aetcd
import aetcd.exceptions
import grpc
from aetcd import rpc
from google.protobuf.message import Message

from medcloud.core.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from medcloud.runtime.config import HostPort
from medcloud.runtime.etcd_access import etcd_client, store_prefix
from medcloud.runtime.tls import TlsMaterial

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=Message)


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class ProtobufCodec(Generic[M]):
    """Stores protobuf messages in their binary wire form."""

    def __init__(self, message_type: type[M]) -> None:
        self._type = message_type

    def encode(self, value: M) -> bytes:
        return value.SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> M:
        return self._type.FromString(data)


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A stored value with the etcd revisions that guard the next write to it."""

    id: str
    value: T
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class Committed(Generic[R]):
    """What a transaction's step returned, and the etcd revision its writes landed at."""

    result: R
    revision: int


@dataclass(frozen=True)
class Change(Generic[T]):
    """One change seen by a watch: `value` is None for a deletion."""

    id: str
    value: T | None
    revision: int

    @property
    def deleted(self) -> bool:
        return self.value is None


def _translate(error: grpc.aio.AioRpcError, what: str) -> Exception:
    return Unavailable(f"etcd {what} failed: {error.code().name} {error.details()}")


# gRPC's default reconnect backoff grows to two minutes; a control plane whose etcd restarted
# should be back within seconds.
_RECONNECT_QUICKLY = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
}


class EtcdStore:
    """One service's view of etcd: keys `/medcloud/<region>/<service>/<kind>/<id>`."""

    def __init__(
        self, client: aetcd.Client, region: str, service: str, request_timeout_seconds: float = 5.0
    ) -> None:
        self._client = client
        self.prefix = store_prefix(region, service)
        self._timeout = request_timeout_seconds

    @classmethod
    async def connect(
        cls,
        endpoint: HostPort,
        region: str,
        service: str,
        tls: TlsMaterial | None = None,
        request_timeout_seconds: float = 5.0,
        wait_seconds: float = 5.0,
    ) -> EtcdStore:
        """Connects and proves etcd answers, so a service fails at start-up rather than on first
        use; an etcd that is still coming up gets `wait_seconds` to answer. With `tls`, the
        certificate's common name is the etcd user (see etcd_access)."""
        client = etcd_client(
            endpoint.host, endpoint.port, tls, request_timeout_seconds, _RECONNECT_QUICKLY
        )
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            try:
                await client.status()
                return cls(client, region, service, request_timeout_seconds)
            except (aetcd.exceptions.ClientError, grpc.aio.AioRpcError, OSError) as error:
                if asyncio.get_running_loop().time() >= deadline:
                    await client.close()
                    raise Unavailable(f"cannot reach etcd at {endpoint}: {error}") from error
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self._client.close()

    def collection(self, kind: str, codec: Codec[T]) -> Collection[T]:
        return Collection(self, kind, codec)

    async def _kv(self) -> aetcd.Client:
        await self._client.connect()
        return self._client

    async def _range(
        self, key: bytes, range_end: bytes | None = None, limit: int = 0
    ) -> rpc.RangeResponse:
        client = await self._kv()
        request = rpc.RangeRequest(key=key, range_end=range_end or b"", limit=limit)
        try:
            return await client.kvstub.Range(
                request, timeout=self._timeout, metadata=client.metadata
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "read") from error

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        client = await self._kv()
        try:
            return await client.kvstub.Txn(request, timeout=self._timeout, metadata=client.metadata)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, "transaction") from error

    async def transact(
        self, step: Callable[[Transaction], Awaitable[R]], max_attempts: int = 10
    ) -> Committed[R]:
        """Runs `step` as one optimistic transaction over any keys it reads and writes: the writes
        land only if nothing it read changed meanwhile; otherwise `step` runs again on fresh data.
        A race lost `max_attempts` times raises ConcurrencyConflict (gRPC ABORTED)."""
        for attempt in range(1, max_attempts + 1):
            transaction = Transaction(self)
            result = await step(transaction)
            if await transaction.commit():
                return Committed(result, transaction.revision)
            log.debug("transaction lost a race", extra={"attempt": attempt})
            await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise ConcurrencyConflict(
            f"gave up after {max_attempts} attempts: the objects kept changing concurrently"
        )

    async def grant_lease(self, ttl_seconds: int) -> KeptLease:
        """A lease kept alive by a background task until `revoke()`; keys written with it vanish
        when the process dies."""
        client = await self._kv()
        try:
            lease = await client.lease(ttl_seconds)
        except aetcd.exceptions.ClientError as error:
            raise Unavailable(f"cannot grant an etcd lease: {error}") from error
        kept = KeptLease(lease.id, ttl_seconds, client)
        kept.start()
        return kept


class Transaction:
    """Reads record the revision they saw; writes are buffered and applied all-or-nothing."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._read_revisions: dict[bytes, int] = {}
        self._ops: dict[bytes, rpc.RequestOp] = {}
        self._range_guards: list[tuple[bytes, bytes, int]] = []
        self.revision = 0

    async def get(self, collection: Collection[T], object_id: str) -> Versioned[T] | None:
        key = collection.key(object_id)
        response = await self._store._range(key)
        if not response.kvs:
            self._read_revisions.setdefault(key, 0)
            return None
        kv = response.kvs[0]
        self._read_revisions.setdefault(key, kv.mod_revision)
        return collection._versioned(kv)

    async def scan(self, collection: Collection[T]) -> list[Versioned[T]]:
        """Reads every object of a kind; the commit fails if any of them changed or a new one
        appeared meanwhile (an object deleted meanwhile goes unnoticed)."""
        items, revision = await collection.snapshot()
        prefix = collection.key_prefix
        self._range_guards.append((prefix, aetcd.utils.prefix_range_end(prefix), revision))
        return items

    def put(self, collection: Collection[T], object_id: str, value: T, lease_id: int = 0) -> None:
        key = collection.key(object_id)
        self._ops[key] = rpc.RequestOp(
            request_put=rpc.PutRequest(
                key=key, value=collection.codec.encode(value), lease=lease_id
            )
        )

    def delete(self, collection: Collection[T], object_id: str) -> None:
        key = collection.key(object_id)
        self._ops[key] = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))

    def expect_revision(self, collection: Collection[T], object_id: str, mod_revision: int) -> None:
        """Adds a guard from an earlier read (0: the key must not exist)."""
        self._read_revisions[collection.key(object_id)] = mod_revision

    async def commit(self) -> bool:
        if not self._ops:
            return True
        compare = [
            rpc.Compare(
                key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision
            )
            for key, revision in self._read_revisions.items()
        ]
        compare += [
            rpc.Compare(
                key=start,
                range_end=end,
                target=rpc.Compare.MOD,
                result=rpc.Compare.LESS,
                mod_revision=revision + 1,
            )
            for start, end, revision in self._range_guards
        ]
        response = await self._store._txn(
            rpc.TxnRequest(compare=compare, success=list(self._ops.values()))
        )
        self.revision = response.header.revision
        return response.succeeded


class Collection(Generic[T]):
    """Objects of one kind, stored under `<prefix><kind>/<id>`."""

    def __init__(self, store: EtcdStore, kind: str, codec: Codec[T]) -> None:
        self._store = store
        self.kind = kind
        self.codec = codec
        self.key_prefix = f"{store.prefix}{kind}/".encode()

    def key(self, object_id: str) -> bytes:
        if not object_id or "/" in object_id:
            raise InvalidArgument.single(
                "id", f"{self.kind} id {object_id!r} must be non-empty without '/'"
            )
        return self.key_prefix + object_id.encode()

    def _id_of(self, key: bytes) -> str:
        return key[len(self.key_prefix) :].decode()

    async def get(self, object_id: str) -> Versioned[T] | None:
        response = await self._store._range(self.key(object_id))
        if not response.kvs:
            return None
        return self._versioned(response.kvs[0])

    async def require(self, object_id: str) -> Versioned[T]:
        found = await self.get(object_id)
        if found is None:
            raise NotFound(self.kind, object_id)
        return found

    async def list(self) -> list[Versioned[T]]:
        return (await self.snapshot())[0]

    async def snapshot(self) -> tuple[list[Versioned[T]], int]:
        """Every object of this kind, in id order, and the etcd revision they were read at (a
        watch from revision + 1 then misses nothing)."""
        response = await self._store._range(
            self.key_prefix, aetcd.utils.prefix_range_end(self.key_prefix)
        )
        return [self._versioned(kv) for kv in response.kvs], response.header.revision

    async def page(self, start_after: str, limit: int) -> list[Versioned[T]]:
        """At most `limit` objects in id order, after the id `start_after` ("" for the first)."""
        start = self.key(start_after) + b"\0" if start_after else self.key_prefix
        response = await self._store._range(
            start, aetcd.utils.prefix_range_end(self.key_prefix), limit=limit
        )
        return [self._versioned(kv) for kv in response.kvs]

    def _versioned(self, kv: rpc.KeyValue) -> Versioned[T]:
        return Versioned(
            self._id_of(kv.key), self.codec.decode(kv.value), kv.mod_revision, kv.create_revision
        )

    async def create(self, object_id: str, value: T, lease_id: int = 0) -> Versioned[T]:
        """Stores a new object; ALREADY_EXISTS if the id is taken."""
        transaction = Transaction(self._store)
        transaction.expect_revision(self, object_id, 0)
        transaction.put(self, object_id, value, lease_id)
        if not await transaction.commit():
            raise AlreadyExists(self.kind, object_id)
        return Versioned(object_id, value, transaction.revision, transaction.revision)

    async def update(
        self, object_id: str, change: Callable[[T], T], max_attempts: int = 10
    ) -> Versioned[T]:
        """Read-modify-write: applies `change` to the current value and retries on a lost race."""

        async def step(transaction: Transaction) -> tuple[T, int]:
            current = await transaction.get(self, object_id)
            if current is None:
                raise NotFound(self.kind, object_id)
            updated = change(current.value)
            transaction.put(self, object_id, updated)
            return updated, current.create_revision

        committed = await self._store.transact(step, max_attempts)
        updated, create_revision = committed.result
        return Versioned(object_id, updated, committed.revision, create_revision)

    async def delete(self, object_id: str) -> bool:
        """Deletes the object; returns False if it was gone already (not an error)."""
        op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self.key(object_id)))
        response = await self._store._txn(rpc.TxnRequest(success=[op]))
        return response.responses[0].response_delete_range.deleted > 0

    async def watch(self, start_revision: int | None = None) -> AsyncIterator[Change[T]]:
        """Every change to this kind, in revision order, from `start_revision` (default: now).
        A dropped connection re-opens the watch from the last seen revision + 1, so no change is
        missed or repeated; a compacted start revision raises, and the caller must re-list."""
        next_revision = start_revision
        while True:
            client = await self._store._kv()
            try:
                watch = await client.watch_prefix(self.key_prefix, start_revision=next_revision)
                async for event in watch:
                    revision = event.kv.mod_revision
                    next_revision = revision + 1
                    value = None if event.kind == "DELETE" else self.codec.decode(event.kv.value)
                    yield Change(self._id_of(event.kv.key), value, revision)
            # Over TLS a stopping etcd resets the stream (INTERNAL, "Stream removed") rather than
            # closing the connection; either way re-opening from next_revision loses nothing.
            except (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.InternalError):
                log.warning("etcd watch lost its connection; re-opening", extra={"kind": self.kind})
                await asyncio.sleep(0.5)


class Mirror(Generic[T]):
    """A local copy of one collection, kept current by a watch: for queries that must be fast at
    scale and may be a moment behind (decisions are re-checked by a transaction anyway)."""

    def __init__(self, collection: Collection[T]) -> None:
        self._collection = collection
        self.items: dict[str, T] = {}
        self.revision = 0
        self.loaded = asyncio.Event()

    async def run(self) -> None:
        """Loads, then follows changes until cancelled; a compacted history means a reload."""
        while True:
            items, self.revision = await self._collection.snapshot()
            self.items = {item.id: item.value for item in items}
            self.loaded.set()
            try:
                async for change in self._collection.watch(self.revision + 1):
                    if change.value is None:
                        self.items.pop(change.id, None)
                    else:
                        self.items[change.id] = change.value
                    self.revision = change.revision
            except aetcd.exceptions.RevisionCompactedError:
                log.warning(
                    "mirror fell behind compaction; reloading",
                    extra={"kind": self._collection.kind},
                )


class KeptLease:
    """An etcd lease with its own keep-alive loop (aetcd has none)."""

    def __init__(self, lease_id: int, ttl_seconds: int, client: aetcd.Client) -> None:
        self.id = lease_id
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_alive(), name=f"lease {self.id:x}")

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(max(self.ttl_seconds / 3, 0.2))
            try:
                await self._client.refresh_lease(self.id)
            except aetcd.exceptions.ClientError as error:
                log.warning(
                    "lease keep-alive failed", extra={"lease": self.id, "error": str(error)}
                )

    async def revoke(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(aetcd.exceptions.ClientError):
            await self._client.revoke_lease(self.id)
