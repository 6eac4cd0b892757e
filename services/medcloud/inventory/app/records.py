"""What inventory stores for each object: its facts, its generation (bumped by every change and
shown to clients as the optimistic-concurrency token) and, for resource providers, what claims
hold on it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from medcloud.inventory.domain.claims import ProviderUsage
from medcloud.inventory.domain.model import Host, HostState, Resources, StoragePool

T = TypeVar("T")


@dataclass(frozen=True)
class Record(Generic[T]):
    fact: T
    generation: int
    used: Resources = field(default_factory=Resources)

    def with_fact(self, fact: T) -> Record[T]:
        return replace(self, fact=fact, generation=self.generation + 1)

    def with_usage(self, usage: ProviderUsage) -> Record[T]:
        return replace(self, used=usage.used, generation=self.generation + 1)


def provider_usage(record: Record[Host] | Record[StoragePool]) -> ProviderUsage:
    """What a host or pool offers and holds; a host that is not active takes no new claims."""
    fact = record.fact
    if isinstance(fact, Host) and fact.state is not HostState.ACTIVE:
        return ProviderUsage(fact.capacity, record.used, False, f"host state is {fact.state.value}")
    return ProviderUsage(fact.capacity, record.used)
