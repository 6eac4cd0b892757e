"""The unified security pool: allocation finds room, prefers the site's centre, refuses precisely
when the pool is full, release frees what it took, and bad input is refused field by field."""

from __future__ import annotations

import pytest

from medcloud.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from medcloud.security.domain.pool import (
    Allocation,
    Capability,
    SecurityInstance,
    SecurityPool,
    Utilisation,
    Zone,
)


def firewall(instance_id: str, centre_id: str, capacity_units: int = 10) -> SecurityInstance:
    return SecurityInstance(
        instance_id, Capability.VIRTUAL_FIREWALL, centre_id, capacity_units, "vendor-a"
    )


def fields(raised: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in raised.value.violations}


def test_allocation_takes_the_first_instance_by_id_with_enough_free_units():
    pool = SecurityPool([firewall("fw-b", "carrier-prod", 10), firewall("fw-a", "carrier-prod", 4)])

    first = pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 3)
    second = pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 3)

    assert first == Allocation("fw-a", "hosp-a", Zone.INTERNET, 3)
    # fw-a has 1 unit left, too few, so the allocation moves on to fw-b.
    assert second.instance_id == "fw-b"
    assert pool.free_units("fw-a") == 1
    assert pool.allocated_units("fw-b") == 3


def test_allocation_prefers_the_given_centre_and_falls_back_when_it_is_full():
    pool = SecurityPool([firewall("fw-a", "carrier-prod", 5), firewall("fw-b", "hospital", 5)])

    near = pool.allocate(
        "hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 4, prefer_centre_id="hospital"
    )
    far = pool.allocate(
        "hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 4, prefer_centre_id="hospital"
    )

    assert near.instance_id == "fw-b"
    assert far.instance_id == "fw-a"


def test_allocation_only_draws_on_instances_of_the_capability_asked_for():
    waf = SecurityInstance("waf-a", Capability.WAF, "carrier-prod", 100, "vendor-b")
    pool = SecurityPool([waf, firewall("fw-z", "carrier-prod", 1)])

    allocation = pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 1)

    assert allocation.instance_id == "fw-z"


def test_a_full_pool_refuses_naming_the_capability_and_the_free_units():
    pool = SecurityPool([firewall("fw-a", "carrier-prod", 5), firewall("fw-b", "hospital", 4)])
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 2)

    with pytest.raises(FailedPrecondition) as raised:
        pool.allocate("hosp-b", Zone.DMZ, Capability.VIRTUAL_FIREWALL, 5)

    assert str(raised.value) == (
        "Cannot allocate 5 Gbit/s of inspected traffic of virtual-firewall to the dmz zone of "
        "site 'hosp-b': the most free on any of the 2 virtual-firewall instances is 4 (7 free in "
        "all); add an instance or release capacity."
    )
    assert len(pool.allocations) == 1


def test_a_pool_without_the_capability_says_so():
    pool = SecurityPool([firewall("fw-a", "carrier-prod")])

    with pytest.raises(FailedPrecondition, match="the pool has no bastion-host instance"):
        pool.allocate("hosp-a", Zone.CORE, Capability.BASTION_HOST, 1)


def test_release_frees_every_allocation_of_the_capability_in_that_zone_only():
    pool = SecurityPool([firewall("fw-a", "carrier-prod"), firewall("fw-b", "hospital")])
    kept = pool.allocate("hosp-a", Zone.DMZ, Capability.VIRTUAL_FIREWALL, 1)
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 10)
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 2)

    released = pool.release("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL)

    assert [a.units for a in released] == [10, 2]
    assert pool.allocations == (kept,)
    assert pool.free_units("fw-a") == 9
    assert pool.free_units("fw-b") == 10


def test_releasing_what_was_never_allocated_is_not_found():
    pool = SecurityPool([firewall("fw-a", "carrier-prod")])

    with pytest.raises(NotFound, match="hosp-a/core/virtual-firewall"):
        pool.release("hosp-a", Zone.CORE, Capability.VIRTUAL_FIREWALL)


def test_coverage_lists_every_zone_with_the_capabilities_allocated_to_it():
    audit = SecurityInstance("dba-a", Capability.DATABASE_AUDIT, "hospital", 20, "vendor-c")
    pool = SecurityPool([firewall("fw-a", "carrier-prod"), audit])
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 1)
    pool.allocate("hosp-a", Zone.CORE, Capability.VIRTUAL_FIREWALL, 1)
    pool.allocate("hosp-a", Zone.CORE, Capability.DATABASE_AUDIT, 3)
    pool.allocate("hosp-b", Zone.DMZ, Capability.VIRTUAL_FIREWALL, 1)

    assert dict(pool.coverage("hosp-a")) == {
        Zone.INTERNET: frozenset({Capability.VIRTUAL_FIREWALL}),
        Zone.EXTRANET: frozenset(),
        Zone.CORE: frozenset({Capability.VIRTUAL_FIREWALL, Capability.DATABASE_AUDIT}),
        Zone.DMZ: frozenset(),
    }


