"""Monitoring's entry points: the gRPC API and the Prometheus endpoint."""
