"""Programs and helpers the tests run as real processes."""
