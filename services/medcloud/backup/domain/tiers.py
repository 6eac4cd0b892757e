"""SHARE78 disaster-recovery tiers: the GB/T 20988 level each meets, the replication it implies and
the best recovery point and time it can promise."""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIN_TIER = 0
MAX_TIER = 7

# R-7.6b: same-city active-active is Tier 5; R-7.6c: remote DR with zero data loss is Tier 6.
SAME_CITY_ACTIVE_ACTIVE_TIER = 5
ZERO_DATA_LOSS_TIER = 6


class ReplicationMode(enum.Enum):
    """How data reaches the DR copy."""

    NONE = "none"
    # Point-in-time copies on a schedule: shipped media (Tiers 1-2) or electronic vaulting (Tier 3).
    SCHEDULED_COPY = "scheduled-copy"
    ASYNC_REPLICATION = "async-replication"
    # R-7.6b: a transaction commits at both same-city sites or at neither.
    TWO_SITE_TWO_PHASE_COMMIT = "two-site-two-phase-commit"
    # R-7.6c: "local and remote data updated together", so nothing acknowledged is lost (RPO 0).
    SYNCHRONOUS_MIRROR = "synchronous-mirror"


# Modes that hold every write back until the remote copy has it: they pay a round trip per write.
SYNCHRONOUS_MODES = frozenset(
    {ReplicationMode.TWO_SITE_TWO_PHASE_COMMIT, ReplicationMode.SYNCHRONOUS_MIRROR}
)


@dataclass(frozen=True)
class TierProfile:
    """What one SHARE78 tier means here. `gbt20988_level` is None for Tier 0, which keeps no copy
    away from the primary site and so meets no level; `best_rpo_seconds` and `best_rto_seconds` are
    None there too, since a lost site cannot be recovered at all."""

    tier: int
    name: str
    gbt20988_level: int | None
    mode: ReplicationMode
    best_rpo_seconds: int | None
    best_rto_seconds: int | None


_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

# REQUIREMENTS.md quotes no GB/T 20988-2007 text, so the mapping follows the standard itself
# (clause 5 levels and Appendix A's RTO/RPO table), tier by tier:
#   level 1 "basic support" (off-site media)                 RPO 1-7 days,     RTO 2 days+
#   level 2 "backup site support"                            RPO 1-7 days,     RTO 24 h+
#   level 3 "electronic transmission and partial equipment"  RPO hours-1 day,  RTO 12 h+
#   level 4 "electronic transmission and full equipment"     RPO hours-1 day,  RTO hours-2 days
#   level 5 "real-time data transmission and full equipment" RPO 0-30 min,     RTO minutes-2 days
#   level 6 "zero data loss and remote cluster support"      RPO 0,            RTO minutes
# Tiers 1-6 map onto levels 1-6 one to one and Tier 7 (Tier 6 plus automation) onto level 6. The
# best RPO/RTO is the low end of each range, reading "hours" as 1 h and "minutes" as 1 min, with
# two departures: Tier 5 gets 1 s, not 0, because a two-phase commit loses in-doubt transactions
# when the link breaks (R-7.6b "little data lost", and RPO 0 is Tier 6's promise, R-7.6c); and
# Tiers 5-7 recover in 1 min ("minutes or seconds", R-7.6b).
TIERS: tuple[TierProfile, ...] = (
    TierProfile(0, "no off-site data", None, ReplicationMode.NONE, None, None),
    TierProfile(1, "off-site media (PTAM)", 1, ReplicationMode.SCHEDULED_COPY, _DAY, 2 * _DAY),
    TierProfile(2, "off-site media and a hot site", 2, ReplicationMode.SCHEDULED_COPY, _DAY, _DAY),
    TierProfile(3, "electronic vaulting", 3, ReplicationMode.SCHEDULED_COPY, _HOUR, 12 * _HOUR),
    TierProfile(4, "active secondary site", 4, ReplicationMode.ASYNC_REPLICATION, _HOUR, _HOUR),
    TierProfile(
        5,
        "two-site two-phase commit",
        5,
        ReplicationMode.TWO_SITE_TWO_PHASE_COMMIT,
        1,
        _MINUTE,
    ),
    TierProfile(6, "zero data loss", 6, ReplicationMode.SYNCHRONOUS_MIRROR, 0, _MINUTE),
    TierProfile(
        7, "highly automated zero data loss", 6, ReplicationMode.SYNCHRONOUS_MIRROR, 0, _MINUTE
    ),
)


def profile(tier: int) -> TierProfile:
    """The profile of a tier; ValueError outside 0-7 (callers validate first, see `plans`)."""
    if not MIN_TIER <= tier <= MAX_TIER:
        raise ValueError(f"SHARE78 tiers run from {MIN_TIER} to {MAX_TIER}, got {tier}")
    return TIERS[tier]
