"""Monitoring's domain: samples, rules, alerts, site health and inspection, free of any framework."""
