"""Inventory's adapters: protobuf mapping and storage codecs."""
