"""The security domain, free of any framework."""
