"""Inventory's use cases, over the store and the event bus."""
