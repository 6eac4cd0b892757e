"""Security's use cases: the audit trail, the pool and baseline, and the sharing gate."""
