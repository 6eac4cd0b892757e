"""Inventory's domain: the region's facts and the rules they obey; no I/O, no framework."""
