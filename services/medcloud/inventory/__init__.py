"""Inventory: the region's single source of truth for machine rooms, network, clusters, hosts,
storage pools and the capacity claimed on them."""
