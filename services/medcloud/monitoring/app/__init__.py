"""Monitoring's use cases: ingest, supervise (escalation and site health), inspect, configure."""
