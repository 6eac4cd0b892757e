"""Scheduling's domain: business systems, the region as placement sees it, the placement rules and the
placer; no I/O, no framework."""
