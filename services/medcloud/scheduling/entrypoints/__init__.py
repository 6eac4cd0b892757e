"""Scheduling's entry points: the gRPC API."""
