"""Scheduling's use cases, over inventory (a port), the store and the outbox."""
