"""Monitoring: node agents, sample ingest, rules, alerts and escalation, site health and
inspection (R-6.5b, R-7.7)."""
