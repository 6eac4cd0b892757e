"""Monitoring's adapters: protobuf codecs, the JetStream sample log, etcd-held alerts."""
