"""When a replica may take the operator's Lease (client-go's rule, by the candidate's clock)."""

from medcloud.operators.leadership import LeaseTiming, Observed, may_take


def test_a_free_or_own_lease_may_be_taken():
    assert may_take(None, "b", 15, now=0)
    assert may_take(Observed("", "t1", seen_at=0), "b", 15, now=1)
    assert may_take(Observed("b", "t1", seen_at=0), "b", 15, now=1)


def test_another_holder_keeps_it_until_its_record_is_stale_for_a_whole_lease():
    held = Observed("a", "t1", seen_at=100)
    assert not may_take(held, "b", 15, now=114.9)
    assert may_take(held, "b", 15, now=115)


def test_the_holder_gives_up_before_a_standby_may_take_over():
    timing = LeaseTiming(15)
    assert timing.retry_seconds < timing.renew_deadline_seconds < timing.lease_seconds
