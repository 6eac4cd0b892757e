"""What scheduling's use cases need from the outside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from medcloud.scheduling.domain.model import BusinessSystem, RegionView
from medcloud.scheduling.domain.placement import Decision, Refusal


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
class PlacementRecord:
    system: BusinessSystem
    outcome: Decision | Refusal
    generation: int


class PlacementEvents(Protocol):
    def decided(self, record: PlacementRecord) -> Any: ...

    def failed(self, record: PlacementRecord) -> Any: ...

    def released(self, system_id: str) -> Any: ...
