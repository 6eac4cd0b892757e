"""Scheduling: placement of hospital business systems onto clusters, hosts and storage, with the reason for
every decision."""
