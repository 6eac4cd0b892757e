"""Scheduling's adapters: protobuf mapping, etcd codecs and the inventory client."""