def test_centres_serving_names_the_centres_of_the_allocated_instances():
    pool = SecurityPool([firewall("fw-a", "carrier-prod", 1), firewall("fw-b", "hospital", 1)])
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 1)
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 1)

    assert pool.centres_serving("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL) == {
        "carrier-prod",
        "hospital",
    }
    assert pool.centres_serving("hosp-a", Zone.DMZ, Capability.VIRTUAL_FIREWALL) == frozenset()


def test_utilisation_sums_capacity_and_allocations_per_capability():
    waf = SecurityInstance("waf-a", Capability.WAF, "carrier-prod", 8, "vendor-b")
    pool = SecurityPool(
        [firewall("fw-a", "carrier-prod", 10), firewall("fw-b", "hospital", 5), waf]
    )
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 10)
    pool.allocate("hosp-a", Zone.INTERNET, Capability.VIRTUAL_FIREWALL, 2)
    pool.allocate("hosp-a", Zone.DMZ, Capability.WAF, 2)

    utilisation = pool.utilisation()

    assert utilisation[Capability.VIRTUAL_FIREWALL] == Utilisation(15, 12)
    assert utilisation[Capability.VIRTUAL_FIREWALL].free_units == 3
    assert utilisation[Capability.WAF].free_units == 6
    assert utilisation[Capability.KEY_MANAGEMENT] == Utilisation(0, 0)
    assert set(utilisation) == set(Capability)


def test_an_instance_breaking_rules_is_refused_naming_each_field():
    bad = SecurityInstance("FW_A", Capability.VIRTUAL_FIREWALL, "", 0, " ")

    with pytest.raises(InvalidArgument) as raised:
        SecurityPool([bad])

    assert fields(raised) == {
        "instance.id",
        "instance.centre_id",
        "instance.capacity_units",
        "instance.vendor",
    }


def test_a_second_instance_with_the_same_id_already_exists():
    pool = SecurityPool([firewall("fw-a", "carrier-prod")])

    with pytest.raises(AlreadyExists, match="security instance 'fw-a' already exists"):
        pool.add_instance(firewall("fw-a", "hospital"))


def test_an_allocation_request_breaking_rules_is_refused_naming_each_field():
    pool = SecurityPool([firewall("fw-a", "carrier-prod")])

    with pytest.raises(InvalidArgument) as raised:
        pool.allocate(
            "Hosp A", Zone.CORE, Capability.VIRTUAL_FIREWALL, 0, prefer_centre_id="Centre 1"
        )

    assert fields(raised) == {"allocation.site_id", "allocation.units", "prefer_centre_id"}
    assert "must be greater than 0, got 0" in str(raised.value)
    assert pool.allocations == ()


def test_a_pool_restored_from_storage_keeps_its_allocations_within_capacity():
    kept = Allocation("fw-a", "hosp-a", Zone.INTERNET, 6)
    pool = SecurityPool([firewall("fw-a", "carrier-prod")], [kept])

    assert pool.allocations == (kept,)
    assert pool.free_units("fw-a") == 4
    with pytest.raises(FailedPrecondition, match="'fw-a' has 4 Gbit/s of inspected traffic free"):
        SecurityPool([firewall("fw-a", "carrier-prod")], [kept, kept])
    with pytest.raises(InvalidArgument) as raised:
        SecurityPool([], [kept])
    assert fields(raised) == {"allocation.instance_id"}


def test_asking_about_an_unknown_instance_is_not_found():
    with pytest.raises(NotFound, match="security instance 'fw-x' not found"):
        SecurityPool().free_units("fw-x")
