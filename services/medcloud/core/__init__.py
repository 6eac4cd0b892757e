"""Framework-free building blocks shared by every service's domain code."""
