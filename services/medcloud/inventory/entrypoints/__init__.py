"""Inventory's entry points: the gRPC API."""
