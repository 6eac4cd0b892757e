"""The shared runtime every medcloud service uses: configuration, logging, telemetry, gRPC, events, state."""
