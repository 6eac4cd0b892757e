"""Where security keeps its state in etcd: one collection per kind, under the service's prefix."""

from __future__ import annotations

from medcloud.runtime.store import EtcdStore
from medcloud.security.adapters.codecs import AuditRecordCodec, CheckpointCodec, TextCodec
from medcloud.security.app.trail import TrailCollections


def trail_collections(store: EtcdStore) -> TrailCollections:
    return TrailCollections(
        records=store.collection("audit", AuditRecordCodec()),
        checkpoints=store.collection("audit-checkpoints", CheckpointCodec()),
        head=store.collection("audit-head", AuditRecordCodec()),
        appended_events=store.collection("audit-events", TextCodec()),
        anchor=store.collection("audit-anchor", AuditRecordCodec()),
    )
