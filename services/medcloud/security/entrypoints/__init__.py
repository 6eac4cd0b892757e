"""Security's entry points: the gRPC API and the consumer of every service's audit entries."""
