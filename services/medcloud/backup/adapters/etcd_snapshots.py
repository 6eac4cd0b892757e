"""The control plane's own state: etcd snapshots saved to the backup centre's object store (here a
directory) and restored into a fresh etcd data directory.

A snapshot is etcd's Maintenance.Snapshot stream, saved byte for byte as `etcdctl snapshot save`
would (the bolt database followed by etcd's 32-byte sha256 of it, which `etcdutl snapshot
restore` checks), under `<prefix>-<UTC time>-rev<revision>.db`, with a sidecar `<same>.json`
recording its SnapshotInfo. Only a snapshot whose sidecar exists and whose size matches is listed,
so a save that crashed half way is never offered for restore. Taking a snapshot needs etcd's root
role (its certificate's common name is the etcd user, see medcloud.runtime.etcd_access)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import grpc
from aetcd import rpc

from medcloud.backup.app.ports import SnapshotInfo
from medcloud.core.errors import FailedPrecondition, Unavailable
from medcloud.devstack.servers import find_etcdutl
from medcloud.runtime.tls import TlsMaterial

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# etcd's default peer URL; pass the URL the restored member will listen on.
DEFAULT_PEER_URL = "http://127.0.0.1:2380"
DEFAULT_MEMBER_NAME = "medcloud-local"


def _timestamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Makes a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _sidecar_of(snapshot: Path) -> Path:
    return snapshot.with_suffix(".json")


def _info_to_json(info: SnapshotInfo) -> bytes:
    record = {
        "name": info.name,
        "file": info.path.name,  # relative, so the store's directory may move
        "size_bytes": info.size_bytes,
        "sha256": info.sha256,
        "revision": info.revision,
        "taken_at_unix": info.taken_at_unix,
    }
    return json.dumps(record, indent=2).encode() + b"\n"


def _info_from_sidecar(sidecar: Path) -> SnapshotInfo:
    """The SnapshotInfo a sidecar records; ValueError (or KeyError, OSError) if it cannot."""
    record = json.loads(sidecar.read_bytes())
    file = str(record["file"])
    if "/" in file or file != _sidecar_of(sidecar).with_suffix(".db").name:
        raise ValueError(f"names the file {file!r}, not its own snapshot")
    return SnapshotInfo(
        name=str(record["name"]),
        path=sidecar.parent / file,
        size_bytes=int(record["size_bytes"]),
        sha256=str(record["sha256"]),
        revision=int(record["revision"]),
        taken_at_unix=float(record["taken_at_unix"]),
    )


class EtcdSnapshotStore:
    """Snapshots of one etcd, kept in `directory` under names starting with `prefix` (e.g. the
    region), taken over mutual TLS as `tls`'s user (who needs etcd's root role once
    authentication is on); `tls` None dials a plaintext etcd without authentication (a test of
    the runtime alone, as etcd_access.etcd_client does)."""

    def __init__(
        self,
        endpoint: str,
        tls: TlsMaterial | None,
        directory: Path,
        prefix: str,
        request_timeout_seconds: float = 10.0,
        snapshot_timeout_seconds: float = 600.0,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise ValueError(f"snapshot prefix {prefix!r}: letters, digits, '_', '.', '-' only")
        self.endpoint = endpoint
        self._tls = tls
        self.directory = Path(directory)
        self.prefix = prefix
        self._request_timeout = request_timeout_seconds
        self._snapshot_timeout = snapshot_timeout_seconds
        self._pattern = re.compile(rf"{re.escape(prefix)}-\d{{8}}T\d{{6}}\.\d{{6}}Z-rev\d+\.json")

    async def save(self) -> SnapshotInfo:
        """Streams a snapshot into the store. `revision` is etcd's revision read (Status) just
        before the snapshot began: every write up to it is in the snapshot, and possibly a few
        later ones. Raises Unavailable, leaving no snapshot file behind, when the stream fails
        (FailedPrecondition when etcd refuses the user, who then lacks the root role)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        async with self._channel() as channel:
            maintenance = rpc.MaintenanceStub(channel)
            try:
                status = await maintenance.Status(
                    rpc.StatusRequest(), timeout=self._request_timeout
                )
            except grpc.aio.AioRpcError as error:
                raise self._unavailable("status", error) from error
            revision = status.header.revision
            taken_at = time.time()
            name = f"{self.prefix}-{_timestamp(taken_at)}-rev{revision}"
            fd, partial = tempfile.mkstemp(
                dir=self.directory, prefix=f".{name}.", suffix=".partial"
            )
            try:
                with os.fdopen(fd, "wb") as file:
                    size, sha256 = await self._stream_into(maintenance, file)
                    file.flush()
                    await asyncio.to_thread(os.fsync, file.fileno())
                path = self.directory / f"{name}.db"
                os.replace(partial, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
                raise
        _fsync_directory(self.directory)
        info = SnapshotInfo(name, path, size, sha256, revision, taken_at)
        _write_atomically(_sidecar_of(path), _info_to_json(info))
        log.info(
            "etcd snapshot saved",
            extra={"snapshot": name, "size_bytes": size, "revision": revision},
        )
        return info

    def _channel(self) -> grpc.aio.Channel:
        if self._tls is None:
            return grpc.aio.insecure_channel(self.endpoint)
        return grpc.aio.secure_channel(self.endpoint, self._tls.channel_credentials())

    async def _stream_into(
        self, maintenance: rpc.MaintenanceStub, file: BinaryIO
    ) -> tuple[int, str]:
        """Writes the stream to `file`; returns its size and sha256. The stream is the database
        (its last message has remaining_bytes 0) then etcd's digest of it, which is checked, so
        a stream cut short without an error is refused too."""
        whole, database = hashlib.sha256(), hashlib.sha256()
        size = 0
        digest: bytes | None = None
        database_done = False
        try:
            async for response in maintenance.Snapshot(
                rpc.SnapshotRequest(), timeout=self._snapshot_timeout
            ):
                blob = response.blob
                if database_done:
                    if digest is not None:
                        raise Unavailable(
                            f"etcd snapshot from {self.endpoint} failed: data after the digest"
                        )
                    digest = blob
                else:
                    database.update(blob)
                    database_done = response.remaining_bytes == 0
                file.write(blob)
                whole.update(blob)
                size += len(blob)
        except grpc.aio.AioRpcError as error:
            raise self._unavailable("snapshot", error) from error
        if digest != database.digest():
            cause = "stream ended early" if digest is None else "its sha256 digest does not match"
            raise Unavailable(f"etcd snapshot from {self.endpoint} is incomplete: {cause}")
        return size, whole.hexdigest()

    def _unavailable(
        self, what: str, error: grpc.aio.AioRpcError
    ) -> Unavailable | FailedPrecondition:
        message = f"etcd {what} from {self.endpoint} failed: {error.code().name} {error.details()}"
        if error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            # Retrying will not help: the certificate's user lacks etcd's root role.
            return FailedPrecondition(f"{message} (taking a snapshot needs etcd's root role)")
        return Unavailable(message)

    def list(self) -> list[SnapshotInfo]:
        """This store's snapshots, newest first; a snapshot without its sidecar, or whose file is
        missing or of another size than recorded, is left out (and logged)."""
        found: list[SnapshotInfo] = []
        if not self.directory.is_dir():
            return found
        for sidecar in self.directory.iterdir():
            if not self._pattern.fullmatch(sidecar.name):
                continue
            try:
                info = _info_from_sidecar(sidecar)
                actual = info.path.stat().st_size
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning(
                    "etcd snapshot skipped", extra={"sidecar": str(sidecar), "error": str(error)}
                )
                continue
            if actual != info.size_bytes:
                log.warning(
                    "etcd snapshot skipped: size differs from its sidecar",
                    extra={"snapshot": info.name, "recorded": info.size_bytes, "actual": actual},
                )
                continue
            found.append(info)
        found.sort(key=lambda info: (info.taken_at_unix, info.revision, info.name), reverse=True)
        return found

    def prune(self, keep: int, max_age_seconds: float) -> list[SnapshotInfo]:
        """Deletes the snapshots beyond the newest `keep` (at least 1) that are also older than
        `max_age_seconds`; returns them. The sidecar goes first, so a crash half way leaves a
        file that is no longer listed rather than a listed snapshot without its file."""
        if keep < 1:
            raise ValueError(f"keep={keep}: at least the newest snapshot is always kept")
        now = time.time()
        deleted = [
            info for info in self.list()[keep:] if now - info.taken_at_unix > max_age_seconds
        ]
        for info in deleted:
            with contextlib.suppress(FileNotFoundError):
                _sidecar_of(info.path).unlink()
            with contextlib.suppress(FileNotFoundError):
                info.path.unlink()
            log.info("etcd snapshot pruned", extra={"snapshot": info.name})
        if deleted:
            _fsync_directory(self.directory)
        return deleted

    def verify(self, info: SnapshotInfo) -> bool:
        """Whether the file still has the size and sha256 recorded when it was saved."""
        try:
            if info.path.stat().st_size != info.size_bytes:
                return False
            return _sha256_of(info.path) == info.sha256
        except FileNotFoundError:
            return False


def restore_snapshot(
    snapshot: SnapshotInfo | Path,
    data_dir: Path,
    name: str = DEFAULT_MEMBER_NAME,
    peer_url: str = DEFAULT_PEER_URL,
    timeout_seconds: float = 600.0,
) -> Path:
    """Restores `snapshot` (its SnapshotInfo, or the path of a .db file with its sidecar beside
    it) into `data_dir`, which must not exist yet, as a one-member cluster: member `name` at
    `peer_url`; an etcd started there with the same --name and peer URL serves the snapshot's
    keys, users and roles. The file's sha256 is checked first: FailedPrecondition when it differs
    from what was recorded at save time, when the sidecar is missing, or when etcdutl fails."""
    if isinstance(snapshot, SnapshotInfo):
        info = snapshot
    else:
        sidecar = _sidecar_of(Path(snapshot))
        try:
            info = _info_from_sidecar(sidecar)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise FailedPrecondition(
                f"cannot restore {snapshot}: its sidecar {sidecar} cannot be read ({error}), so "
                "its sha256 cannot be checked"
            ) from error
    try:
        actual = _sha256_of(info.path)
    except FileNotFoundError:
        raise FailedPrecondition(f"cannot restore {info.path}: no such file") from None
    if actual != info.sha256:
        raise FailedPrecondition(
            f"refusing to restore {info.path}: sha256 mismatch (recorded {info.sha256} when "
            f"saved, the file now has {actual})"
        )
    data_dir = Path(data_dir)
    if data_dir.exists():
        raise FailedPrecondition(
            f"refusing to restore {info.path} into {data_dir}: the directory exists already"
        )
    command = [
        str(find_etcdutl()),
        "snapshot",
        "restore",
        str(info.path),
        "--data-dir",
        str(data_dir),
        "--name",
        name,
        "--initial-cluster",
        f"{name}={peer_url}",
        "--initial-advertise-peer-urls",
        peer_url,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_seconds, check=False
        )
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(
            f"etcdutl snapshot restore of {info.path} did not finish within {timeout_seconds:.0f} s"
        ) from None
    if done.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)  # it did not exist before: half a restore
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise FailedPrecondition(
            f"etcdutl snapshot restore of {info.path} into {data_dir} failed "
            f"(exit {done.returncode}):\n{tail}"
        )
    log.info(
        "etcd snapshot restored",
        extra={"snapshot": info.name, "data_dir": str(data_dir), "revision": info.revision},
    )
    return data_dir
