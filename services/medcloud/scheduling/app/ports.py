"""What scheduling's use cases need from the outside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from medcloud.scheduling.domain.model import BusinessSystem, RegionView
from medcloud.scheduling.domain.placement import Assignment, Decision, Refusal


class CapacityTaken(Exception):
    """Inventory refused the claim: the region changed since it was read; place again."""


@dataclass(frozen=True)
class ProviderTake:
    """What a placement takes from one provider (a host's vCPU and memory, a pool's storage)."""

    host_id: str = ""
    pool_id: str = ""
    vcpu: int = 0
    memory_gib: int = 0
    storage_gib: int = 0


class Inventory(Protocol):
    async def region_view(self) -> RegionView: ...

    async def claim(self, consumer_id: str, takes: list[ProviderTake]) -> None:
        """All or nothing; raises CapacityTaken when the region changed meanwhile."""

    async def release(self, consumer_id: str) -> None: ...


@dataclass(frozen=True)
class Degraded:
    """Re-placement found no host for instances that lost theirs: the others keep running where
    they are (`kept`, still claimed), and `refusal` says which rules refused the rest."""

    kept: tuple[Assignment, ...]
    refusal: Refusal


@dataclass(frozen=True)
class PlacementRecord:
    system: BusinessSystem
    outcome: Decision | Refusal | Degraded
    generation: int

    @property
    def holds_capacity(self) -> bool:
        """Placed in whole or in part: its instances run and inventory holds its claim."""
        return isinstance(self.outcome, Decision | Degraded)

    @property
    def running(self) -> tuple[Assignment, ...]:
        if isinstance(self.outcome, Decision):
            return self.outcome.assignments
        if isinstance(self.outcome, Degraded):
            return self.outcome.kept
        return ()


class PlacementEvents(Protocol):
    def decided(self, record: PlacementRecord) -> Any: ...

    def failed(self, record: PlacementRecord) -> Any: ...

    def degraded(self, record: PlacementRecord) -> Any: ...

    def released(self, system_id: str) -> Any: ...
