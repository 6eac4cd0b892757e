"""Backup's domain, free of any framework."""
