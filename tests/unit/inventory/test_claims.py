"""Claims never take a provider past its capacity, and replacing or releasing one is exact."""

from __future__ import annotations

import pytest

from medcloud.inventory.domain.claims import (
    Allocation,
    Claim,
    InsufficientCapacity,
    ProviderKind,
    ProviderRef,
    ProviderUsage,
    apply_claim,
    claim_violations,
    release_claim,
)
from medcloud.inventory.domain.model import Resources

HOST = ProviderRef(ProviderKind.HOST, "h1")
POOL = ProviderRef(ProviderKind.POOL, "san-1")


NOTHING = Resources()


def usages(host_used: Resources = NOTHING, pool_used: Resources = NOTHING):
    return {
        HOST: ProviderUsage(Resources(vcpu=64, memory_gib=256), host_used),
        POOL: ProviderUsage(Resources(storage_gib=1000), pool_used),
    }


def his_claim(vcpu: int = 16, memory_gib: int = 64, storage_gib: int = 500) -> Claim:
    return Claim(
        "his-primary-0",
        (
            Allocation(HOST, Resources(vcpu=vcpu, memory_gib=memory_gib)),
            Allocation(POOL, Resources(storage_gib=storage_gib)),
        ),
    )


def test_a_claim_takes_from_every_provider_it_names():
    after = apply_claim(usages(), his_claim(), None)
    assert after[HOST].used == Resources(vcpu=16, memory_gib=64)
    assert after[POOL].used == Resources(storage_gib=500)


def test_a_claim_that_does_not_fit_names_each_shortfall_and_changes_nothing():
    current = usages(
        host_used=Resources(vcpu=60, memory_gib=10), pool_used=Resources(storage_gib=900)
    )
    with pytest.raises(InsufficientCapacity) as raised:
        apply_claim(current, his_claim(), None)
    assert str(raised.value) == (
        "claim does not fit: host/h1: 16 vcpu requested, 4 free of 64; "
        "pool/san-1: 500 storage_gib requested, 100 free of 1000"
    )
    assert current == usages(Resources(vcpu=60, memory_gib=10), Resources(storage_gib=900))


def test_a_repeated_claim_replaces_the_previous_one_instead_of_adding():
    first = apply_claim(usages(), his_claim(), None)
    again = apply_claim(first, his_claim(vcpu=32), his_claim())
    assert again[HOST].used == Resources(vcpu=32, memory_gib=64)
    assert again[POOL].used == Resources(storage_gib=500)


def test_a_provider_that_accepts_no_claims_refuses_growth_but_not_shrinking():
    busy = apply_claim(usages(), his_claim(), None)
    busy[HOST] = ProviderUsage(
        busy[HOST].capacity, busy[HOST].used, False, "host is in maintenance"
    )
    with pytest.raises(
        InsufficientCapacity, match="host/h1 accepts no new claims: host is in maintenance"
    ):
        apply_claim(busy, his_claim(vcpu=17), his_claim())
    assert apply_claim(busy, his_claim(vcpu=8), his_claim())[HOST].used.vcpu == 8


def test_releasing_gives_back_exactly_what_was_taken():
    taken = apply_claim(usages(), his_claim(), None)
    assert release_claim(taken, his_claim()) == {
        HOST: ProviderUsage(Resources(vcpu=64, memory_gib=256), Resources()),
        POOL: ProviderUsage(Resources(storage_gib=1000), Resources()),
    }


def test_a_claim_on_a_missing_provider_is_refused():
    ghost = Claim("c", (Allocation(ProviderRef(ProviderKind.HOST, "ghost"), Resources(vcpu=1)),))
    with pytest.raises(InsufficientCapacity, match="host/ghost does not exist"):
        apply_claim(usages(), ghost, None)


def test_malformed_claims_name_the_field_and_rule():
    claim = Claim(
        "his-0",
        (
            Allocation(HOST, Resources(vcpu=-1, storage_gib=5)),
            Allocation(HOST, Resources(vcpu=1)),
            Allocation(POOL, Resources()),
        ),
    )
    assert [(v.field, v.description) for v in claim_violations(claim)] == [
        ("claim.allocations[0].resources.vcpu", "must not be negative"),
        ("claim.allocations[0].resources.storage_gib", "a host offers only vcpu, memory_gib"),
        ("claim.allocations[1].provider", "host/h1 appears twice in one claim"),
        ("claim.allocations[2].resources", "must take some resource"),
    ]
