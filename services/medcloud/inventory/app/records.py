"""What inventory stores for a resource provider: its facts, what claims hold on it, and its
generation, which every change bumps (the optimistic-concurrency token clients see)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from medcloud.inventory.domain.claims import ProviderUsage
from medcloud.inventory.domain.model import Host, HostState, Resources, StoragePool


@dataclass(frozen=True)
class HostRecord:
    host: Host
    used: Resources
    generation: int

    def usage(self) -> ProviderUsage:
        active = self.host.state is HostState.ACTIVE
        reason = "" if active else f"host state is {self.host.state.value}"
        return ProviderUsage(self.host.capacity, self.used, active, reason)

    def with_usage(self, usage: ProviderUsage) -> HostRecord:
        return replace(self, used=usage.used, generation=self.generation + 1)


@dataclass(frozen=True)
class PoolRecord:
    pool: StoragePool
    used: Resources
    generation: int

    def usage(self) -> ProviderUsage:
        return ProviderUsage(self.pool.capacity, self.used)

    def with_usage(self, usage: ProviderUsage) -> PoolRecord:
        return replace(self, used=usage.used, generation=self.generation + 1)
