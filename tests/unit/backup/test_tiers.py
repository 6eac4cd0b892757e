from __future__ import annotations

import itertools

import pytest

from medcloud.backup.domain.tiers import TIERS, ReplicationMode, profile


def test_every_tier_from_0_to_7_has_a_profile_in_order():
    assert [t.tier for t in TIERS] == list(range(8))


def test_tiers_map_onto_gbt20988_levels_one_to_one_with_tier_7_at_level_6():
    assert [profile(t).gbt20988_level for t in range(8)] == [None, 1, 2, 3, 4, 5, 6, 6]


def test_each_tier_implies_its_replication_mode():
    assert [profile(t).mode for t in range(8)] == [
        ReplicationMode.NONE,
        ReplicationMode.SCHEDULED_COPY,
        ReplicationMode.SCHEDULED_COPY,
        ReplicationMode.SCHEDULED_COPY,
        ReplicationMode.ASYNC_REPLICATION,
        ReplicationMode.TWO_SITE_TWO_PHASE_COMMIT,
        ReplicationMode.SYNCHRONOUS_MIRROR,
        ReplicationMode.SYNCHRONOUS_MIRROR,
    ]


def test_only_synchronous_mirroring_promises_zero_data_loss():
    zero_rpo = [t.tier for t in TIERS if t.best_rpo_seconds == 0]
    assert zero_rpo == [6, 7]
    assert profile(5).best_rpo_seconds == 1


def test_higher_tiers_never_promise_worse_than_lower_ones():
    promised = [t for t in TIERS if t.best_rpo_seconds is not None]
    for lower, higher in itertools.pairwise(promised):
        assert higher.best_rpo_seconds <= lower.best_rpo_seconds
        assert higher.best_rto_seconds <= lower.best_rto_seconds


def test_tier_0_promises_nothing():
    assert profile(0).best_rpo_seconds is None
    assert profile(0).best_rto_seconds is None


@pytest.mark.parametrize("tier", [-1, 8])
def test_no_profile_outside_0_to_7(tier):
    with pytest.raises(ValueError, match="from 0 to 7"):
        profile(tier)
