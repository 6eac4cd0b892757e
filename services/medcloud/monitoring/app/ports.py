"""What monitoring's use cases need from the outside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from medcloud.monitoring.domain.samples import Sample


class SampleLog(Protocol):
    """The durable record of accepted samples (a JetStream stream in production)."""

    async def append(self, node_id: str, centre_id: str, samples: Sequence[Sample]) -> None:
        """Returns once the samples are durable."""

    def replay(self) -> AsyncIterator[tuple[str, list[Sample]]]:
        """Every batch still held, oldest first, as (node id, samples)."""


class MonitoringEvents(Protocol):
    """Maps domain events to the payloads published on the bus."""

    def payload(self, event: object) -> Any: ...

    def event_id(self, event: object) -> str:
        """Deterministic where the same event may be written twice."""


class CapacitySource(Protocol):
    """Where capacity utilisation per centre comes from (inventory's claims)."""

    async def utilisation(self, now: float) -> list[Sample]:
        """Samples of `capacity.utilisation_percent` for a whole centre (node id empty)."""
