"""Backup and disaster recovery: SHARE78 tiers checked against the region, failover that finishes
exactly once, drills that leave evidence (R-7.2.5, R-7.6)."""
