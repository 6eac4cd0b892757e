"""Security adapters: Ed25519 signatures for audit checkpoints."""
