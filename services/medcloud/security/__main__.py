"""`python -m medcloud.security`: the security service process."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medcloud.common.v1.audit_entry_pb2 import AuditEntry
from medcloud.runtime.config import ConfigError, at_least, load_settings, setting
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.service import EXIT_CONFIG, ServiceContext, run_service
from medcloud.runtime.store import Versioned
from medcloud.security.adapters.codecs import (
    AllocationCodec,
    InstanceCodec,
    ProtobufTrailEvents,
    TextCodec,
)
from medcloud.security.adapters.collections import trail_collections
from medcloud.security.adapters.signing import Ed25519Signer, Ed25519Verifier
from medcloud.security.app.governance import (
    Deidentification,
    Governance,
    KeyCollections,
    PoolCollections,
)
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import RetentionPolicy
from medcloud.security.entrypoints.audit_consumer import AUDITED_SERVICES, append_entry
from medcloud.security.entrypoints.grpc_api import SecurityApi, binding


def _key_file(path: str) -> str | None:
    file = Path(path)
    if not file.is_file():
        return "no such file"
    text = file.read_text().strip()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        return "must hold a raw Ed25519 private key as 64 lower-case hex digits"
    return None


@dataclass(frozen=True)
class SecuritySettings:
    signing_key_file: str = setting(
        "MEDCLOUD_SECURITY_SIGNING_KEY_FILE",
        check=_key_file,
        help="the Ed25519 key that signs audit checkpoints, 64 hex digits",
    )
    retention_days: int = setting(
        "MEDCLOUD_SECURITY_AUDIT_RETENTION_DAYS", default=180, check=at_least(180)
    )


def signer_from(path: str) -> Ed25519Signer:
    private_key = bytes.fromhex(Path(path).read_text().strip())
    probe = Ed25519Signer(private_key, "probe")
    key_id = hashlib.sha256(probe.public_key).hexdigest()[:16]
    return Ed25519Signer(private_key, key_id)


def main() -> int:
    try:
        settings = load_settings(SecuritySettings)
        signer = signer_from(settings.signing_key_file)
    except ConfigError as error:
        print(f"medcloud-security: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
        store = context.store
        outbox = Outbox(store, context.bus)
        # Public keys stay in etcd after a rotation, so old checkpoints still verify.
        public_keys = store.collection("signing-keys", TextCodec())
        if await public_keys.get(signer.key_id) is None:
            await public_keys.create(signer.key_id, signer.public_key.hex())
        stored: list[Versioned[str]] = await public_keys.list()
        verifier = Ed25519Verifier({item.id: bytes.fromhex(item.value) for item in stored})
        trail = AuditTrail(
            store,
            trail_collections(store),
            signer,
            verifier,
            outbox,
            ProtobufTrailEvents(),
        )
        context.run_in_background(outbox.relay(), name="outbox relay")
        governance = Governance(
            store,
            PoolCollections(
                instances=store.collection("pool-instances", InstanceCodec()),
                allocations=store.collection("pool-allocations", AllocationCodec()),
            ),
            trail,
            RetentionPolicy(settings.retention_days),
            transport_encrypted=context.tls is not None,
        )
        context.run_in_background(
            trail.prune_every(RetentionPolicy(settings.retention_days), 24 * 3600.0),
            name="audit retention",
        )
        for service in AUDITED_SERVICES:
            await context.bus.subscribe(
                source_service=service,
                event_types=[AuditEntry],
                durable=f"security-audit-{service}",
                handler=lambda event: append_entry(trail, event),
            )
        deidentification = Deidentification(
            store,
            KeyCollections(
                keys=store.collection("pseudonym-keys", TextCodec()),
                current=store.collection("pseudonym-key-current", TextCodec()),
            ),
            trail,
        )
        return [binding(SecurityApi(trail, governance, deidentification))]

    return run_service("security", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
